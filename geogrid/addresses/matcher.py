"""Which building does this address text mean? Blocking, per-part fuzzy scoring and a calibrated confidence.

A text is normalised and parsed (``geogrid.addresses.text``); each named part (road, compound, village,
township) is looked up in the registry's names exactly, by its core without the suffix (康安苑 for
康安苑小区), by pinyin (homophones) and by one-character edits (typos), then scored with rapidfuzz. The
candidate buildings are the registry rows those names reach with the text's numbers: (road, door),
(compound, building), (village, group, door). Every candidate is scored part by part (exact, fuzzy,
alias, missing, conflict) and the best one gets a **confidence**: a logistic model over the evidence
(how many independent keys agree, how exactly, conflicts, the margin to the runner-up) fitted on
generated variants by ``geogrid.addresses.calibration.fit`` (coefficients in ``calibration.json``; how to
refit is in that module). Below the threshold a match is not placed: the text is queued for a person.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz
from shapely import STRtree, points

from geogrid.addresses import calibration
from geogrid.addresses.text import (
    COMPOUND_SUFFIXES,
    ROAD_SUFFIXES,
    TOWNSHIP_SUFFIXES,
    VILLAGE_SUFFIXES,
    Hit,
    Names,
    Parts,
    check_text,
    fold,
    normalize,
    parse,
    pinyin,
)
from geogrid.errors import InvalidAddress

MAX_CANDIDATES = 5
MIN_SHARE = 0.001
MAX_PIECE = 16  # characters of unplaced text searched for names
HIT_SPREAD = 0.2  # names scoring this far below a part's best name are not candidates
MARGIN_CAP = 1.5  # score lead over the runner-up beyond which more lead says nothing new
NAME_KINDS = ("township", "road", "compound", "village")
NUMBER_KINDS = ("door", "building", "group")
KEY_NUMBERS = (("road", ("door",)), ("compound", ("building",)), ("village", ("group", "door")))
KEY_PARTS = {
    "road": ("road", "door"),
    "compound": ("compound", "building"),
    "village": ("village", "group", "door"),
}
M_PER_DEG_LAT = 110_540.0
M_PER_DEG_LON = 111_320.0


@dataclass(frozen=True)
class Candidate:
    """One registry address a text may mean, with how sure the matcher is and which parts agreed."""

    address_id: str
    text: str
    building_id: str | None
    lon: float
    lat: float
    confidence: float
    matched: dict[str, str]
    entrance: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """This candidate as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class Match:
    """The answer for one text: the best candidate, the runners-up, and whether it is sure enough to place."""

    query: str
    parts: Parts
    confidence: float
    placed: bool
    best: Candidate | None
    candidates: tuple[Candidate, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """This match as JSON-ready data (the shape the API answers with)."""
        return {
            "query": self.query,
            "placed": self.placed,
            "confidence": round(self.confidence, 4),
            "address": self.best.to_dict() if self.best else None,
            "candidates": [c.to_dict() for c in self.candidates],
            "reason": self.reason,
        }


_Context = tuple[set[str], dict[str, str | None], dict[str, Any], set[str]]


@dataclass(slots=True)
class _Scored:
    """A candidate row while it is being scored."""

    row: int
    score: float = 0.0
    matched: dict[str, str] = field(default_factory=dict)
    keys: int = 0  # independent keys (road+door, compound+building, village+group+door) that agree
    exact_keys: int = 0  # of those, keys whose names agree exactly
    name_min: float = 1.0  # the weakest name agreement in an agreeing key
    conflicts: int = 0
    named_conflict: bool = False  # the text names another road, compound, village or township
    number_conflict: bool = False  # or another door, building or group than this address's


def _clean(value: Any) -> str:
    """A registry cell as text ('' for missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value).strip()


def _number(value: str) -> str:
    """A door/building/group number as the parser gives it (32, 32-1)."""
    return fold(value).removesuffix("号楼").removesuffix("号").removesuffix("组") if value else ""


class Matcher:
    """Match address texts against the standard addresses in force; built once per registry revision."""

    def __init__(
        self,
        registry: pd.DataFrame,
        aliases: Mapping[str, str | tuple[float, float]] = {},
        *,
        threshold: float = 0.9,
    ) -> None:
        self.threshold = threshold
        self.model = calibration.load()
        frame = registry.reset_index(drop=True)
        n = len(frame)

        def col(name: str) -> list[str]:
            return [_clean(v) for v in frame[name]] if name in frame.columns else [""] * n

        self._ids = col("address_id")
        self._building_ids = col("building_id")
        self._lon = np.array([float(v or "nan") for v in col("lon")])
        self._lat = np.array([float(v or "nan") for v in col("lat")])
        raw = {k: col(k) for k in ("township", "road", "compound", "village")}
        self._part = {k: [fold(v) for v in vals] for k, vals in raw.items()}
        for k in ("door", "building", "group"):
            self._part[k] = [_number(v) for v in col(k)]
        self._rows = [{k: v[i] for k, v in self._part.items()} for i in range(n)]
        self._entrances = [int(v) if v.isdigit() else 0 for v in col("entrances")]
        texts = col("text")
        self._texts = [t or self._compose(i) for i, t in enumerate(texts)]
        self._names = {
            "township": Names(self._part["township"], TOWNSHIP_SUFFIXES),
            "road": Names(self._part["road"], ROAD_SUFFIXES),
            "compound": Names(self._part["compound"], COMPOUND_SUFFIXES),
            "village": Names(self._part["village"], VILLAGE_SUFFIXES),
        }
        for i, cell in enumerate(col("aliases")):  # a registry alias is another name of the compound/road
            kind = "compound" if self._part["compound"][i] else "road" if self._part["road"][i] else "village"
            for alias in cell.replace("；", ";").replace("|", ";").split(";"):
                if alias.strip() and self._part[kind][i]:
                    self._names[kind].add_alias(fold(alias.strip()), self._part[kind][i])
        self._known = {v: kind for kind, names in self._names.items() for v in (*names.exact, *names.aliases)}
        self._by_key: dict[str, dict[tuple[str, ...], list[int]]] = {k: {} for k in KEY_PARTS}
        for i in range(n):
            for key, cols in KEY_PARTS.items():
                values = tuple(self._part[c][i] for c in cols)
                if values[0] and all(values):
                    self._by_key[key].setdefault(values, []).append(i)
        self._by_name: dict[str, dict[str, list[int]]] = {k: {} for k in KEY_PARTS}
        for i in range(n):
            for key in KEY_PARTS:
                if self._part[key][i]:
                    self._by_name[key].setdefault(self._part[key][i], []).append(i)
        self._by_village_door: dict[tuple[str, str], list[int]] = {}
        for i in range(n):
            if self._part["village"][i] and self._part["door"][i]:
                self._by_village_door.setdefault(
                    (self._part["village"][i], self._part["door"][i]), []
                ).append(i)
        in_township: dict[str, set[str]] = {}
        for i in range(n):
            for kind in ("road", "compound", "village"):
                if self._part[kind][i]:
                    in_township.setdefault(self._part["township"][i], set()).add(self._part[kind][i])
        self._in_township = {k: frozenset(v) for k, v in in_township.items()}
        self._lat0 = float(np.nanmean(self._lat)) if n else 0.0
        self._xy = self._project(self._lon, self._lat)
        ok = ~np.isnan(self._xy[:, 0])
        self._tree_rows = np.flatnonzero(ok)
        self._tree = STRtree(points(self._xy[ok]))
        self._row_of_id = {a: i for i, a in enumerate(self._ids)}
        normalize("内蒙古")  # loads cpca's division names now rather than on the first text
        for names in self._names.values():  # warm the lookups every text of a batch will make
            for value in names.exact:
                names.lookup(value)
        self._aliases: dict[str, str | tuple[float, float]] = {}
        self.stale_aliases = 0  # aliases whose address is not in this registry (ended since): left out
        for text, target in aliases.items():
            try:
                self.add_alias(text, target)
            except InvalidAddress:  # its address has ended since, or today's text rules refuse its text
                self.stale_aliases += 1

    # -- public ---------------------------------------------------------------------------------------

    def match(self, text: str) -> Match:
        """The building ``text`` means, with a calibrated confidence; InvalidAddress for unusable text."""
        query = check_text(text)
        norm = normalize(query)
        alias = self._aliases.get(norm)
        if alias is not None:
            return self._alias_match(query, alias)
        parts = parse(norm, self._known, normalized=True)
        scored = self._candidates(parts)
        return self._decide(query, parts, scored)

    def match_many(self, texts: Sequence[str]) -> list[Match | InvalidAddress]:
        """Match each text in order; a text that cannot be matched is kept as its InvalidAddress.

        The same answers as ``match`` text by text, worked stage by stage over the batch (check and
        normalise all, parse all, look names up for all, score all): each stage's code and memos stay hot.
        """
        out: list[Match | InvalidAddress | None] = [None] * len(texts)
        first: dict[str, int] = {}
        again: list[tuple[int, int]] = []  # (position, position of the same text before)
        todo: list[tuple[int, str, str]] = []  # (position, query, normalised)
        for i, text in enumerate(texts):
            if isinstance(text, str):
                seen = first.setdefault(text, i)
                if seen != i:
                    again.append((i, seen))
                    continue
            try:
                query = check_text(text)
                norm = normalize(query)
            except InvalidAddress as error:
                out[i] = error
                continue
            alias = self._aliases.get(norm)
            if alias is not None:
                out[i] = self._alias_match(query, alias)
            else:
                todo.append((i, query, norm))
        parsed = [parse(norm, self._known, normalized=True) for _, _, norm in todo]
        hits = [self._hits(parts) for parts in parsed]
        scored = [self._candidates(parts, h) for parts, h in zip(parsed, hits, strict=True)]
        for (i, query, _), parts, found in zip(todo, parsed, scored, strict=True):
            out[i] = self._decide(query, parts, found)
        for i, seen in again:
            out[i] = out[seen]
        return out  # type: ignore[return-value]  # every position is filled above

    def evidence(self, text: str) -> tuple[list[float] | None, str | None]:
        """The confidence features of ``text`` and its best address id (for fitting the calibration)."""
        try:
            norm = normalize(check_text(text))
        except InvalidAddress:
            return None, None
        parts = parse(norm, self._known, normalized=True)
        scored = self._candidates(parts)
        if not scored:
            return None, None
        return features(scored, parts), self._ids[scored[0].row]

    def add_alias(self, text: str, target: str | tuple[float, float]) -> None:
        """Make ``text`` (normalised) mean an address id or a point from now on."""
        if isinstance(target, str) and target not in self._row_of_id:
            raise InvalidAddress(f"alias target {target!r} is not an address in force", address_id=target)
        self._aliases[normalize(check_text(text))] = (
            target
            if isinstance(target, str)
            else (
                float(target[0]),
                float(target[1]),
            )
        )

    def nearest(self, lon: float, lat: float, max_m: float = 100.0) -> tuple[Candidate, float] | None:
        """The standard address nearest to a WGS-84 point within ``max_m`` metres, with its distance."""
        if not len(self._tree_rows):
            return None
        xy = self._project(np.array([lon]), np.array([lat]))[0]
        found = self._tree.query_nearest(points(xy), max_distance=max_m)
        if not len(found):
            return None
        row = int(self._tree_rows[int(found[0])])
        dist = float(np.hypot(*(self._xy[row] - xy)))
        return self._candidate(row, 1.0, {"point": "nearest"}), dist

    # -- candidates and scores ------------------------------------------------------------------------

    def _project(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Local metres (equirectangular about the registry's mean latitude): enough for 100 m."""
        k = math.cos(math.radians(self._lat0))
        return np.column_stack([lon * M_PER_DEG_LON * k, lat * M_PER_DEG_LAT])

    def _hits(self, parts: Parts) -> dict[str, dict[str, Hit]]:
        """The registry names each named part (and the unplaced rest) may be, with their scores."""
        hits: dict[str, dict[str, Hit]] = {}
        prefer: frozenset[str] = frozenset()
        for kind in ("township", "road", "compound", "village"):
            value = getattr(parts, kind)
            if value:
                hits[kind] = self._names[kind].lookup(value, prefer=prefer)
            if kind == "township" and hits.get(kind):
                for name, hit in hits[kind].items():
                    if hit.score >= 0.9:
                        prefer = (
                            prefer | self._in_township.get(name, frozenset())
                            if prefer
                            else self._in_township.get(name, frozenset())
                        )
        # searched inside for names: a leftover longer than any address part is cut (each character
        # searched costs; a 200-character text of random characters must not cost 50 real ones)
        pieces = [p[:MAX_PIECE] for p in _pieces(parts.rest) if len(p) >= 2]
        pieces += [
            getattr(parts, k)[-MAX_PIECE:]
            for k in ("road", "compound", "village")
            if getattr(parts, k) and not hits[k]
        ]
        for kind in ("road", "compound", "village", "township"):
            if getattr(parts, kind) and hits.get(kind):
                continue
            for piece in pieces:  # a suffix lost to a typo: the piece is looked up by its core
                more = self._names[kind].lookup(piece, bare=True, prefer=prefer)
                if more:
                    mine = hits.setdefault(kind, {})
                    for name, hit in more.items():
                        score = round(hit.score * 0.95, 4)  # no suffix to say what kind of name it is
                        if name not in mine or mine[name].score < score:
                            mine[name] = Hit(score, "fuzzy")
        for kind, found in hits.items():  # a name far behind the best is noise, not a rival reading
            if len(found) > 1:
                floor = max(found.values()).score - HIT_SPREAD  # a Hit orders by its score first
                if min(found.values()).score < floor:
                    hits[kind] = {n: h for n, h in found.items() if h.score >= floor}
        return hits

    def _candidates(self, parts: Parts, hits: dict[str, dict[str, Hit]] | None = None) -> list[_Scored]:
        """Registry rows the text's names and numbers reach (``hits``: its names, if looked up already),
        each scored part by part, best first."""
        if hits is None:
            hits = self._hits(parts)
        rows: set[int] = set()
        door, building, group = parts.door, parts.building, parts.group
        if door:
            by_road = self._by_key["road"]
            for name in hits.get("road", ()):
                rows.update(by_road.get((name, door), ()))
        # a compound's building is its building number, or the bare number when no road took it as a door
        numbers = {building, None if building or hits.get("road") else door} - {None}
        by_compound = self._by_key["compound"]
        for name in hits.get("compound", ()):
            for b in numbers:
                rows.update(by_compound.get((name, b or ""), ()))
            if not building and not door:
                only = self._by_name["compound"].get(name, [])
                if len(only) == 1:
                    rows.update(only)
        if door:
            for name in hits.get("village", ()):
                if group:
                    rows.update(self._by_key["village"].get((name, group, door), ()))
                else:
                    rows.update(self._by_village_door.get((name, door), ()))
        if not rows:
            return []
        # kinds whose best name is surely a registry name, and kinds the text names word for word (a row
        # under another, merely similar name is then another place)
        sure: set[str] = set()
        exact: set[str] = set()
        for kind, found in hits.items():
            best = max(found.values()).score if found else 0.0
            if best >= 0.9:
                sure.add(kind)
            if best >= 1.0:
                exact.add(kind)
        key_number = {"road": parts.door, "compound": parts.building or parts.door, "village": parts.door}
        said = vars(parts)
        scored = [self._score(row, parts, hits, (sure, key_number, said, exact)) for row in rows]
        scored.sort(key=lambda s: (-s.score, self._ids[s.row]))
        return scored

    def _score(self, row: int, parts: Parts, hits: dict[str, dict[str, Hit]], context: _Context) -> _Scored:
        """How well registry row ``row`` agrees with the text, part by part."""
        matched: dict[str, str] = {}
        agree: dict[str, float] = {}
        score = 0.0
        conflicts = 0
        named_conflict = number_conflict = False
        sure_kinds, key_number, said, exact = context
        mine_row = self._rows[row]
        for kind in NAME_KINDS:
            found = hits.get(kind)
            said_name = said[kind]
            if not said_name and not found:
                matched[kind] = "missing"
                continue
            mine = mine_row[kind]
            hit = found.get(mine) if mine and found is not None else None
            if hit is None or (hit.score < 1.0 and kind in exact and said_name):
                # another name; or a merely similar one where the text named one exactly (经九路835号
                # where 经九路 has no 835 is not 经十九路835号)
                if hit is None and not said_name:
                    continue
                matched[kind] = "conflict"
                conflicts += 1
                # a conflict counts fully only when the text's name is surely a registry name
                sure = hit is not None or kind in sure_kinds
                named_conflict = named_conflict or sure
                score -= (3.0 if kind != "township" else 0.7) if sure else 0.5
                continue
            matched[kind] = hit.how
            agree[kind] = hit.score
            score += (0.5 if kind == "township" else 2.0 if key_number.get(kind) else 1.0) * hit.score
        building = mine_row["building"]
        for kind in NUMBER_KINDS:
            said_num = said[kind]
            mine = mine_row[kind]
            if not said_num:
                if mine and not (kind == "door" and parts.building and not building):
                    matched[kind] = "missing"
                continue
            if said_num == mine or (
                kind == "door" and not parts.building and not parts.road and said_num == building
            ):
                matched[kind] = "exact"
                agree[kind] = 1.0
                score += 2.0
            elif mine:
                matched[kind] = "conflict"
                conflicts += 1
                number_conflict = True
                score -= 2.5
        entrance = parts.entrance
        if entrance:
            if entrance.isdigit() and 1 <= int(entrance) <= max(self._entrances[row], 1):
                matched["entrance"] = "exact"
                score += 0.05
            else:  # an entrance the building does not have: noted, but callers miscount entrances
                matched["entrance"] = "conflict"
                conflicts += 1
                score -= 0.1
        keys = exact_keys = 0
        name_min = 1.0
        if agree:
            door_only = "door" in agree and not parts.building
            for name_kind, numbers in KEY_NUMBERS:
                if name_kind in agree and all(c in agree or (c == "building" and door_only) for c in numbers):
                    keys += 1
                    name_score = agree[name_kind]
                    name_min = min(name_min, name_score)
                    exact_keys += name_score >= 1.0
        return _Scored(
            row, score, matched, keys, exact_keys, name_min, conflicts, named_conflict, number_conflict
        )

    def _decide(self, query: str, parts: Parts, scored: list[_Scored]) -> Match:
        """Turn the scored candidates into a Match with a calibrated confidence and a reason."""
        if not scored:
            return Match(query, parts, 0.0, False, None, (), "no standard address matches the text")
        feats = features(scored, parts)
        conf = calibration.predict(self.model, feats)
        top = scored[:MAX_CANDIDATES]
        second = scored[1].score if len(scored) > 1 else None
        # The runners-up share what the best leaves, in proportion to exp(score): only the best's
        # confidence is fitted; theirs only has to say how the rest of the doubt is spread.
        weights = [math.exp(s.score - scored[0].score) for s in top[1:]]
        total = sum(weights) or 1.0
        cands = [self._candidate(top[0].row, conf, top[0].matched, parts.entrance)]
        for s, w in zip(top[1:], weights, strict=True):
            share = (1 - conf) * w / total
            if share >= MIN_SHARE:  # a runner-up with no real chance is not worth a person's look
                cands.append(self._candidate(s.row, share, s.matched, parts.entrance))
        best = cands[0]
        placed = conf >= self.threshold
        reason = ""
        if not placed:
            if second is not None and scored[0].score - second < 1.0 and len(cands) > 1:
                reason = f"{len(scored)} addresses match about as well: {best.text} / {cands[1].text}"
            elif scored[0].conflicts:
                bad = [k for k, v in scored[0].matched.items() if v == "conflict"]
                reason = f"best candidate {best.text} disagrees on {', '.join(bad)}"
            else:
                reason = f"not sure enough ({conf:.2f} < {self.threshold:.2f}): {best.text}"
        return Match(query, parts, conf, placed, best, tuple(cands), reason)

    def _candidate(
        self, row: int, conf: float, matched: dict[str, str], entrance: str | None = None
    ) -> Candidate:
        """Registry row ``row`` as a Candidate."""
        ok = (
            entrance
            if entrance and entrance.isdigit() and int(entrance) <= max(self._entrances[row], 1)
            else None
        )
        return Candidate(
            address_id=self._ids[row],
            text=self._texts[row],
            building_id=self._building_ids[row] or None,
            lon=float(self._lon[row]),
            lat=float(self._lat[row]),
            confidence=round(conf, 4),
            matched=dict(matched),
            entrance=ok,
        )

    def _alias_match(self, query: str, target: str | tuple[float, float]) -> Match:
        """The match of a text that is a known alias: sure, by definition."""
        parts = parse(normalize(query), self._known)
        if isinstance(target, str):
            cand = self._candidate(self._row_of_id[target], 1.0, {"alias": "exact"})
        else:
            cand = Candidate("", query, None, target[0], target[1], 1.0, {"alias": "exact"})
        return Match(query, parts, 1.0, True, cand, (cand,), "")

    def _compose(self, row: int) -> str:
        """The canonical text of a row that came without one."""
        p = {k: v[row] for k, v in self._part.items()}
        if p["village"]:
            return f"{p['township']}{p['village']}{p['group']}组{p['door']}号"
        text = p["township"] + (f"{p['road']}{p['door']}号" if p["road"] else "")
        return text + (f"{p['compound']}{p['building']}号楼" if p["compound"] else "")


_NUMBERS = re.compile(r"\d+(?:-\d+)?(?:号楼|单元|号|组|社|室|户|层)|\d{3,}")


def _pieces(rest: str) -> list[str]:
    """The pieces of unplaced text between its numbers (经8鹿 keeps its digit: a name's)."""
    return [p for p in _NUMBERS.split(rest) if p]


def features(scored: Sequence[_Scored], parts: Parts, runner: _Scored | None = None) -> list[float]:
    """The evidence the confidence is computed from, for the first of ``scored`` against the next best.

    [keys agreeing, keys agreeing exactly, weakest name score, conflicts, lead over the runner-up
    (capped), no runner-up, the runner-up also agrees on a key, parts named, unplaced text, a named part
    or number conflicts].
    """
    best = scored[0]
    other = runner if runner is not None else (scored[1] if len(scored) > 1 else None)
    margin = best.score - other.score if other is not None else MARGIN_CAP
    said = sum(1 for k in ("road", "compound", "village") if getattr(parts, k))
    return [
        float(min(best.keys, 2)),
        float(min(best.exact_keys, 2)),
        best.name_min,
        float(min(best.conflicts, 2)),
        max(min(margin, MARGIN_CAP), -MARGIN_CAP),
        1.0 if other is None else 0.0,
        1.0 if other is not None and other.keys else 0.0,
        float(min(said, 2)),
        1.0 if parts.rest else 0.0,
        # a text that contradicts its best address (紫荆路9号2号楼 where 9号 is 4号楼) is never sure
        1.0 if best.named_conflict or best.number_conflict else 0.0,
    ]


__all__ = ["Candidate", "Match", "Matcher", "features", "fuzz", "pinyin"]
