"""The standard-address registry of a set in the database: import it, read it as of a date, and the queue
of texts the matcher was not sure of, whose resolution becomes an alias.

History is never lost: an address row is never deleted or rewritten. A file row that changes an address
ends the stored version on the day the change takes effect (its ``valid_from``) and adds a new one; a row
that gives a stored open address a ``valid_to`` ends it. A change dated on or before the day its stored
version starts would rewrite history, and is a row error. Addresses the file does not name are left as
they are (counted as ``absent``): a file may hold one street's addresses.

An import keeps good data beside bad, as roster imports do: with ``commit`` the good rows are written and
the bad ones reported (row as in the file, field, address id, message), all in one transaction, so if
anything fails while writing nothing is written. A write bumps the set's revision and leaves one audit line;
importing the same file again writes nothing.

A key limited to a street or community (``scope``) names only addresses whose point lies in a micro-grid
under it (the micro-grid comes from the index of the version in force today, never from the database), and
places queued texts only there.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from geogrid.addresses.registry import ADDRESS_COLUMNS, address_text, split_aliases
from geogrid.addresses.registry import validate_addresses as _validate
from geogrid.db import geocode_queue
from geogrid.db.schema import address, address_alias, building, valid_on
from geogrid.db.store import Store, _now, write_audit
from geogrid.errors import InvalidValue, OutOfScope, VersionConflict
from geogrid.index import GridIndex
from geogrid.people import shown
from geogrid.rosters import RowError

CONTENT: tuple[str, ...] = ("township", "road", "door", "compound", "building", "entrances", "village")
CONTENT += ("group", "lon", "lat", "building_id", "aliases")
STORED = ("address_id", *CONTENT, "valid_from", "valid_to")
MAX_LISTED = 1000  # changes a report lists (its counts are whole)
CHUNK = 1000


@dataclass
class RegistryReport:
    """What a registry import writes (or, as a dry run, would write), and the rows it cannot take."""

    set_name: str
    rows: int
    new: int = 0  # addresses not stored before
    changed: int = 0  # a new version of a stored address (the one before ended on its valid_from)
    unchanged: int = 0
    ended: int = 0  # stored open addresses the file gives a valid_to
    absent: int = 0  # addresses in force today the file does not name (left as they are)
    changes: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_LISTED: row, id, action
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    committed: bool = False  # the import ran with commit (and finished)
    written: bool = False  # something was written (the set's revision moved)
    revision: int | None = None  # the set's revision after the import

    def summary(self) -> dict[str, Any]:
        """Counts, the addresses that change and the row errors, for printing or JSON."""
        return {
            "set": self.set_name,
            "rows": self.rows,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "ended": self.ended,
            "absent": self.absent,
            "errors": len(self.errors),
            "committed": self.committed,
            "written": self.written,
            "revision": self.revision,
            "changes": self.changes,
            "row_errors": [
                {"row": e.row, "field": e.field, "address_id": e.person_id, "message": e.message}
                for e in self.errors
            ],
            "warnings": self.warnings,
        }


IndexOf = Callable[[str], GridIndex]


class AddressStore:
    """The standard addresses of a boundary set, the aliases people placed and the geocode queue."""

    def __init__(
        self,
        engine: Engine,
        actor: str = "geogrid",
        *,
        index: IndexOf | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        """``index`` gives the index of a set's version in force today (the API passes its loaded one);
        by default it is built from the database (or read from ``cache_dir``) when a scope needs it."""
        self.engine = engine
        self.actor = actor
        self.cache_dir = cache_dir
        self._store = Store(engine, actor)
        self._index_of = index
        self._indexes: dict[tuple[str, int], GridIndex] = {}

    # ---- the registry -----------------------------------------------------------------------------
    def import_addresses(
        self,
        set_name: str,
        frame: pd.DataFrame,
        *,
        commit: bool = False,
        scope: str | None = None,
        expect_revision: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RegistryReport:
        """Check every row of a registry (from :func:`geogrid.addresses.registry.read_addresses`) and, with
        ``commit``, write the good ones in one transaction; a dry run writes nothing.

        ``scope`` (a street or community code) refuses rows whose point lies outside it, as row errors;
        ``expect_revision`` refuses the write (VersionConflict) when the set has changed since.
        """
        good, errors = _validate(frame)
        codes = self._microgrids(set_name, good["lon"], good["lat"]) if scope is not None else None
        with self.engine.begin() as conn:
            set_id, seen = self._store._set_row(conn, set_name, lock=commit)
            report = RegistryReport(set_name=set_name, rows=len(frame), errors=errors)
            stored = _versions(conn, set_id)
            stored_codes = None
            if scope is not None:
                latest = [v[-1] for v in stored.values()]
                stored_codes = dict(
                    zip(
                        [v["address_id"] for v in latest],
                        self._microgrids(set_name, [v["lon"] for v in latest], [v["lat"] for v in latest]),
                        strict=True,
                    )
                )
            ends, inserts = _plan(
                report, good, stored, _building_ids(conn, set_id), scope, codes, stored_codes
            )
            report.errors.sort(key=lambda e: (e.row, e.field))
            report.absent = _absent(stored, set(good["address_id"]))
            report.revision = seen
            if not commit:
                conn.rollback()
                return report
            report.committed = True
            if not ends and not inserts:  # nothing to write: the revision stays (a re-import is a no-op)
                _check_expected(set_name, seen, expect_revision)
                return report
            self._store._claim(conn, set_id, set_name, seen, expect_revision)
            now = _now()
            for start in range(0, len(ends), CHUNK):
                conn.execute(
                    sa.update(address)
                    .where(address.c.id == sa.bindparam("ref"))
                    .values(valid_to=sa.bindparam("end"), ended_at=now, ended_by=self.actor),
                    [{"ref": ref, "end": end} for ref, end in ends[start : start + CHUNK]],
                )
            for start in range(0, len(inserts), CHUNK):
                part = inserts[start : start + CHUNK]
                rows = [{**r, "set_id": set_id, "created_at": now, "created_by": self.actor} for r in part]
                conn.execute(sa.insert(address), rows)
                if progress is not None:
                    progress(start + len(part), len(inserts))
            counts = {k: v for k, v in report.summary().items() if type(v) is int and k != "revision"}
            write_audit(conn, self.actor, "import_addresses", {**counts, "scope": scope}, set_name=set_name)
            report.written, report.revision = True, seen + 1
        return report

    def addresses(self, set_name: str, at: dt.date | None = None, *, history: bool = False) -> pd.DataFrame:
        """The set's addresses in force on ``at`` (default: today) as :data:`ADDRESS_COLUMNS`, by id;
        with ``history`` every version ever stored (``at`` ignored), oldest first per id."""
        at = at or dt.date.today()
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            query = sa.select(*(address.c[c] for c in STORED)).where(address.c.set_id == set_id)
            if not history:
                query = query.where(valid_on(address, at))
            found = [dict(r) for r in conn.execute(query).mappings()]
        found.sort(key=lambda r: (r["address_id"], r["valid_from"]))
        for rec in found:
            rec["text"] = address_text(rec)
        frame = pd.DataFrame(found, columns=list(ADDRESS_COLUMNS), dtype=object)
        frame["lon"] = frame["lon"].astype(float)
        frame["lat"] = frame["lat"].astype(float)
        frame["entrances"] = frame["entrances"].astype("Int64")
        return frame

    def aliases(self, set_name: str) -> dict[str, str | tuple[float, float]]:
        """Normalised text → address id or (lon, lat): the texts people placed from the queue (on an
        address still in force, or a point), and the registry's 别名 that name exactly one address in
        force today (an old compound name shared by its buildings names none of them: the matcher takes
        those as another name of the compound)."""
        today = dt.date.today()
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            listed = conn.execute(
                sa.select(address.c.address_id, address.c.aliases).where(
                    address.c.set_id == set_id,
                    address.c.aliases.is_not(None),
                    valid_on(address, today),
                )
            ).all()
            in_force = sa.select(address.c.address_id).where(
                address.c.set_id == set_id, valid_on(address, today)
            )
            placed = conn.execute(  # a placement on an address that has since ended says nothing today
                sa.select(
                    address_alias.c.norm, address_alias.c.address_id, address_alias.c.lon, address_alias.c.lat
                )
                .where(
                    address_alias.c.set_id == set_id,
                    sa.or_(address_alias.c.address_id.is_(None), address_alias.c.address_id.in_(in_force)),
                )
                .order_by(address_alias.c.id)
            ).all()
        named: dict[str, set[str]] = {}
        for address_id, cell in listed:
            for alias in split_aliases(cell):
                named.setdefault(geocode_queue.key(alias), set()).add(address_id)
        out: dict[str, str | tuple[float, float]] = {
            k: next(iter(v)) for k, v in named.items() if len(v) == 1
        }
        for norm, address_id, lon, lat in placed:  # a person's placement wins
            out[norm] = address_id if address_id is not None else (float(lon), float(lat))
        return out

    def registry_revision(self, set_name: str) -> str:
        """A token that changes with any registry or alias write, and with the day (what is in force
        changes at midnight): key a matcher cache on it."""
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            top, ended = conn.execute(
                sa.select(sa.func.max(address.c.id), sa.func.count(address.c.valid_to)).where(
                    address.c.set_id == set_id
                )
            ).one()
            last, count = conn.execute(
                sa.select(sa.func.max(address_alias.c.id), sa.func.count()).where(
                    address_alias.c.set_id == set_id
                )
            ).one()
        return f"s{set_id}.a{top or 0}.e{ended}.l{last or 0}.n{count}.{dt.date.today().isoformat()}"

    # ---- the queue --------------------------------------------------------------------------------
    def enqueue(self, set_name: str, matches: Sequence[Any], source: str) -> list[int]:
        """Queue the texts of ``matches`` (:class:`geogrid.addresses.matcher.Match`) for a person to place;
        the queue item id of each, in order. A text already open (the same normalised text) is not queued
        twice: its item is seen once more and keeps the newest candidates. Phones in a text are masked."""
        if not matches:
            return []
        with self.engine.begin() as conn:
            set_id, _ = self._store._set_row(conn, set_name, lock=True)  # one enqueue of a set at a time
            return geocode_queue.enqueue(conn, set_id, matches, source)

    def queue(
        self,
        set_name: str,
        *,
        status: str | None = "open",
        scope: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Queue items (:data:`geogrid.db.geocode_queue.QUEUE_COLUMNS`), oldest first: ``status`` open,
        resolved or None (all). With ``scope``, only items with a candidate (or a placement) under it."""
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            if scope is None:
                found = geocode_queue.items(conn, set_id, status, limit=limit, offset=offset)
            else:  # read a page at a time until enough are in scope: the queue only grows
                wanted, start = max(offset, 0) + max(limit, 0), 0
                kept: list[dict[str, Any]] = []
                while len(kept) < wanted:
                    page = geocode_queue.items(conn, set_id, status, limit=geocode_queue.CHUNK, offset=start)
                    kept += self._in_scope(set_name, page, scope)
                    start += len(page)
                    if len(page) < geocode_queue.CHUNK:
                        break
                found = kept[max(offset, 0) : wanted]
        return pd.DataFrame(found, columns=geocode_queue.QUEUE_COLUMNS)

    def resolve(
        self,
        set_name: str,
        item_id: int,
        *,
        address_id: str | None = None,
        point: tuple[float, float] | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        """Place a queued text on an address in force today or a WGS-84 point (lon, lat): the item is
        closed and its normalised text becomes an alias, so the same text matches by itself next time.

        The resolved item as a dict, with ``alias`` (the normalised text). NotFound for no such item or
        address, VersionConflict for an item already resolved, InvalidCoordinates for a point outside
        China, OutOfScope for a target outside ``scope``; one audit line.
        """
        if (address_id is None) == (point is None):
            raise InvalidValue("give an address id or a point (lon, lat), not both", field="address_id")
        if point is not None:
            point = geocode_queue.china_point(point)
        index = self._index(set_name) if scope is not None else None

        def inside(lon: float, lat: float) -> None:
            code = str(index.assign([lon], [lat]).code[0]) if index is not None else ""
            if scope is not None and not code.startswith(scope):
                what = f"address {address_id}" if address_id is not None else "the point"
                raise OutOfScope(
                    f"{what} lies in {code or 'no micro-grid'}, outside {scope}, the key's scope",
                    scope=scope,
                    item_id=item_id,
                )

        with self.engine.begin() as conn:
            set_id, _ = self._store._set_row(conn, set_name, lock=True)  # resolves of a set one at a time
            item = geocode_queue.resolve(
                conn,
                set_id,
                set_name,
                item_id,
                address_id,
                point,
                self.actor,
                inside,
                # a scoped caller resolves only what its queue list shows it
                (lambda found: bool(self._in_scope(set_name, [found], scope))) if scope is not None else None,
            )
            detail = {
                "item_id": item_id,
                "text": item["text"],
                "address_id": address_id,
                "point": None if address_id is not None else [item["lon"], item["lat"]],
                "replaced_alias": item.pop("replaced_alias"),
            }
            write_audit(conn, self.actor, "resolve_address", detail, set_name=set_name)
        return item

    # ---- micro-grids --------------------------------------------------------------------------------
    def _index(self, set_name: str) -> GridIndex:
        """The index of the set's version in force today."""
        if self._index_of is not None:
            return self._index_of(set_name)
        number = self._store.version_at(set_name).number
        key = (set_name, number)
        if key not in self._indexes:
            self._indexes = {
                key: GridIndex.from_version(self._store, set_name, cache_dir=self.cache_dir)
            }  # one kept: the newest
        return self._indexes[key]

    def _microgrids(self, set_name: str, lon: Iterable[float], lat: Iterable[float]) -> list[str]:
        """The micro-grid code of each point ('' where none), from the index in force today."""
        x, y = np.asarray(list(lon), dtype=float), np.asarray(list(lat), dtype=float)
        if not len(x):
            return []
        return [str(c) for c in self._index(set_name).assign(x, y).code]

    def _in_scope(self, set_name: str, items: list[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
        """The items with a candidate or a placement whose point lies under ``scope``."""
        points: list[tuple[int, float, float]] = []
        for n, item in enumerate(items):
            for c in item["candidates"] or []:
                if (
                    isinstance(c, Mapping)
                    and _float(c.get("lon")) is not None
                    and _float(c.get("lat")) is not None
                ):
                    points.append((n, float(c["lon"]), float(c["lat"])))
            if item["lon"] is not None and item["lat"] is not None:
                points.append((n, item["lon"], item["lat"]))
        placed = {a: n for n, a in enumerate(i["address_id"] for i in items) if a}
        if placed:
            found = self.addresses(set_name)
            found = found[found["address_id"].isin(set(placed))]
            for aid, lon, lat in zip(found["address_id"], found["lon"], found["lat"], strict=True):
                points.append((placed[aid], float(lon), float(lat)))
        codes = self._microgrids(set_name, [p[1] for p in points], [p[2] for p in points])
        keep = {p[0] for p, code in zip(points, codes, strict=True) if code.startswith(scope)}
        return [item for n, item in enumerate(items) if n in keep]


# ---- planning an import -----------------------------------------------------------------------------
Versions = dict[str, list[dict[str, Any]]]  # address id -> stored versions, oldest first


def _versions(conn: Connection, set_id: int) -> Versions:
    """Every stored version of the set's addresses, by id."""
    query = sa.select(address.c.id, *(address.c[c] for c in STORED)).where(address.c.set_id == set_id)
    out: Versions = {}
    for rec in conn.execute(query).mappings():
        out.setdefault(rec["address_id"], []).append(dict(rec))
    for versions in out.values():
        versions.sort(key=lambda v: v["valid_from"])
    return out


def _plan(
    report: RegistryReport,
    good: pd.DataFrame,
    stored: Versions,
    buildings: set[str] | None,
    scope: str | None,
    codes: list[str] | None,
    stored_codes: dict[str, str] | None,
) -> tuple[list[tuple[int, dt.date]], list[dict[str, Any]]]:
    """Decide each good row against the stored versions (counts, changes and row errors into ``report``):
    the stored rows to end (id, valid_to) and the rows to insert."""
    ends: list[tuple[int, dt.date]] = []
    inserts: list[dict[str, Any]] = []
    for n, rec in enumerate(good.to_dict("records")):
        row, aid = int(rec["row"]), rec["address_id"]
        rec = {k: (None if _missing(v) else v) for k, v in rec.items()}
        if rec["entrances"] is not None:
            rec["entrances"] = int(rec["entrances"])
        versions = stored.get(aid, [])
        error = _scope_error(rec, scope, codes[n] if codes is not None else None, stored_codes)
        if (
            error is None
            and buildings is not None
            and rec["building_id"]
            and rec["building_id"] not in buildings
        ):
            error = ("building_id", f"no building {shown(rec['building_id'])!r} in the set")
        if error is None:
            action, error, end = _action(rec, versions)
        if error is not None:
            report.errors.append(RowError(row, error[0], error[1], aid))
            continue
        if action == "unchanged":
            report.unchanged += 1
            continue
        if action == "end":
            assert end is not None
            ends.append(end)
            report.ended += 1
        else:
            if end is not None:
                ends.append(end)
            inserts.append({c: rec[c] for c in STORED})
            if action == "new":
                report.new += 1
            else:
                report.changed += 1
        if len(report.changes) < MAX_LISTED:
            report.changes.append({"row": row, "address_id": aid, "action": action, "text": rec["text"]})
    return ends, inserts


def _action(
    rec: dict[str, Any], versions: list[dict[str, Any]]
) -> tuple[str, tuple[str, str] | None, tuple[int, dt.date] | None]:
    """What a row does to the stored versions of its address: new, unchanged, end (a stored open version
    gets the row's valid_to) or changed (the stored version ends on the row's valid_from, if open), with
    the stored row to end; or the row error (field, message) of a row that would rewrite history."""
    if not versions:
        return "new", None, None
    same_start = versions_same_start(versions, rec)
    if same_start is not None:
        if _differs(same_start, rec):
            fields = ", ".join(_differs(same_start, rec))
            message = (
                f"changes {fields} from {rec['valid_from']}, the day its stored version starts; "
                f"give the day the change takes effect as valid_from (after {rec['valid_from']})"
            )
            return "", ("valid_from", message), None
        if same_start["valid_to"] == rec["valid_to"]:
            return "unchanged", None, None
        if same_start["valid_to"] is None:
            return "end", None, (same_start["id"], rec["valid_to"])
        return "", ("valid_to", f"ended on {same_start['valid_to']} already; history is not rewritten"), None
    latest = versions[-1]
    if rec["valid_from"] < latest["valid_from"]:
        message = f"starts before its stored version of {latest['valid_from']}; history is not rewritten"
        return "", ("valid_from", message), None
    if latest["valid_to"] is None:
        if not _differs(latest, rec) and rec["valid_to"] is None:
            return "unchanged", None, None  # in force since earlier, as the file says
        return "changed", None, (latest["id"], rec["valid_from"])
    if latest["valid_to"] > rec["valid_from"]:
        message = (
            f"overlaps its stored version of {latest['valid_from']} to {latest['valid_to']}; "
            "history is not rewritten"
        )
        return "", ("valid_from", message), None
    return "changed", None, None  # back in force after a gap


def versions_same_start(versions: list[dict[str, Any]], rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored version starting on the row's valid_from, if any."""
    return next((v for v in versions if v["valid_from"] == rec["valid_from"]), None)


def _differs(stored: Mapping[str, Any], rec: Mapping[str, Any]) -> list[str]:
    """The content fields a row gives otherwise than a stored version."""
    out = []
    for c in CONTENT:
        a, b = stored[c], rec[c]
        if c in ("lon", "lat"):
            same = a is not None and b is not None and float(a) == float(b)
        else:
            same = (None if a == "" else a) == (None if b == "" else b)
        if not same:
            out.append(c)
    return out


def _scope_error(
    rec: dict[str, Any], scope: str | None, code: str | None, stored_codes: dict[str, str] | None
) -> tuple[str, str] | None:
    """A row whose point, or whose stored address's point, lies outside ``scope``."""
    if scope is None or code is None:
        return None
    if not code.startswith(scope):
        return "lon", f"the point lies in {code or 'no micro-grid'}, outside {scope}, the key's scope"
    was = (stored_codes or {}).get(rec["address_id"])
    if was is not None and not was.startswith(scope):
        return "address_id", f"stored in {was or 'no micro-grid'}, outside {scope}, the key's scope"
    return None


def _absent(stored: Versions, named: set[str]) -> int:
    """Addresses in force today that the file does not name."""
    today = dt.date.today()
    return sum(
        1
        for aid, versions in stored.items()
        if aid not in named
        and any(
            v["valid_from"] <= today and (v["valid_to"] is None or today < v["valid_to"]) for v in versions
        )
    )


def _building_ids(conn: Connection, set_id: int) -> set[str] | None:
    """The set's building ids; None when it has no buildings yet (then ids are not checked)."""
    found = set(conn.execute(sa.select(building.c.id).where(building.c.set_id == set_id)).scalars())
    return found or None


def _check_expected(set_name: str, seen: int, expect: int | None) -> None:
    if expect is not None and expect != seen:
        raise VersionConflict(
            f"{set_name!r} has changed since revision {expect} (it is at {seen}); reload and retry",
            set=set_name,
            revision=seen,
        )


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
