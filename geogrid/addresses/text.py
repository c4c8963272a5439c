"""What does this address text say? Checking, normalising and parsing Chinese address text into parts.

``normalize`` folds the ways a hotline operator writes the same address into one form: NFKC (full-width
to half-width), Chinese numerals to Arabic digits (cn2an: 三十二 → 32), 栋/幢/座/号楼 → 号楼, 门/单元 →
单元, spaces and punctuation dropped, and the province/city/county prefix (内蒙古 鄂尔多斯市 准格尔旗) cut
with the names of cpca's administrative-division table. ``parse`` splits a normalised text into parts
with regular expressions anchored on the part suffixes (路/街/巷, 号, 小区/花园, 号楼, 单元, 村/嘎查, 组),
in any order; parts it cannot place are left in ``rest``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import cn2an
from rapidfuzz import fuzz, process

from geogrid.errors import InvalidAddress, cut
from geogrid.people import PHONE_LIKE

MAX_CHARS = 200
MEMO_SIZE = 50_000  # name lookups remembered per kind of name
MAX_HITS = 16  # registry names kept per part of a text: the best few are all a match ever needs  # longer than any real address; a hotline note pasted whole is not one

TOWNSHIP_SUFFIXES = ("街道", "苏木", "镇", "乡")
ROAD_SUFFIXES = ("大道", "大街", "国道", "路", "街", "巷")
COMPOUND_SUFFIXES = ("小区", "花园", "家园", "公寓", "新村", "片区", "社区", "大院", "宿舍", "家属院")
VILLAGE_SUFFIXES = ("嘎查", "村")

_CN_NUMERALS = "零〇一二两三四五六七八九十百千幺"
_NUMERAL_RUN = re.compile(f"[{_CN_NUMERALS}]+")
_PLAIN = re.compile(r"[\u4e00-\u9fff0-9a-z\-]*")
_SPACE_PUNCT = re.compile(r"[\s\u3000]+")
_BUILDING = re.compile(r"(\d+)(?:号楼|号栋|号幢|号座|栋|幢|座|号?楼(?!\d*层))")
_ENTRANCE = re.compile(r"(\d+)(?:单元门?|号门|门)")
_NAMED = re.compile(
    "(.+?)("
    + "|".join(
        sorted(
            TOWNSHIP_SUFFIXES + ROAD_SUFFIXES + COMPOUND_SUFFIXES + VILLAGE_SUFFIXES, key=len, reverse=True
        )
    )
    + ")"
)
_NUMBER = re.compile(r"(\d+(?:-\d+)?)(号楼|单元|组|社|室|户|层|号)?")
_KIND = {
    **{s: "township" for s in TOWNSHIP_SUFFIXES},
    **{s: "road" for s in ROAD_SUFFIXES},
    **{s: "compound" for s in COMPOUND_SUFFIXES},
    **{s: "village" for s in VILLAGE_SUFFIXES},
}


@dataclass(frozen=True)
class Parts:
    """The parts of an address text; None where the text does not give one, unplaced text in ``rest``."""

    township: str | None = None
    road: str | None = None
    door: str | None = None
    compound: str | None = None
    building: str | None = None
    entrance: str | None = None
    village: str | None = None
    group: str | None = None
    rest: str = ""


# text of these characters only needs no look at Unicode categories: it has no control characters, NFKC
# leaves it as it is, and it has a letter or a digit unless it is all spaces and ASCII punctuation
_USUAL = re.compile(r"[\u4e00-\u9fff0-9A-Za-z \-#()/.,]*")
_PUNCT_ONLY = re.compile(r"[ \-#()/.,]*")


def check_text(text: str) -> str:
    """Return ``text`` stripped, or raise InvalidAddress naming why it cannot be an address.

    Examples
    --------
    >>> check_text("  康和小区5号楼 ")
    '康和小区5号楼'
    """
    if not isinstance(text, str):
        raise InvalidAddress(f"an address must be text, not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise InvalidAddress(f"address text is {len(text)} characters long; at most {MAX_CHARS} are accepted")
    if _USUAL.fullmatch(text):  # the common case: ideographs, ASCII letters and digits (NFKC keeps them)
        stripped = text.strip()
        if not stripped:
            raise InvalidAddress("address text is empty")
        if _PUNCT_ONLY.fullmatch(stripped):
            raise InvalidAddress("address text is only punctuation", text=cut(stripped))
        return stripped
    for ch in text:
        if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r":
            raise InvalidAddress(
                f"address text contains a control character (U+{ord(ch):04X})", text=cut(text)
            )
    stripped = text.strip()
    if not stripped:
        raise InvalidAddress("address text is empty")
    folded = len(unicodedata.normalize("NFKC", stripped))
    if folded > MAX_CHARS:  # ﷺ is one character and 18 once normalised
        raise InvalidAddress(
            f"address text is {folded} characters long once normalised; at most {MAX_CHARS} are accepted"
        )
    if all(unicodedata.category(ch)[0] in "PZ" or ch.isspace() for ch in stripped):
        raise InvalidAddress("address text is only punctuation", text=cut(stripped))
    if not any(unicodedata.category(ch)[0] in "LN" for ch in stripped):
        raise InvalidAddress("address text has no letters or digits", text=cut(stripped))
    return stripped


@lru_cache(maxsize=4096)
def _arabic(run: str) -> str:
    """One run of Chinese numerals as Arabic digits (cn2an), unchanged when it is not a number."""
    try:
        return str(cn2an.cn2an(run.replace("幺", "一"), "smart"))
    except (ValueError, KeyError, IndexError, TypeError):
        return run


def _numerals(text: str) -> str:
    """Chinese numerals in ``text`` as Arabic digits (三十二 → 32, 五号楼 → 5号楼)."""
    return _NUMERAL_RUN.sub(lambda m: _arabic(m.group()), text) if _NUMERAL_RUN.search(text) else text


@lru_cache(maxsize=1)
def _admin_names() -> tuple[frozenset[str], frozenset[str], int, frozenset[str]]:
    """Province, city and county names from cpca's division table: full names, short forms (内蒙古), the
    longest name's length, and every name's first two characters (most texts start with none of them)."""
    import cpca  # slow to import (loads its table); only when a text may carry a prefix

    full: set[str] = {"中国", "中华人民共和国"}
    short: set[str] = set()
    for info in cpca.ad_2_addr_dict.values():
        name = _numerals(unicodedata.normalize("NFKC", info.name))
        full.add(name)
        cut_name = re.sub(
            "(特别行政区|维吾尔自治区|壮族自治区|回族自治区|自治区|自治州|省|市|地区|盟)$", "", name
        )
        if len(cut_name) >= 2 and cut_name != name:
            short.add(cut_name)
    return (
        frozenset(full),
        frozenset(short - full),
        max(map(len, full)),
        frozenset(n[:2] for n in full | short),
    )


_ROAD_OR_COMPOUND_START = re.compile(
    "^(" + "|".join(ROAD_SUFFIXES + COMPOUND_SUFFIXES + ("东", "西", "南", "北")) + ")"
)


def _admin_head(text: str) -> int:
    """Length of the administrative name ``text`` starts with (0 if none)."""
    full, short, longest, heads = _admin_names()
    if text[:2] not in heads:
        return 0
    for size in range(min(longest, len(text)), 1, -1):
        head = text[:size]
        if head not in full and head not in short:
            continue
        if _ROAD_OR_COMPOUND_START.match(text[size:]):
            continue  # 鄂尔多斯大街 stays a street: a suffix right after the name keeps it
        if head in full:
            return size
        # a short form (兴安 for 兴安盟) only when long (内蒙古) or another division follows: 兴安轩 is a compound
        if head in short and (size >= 3 or _admin_head(text[size:])):
            return size
    return 0


def strip_prefix(text: str) -> str:
    """``text`` without its leading province/city/county names (内蒙古鄂尔多斯市准格尔旗…); a text that is
    nothing but such names keeps the last one (鄂尔多斯市, not 市 or nothing)."""
    while (size := _admin_head(text)) and size < len(text):
        text = text[size:]
    return text


# a caller's phone (as given, or masked as the queue stores it) with its label: no part of an address
_PHONE = re.compile(
    r"(?:(?:联系)?(?:电话|手机|来电|tel)[:：]?\s*)?(?:"
    + PHONE_LIKE.pattern
    + r"|(?<!\d)[01]\d{2}\*{4,5}\d{4}(?!\d))"
)


_LONE_DASH = re.compile(r"(?<!\d)-|-(?!\d)")
_ANY_DIGIT = re.compile(r"\d")
_BUILDING_WORD = re.compile("[栋幢座]|(?<!号)楼")


def fold(text: str) -> str:
    """``normalize`` without cutting the administrative prefix (for registry names)."""
    text = unicodedata.normalize("NFKC", text).lower()
    if any(c.isdigit() for c in text):
        text = _PHONE.sub("", text)
    text = _SPACE_PUNCT.sub("", text)
    if not _PLAIN.fullmatch(text):  # the common case (CJK, digits, letters) needs no look at categories
        text = "".join(ch for ch in text if ch == "-" or unicodedata.category(ch)[0] not in "PZC")
    text = _numerals(text)
    if "-" in text:
        text = _LONE_DASH.sub("", text)
    if not _ANY_DIGIT.search(text):  # building and entrance numbers need digits
        return text
    if _BUILDING_WORD.search(text):  # 号楼 alone is already the one form
        text = _BUILDING.sub(r"\1号楼", text)
    return _ENTRANCE.sub(r"\1单元", text) if "门" in text else text  # 单元 alone is already it


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Fold an address text to one form: half-width, Arabic numerals, one suffix per part, no prefix.

    Examples
    --------
    >>> normalize("内蒙古鄂尔多斯市准格尔旗 迎泽路三十二号，康和小区５栋二门")
    '迎泽路32号康和小区5号楼2单元'
    """
    return strip_prefix(fold(text))


_KNOWN_CACHE: dict[int, tuple[Mapping[str, str], int, tuple[str, ...], frozenset[str]]] = {}


def _known_info(known: Mapping[str, str]) -> tuple[int, tuple[str, ...], frozenset[str]]:
    """The longest known name, the names with digits and the names' first two characters (cached)."""
    got = _KNOWN_CACHE.get(id(known))
    if got is None or got[0] is not known:
        names = list(known)
        digits = tuple(n for n in names if any(c.isdigit() for c in n))
        heads = frozenset(n[:2] for n in names) | frozenset(n[:2].translate(_HIDE) for n in digits)
        got = (known, max(map(len, names), default=0), digits, heads)
        if len(_KNOWN_CACHE) > 64:
            _KNOWN_CACHE.clear()
        _KNOWN_CACHE[id(known)] = got
    return got[1], got[2], got[3]


_SPLIT_MEMO: dict[int, tuple[Mapping[str, str], dict[str, list[tuple[str, str]]]]] = {}


def split_names(segment: str, known: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The named parts of a digit-free segment as (kind, name); kind "" for text with no part suffix.

    ``known`` names (name → kind, e.g. the registry's) are taken whole where they occur, before the
    suffix rules: 大路镇 is a township, not the road 大路 and a stray 镇. Remembered per set of known
    names: the same road and compound names open most texts of a batch.
    """
    if not known:
        return _split_names(segment, known)
    base = getattr(known, "base", known)
    entry = _SPLIT_MEMO.get(id(base))
    if entry is None or entry[0] is not base:  # an id is reused once its object is gone
        if len(_SPLIT_MEMO) > 64:
            _SPLIT_MEMO.clear()
        entry = _SPLIT_MEMO[id(base)] = (base, {})
    memo = entry[1]
    got = memo.get(segment)
    if got is None:
        if len(memo) > MEMO_SIZE:
            memo.clear()
        got = memo[segment] = _split_names(segment, known)
    return got


def _split_names(segment: str, known: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """``split_names`` without the memo."""
    if known:
        longest, _, heads = _known_info(getattr(known, "base", known))
        for start in range(len(segment) - 1):
            if segment[start : start + 2] not in heads:
                continue
            for size in range(min(longest, len(segment) - start), 1, -1):
                kind = known.get(segment[start : start + size])
                if kind:
                    return [
                        *split_names(segment[:start], known),
                        (kind, segment[start : start + size]),
                        *split_names(segment[start + size :], known),
                    ]
    found: list[tuple[str, str]] = []
    pos = 0
    for m in _NAMED.finditer(segment):
        found.append((_KIND[m.group(2)], m.group(1) + m.group(2)))
        pos = m.end()
    tail = segment[pos:]
    if tail and found and _KIND.get(tail) == found[-1][0]:
        found[-1] = (found[-1][0], found[-1][1] + tail)  # 新街街: the suffix repeats in the name
    elif tail:
        found.append(("", tail))
    return found


_PUA = 0xE000  # digits inside a name (纬11路, 109国道, 12连城乡) are hidden from the number parser here
_HIDE = str.maketrans("0123456789", "".join(chr(_PUA + i) for i in range(10)))
_HIDDEN = re.compile("[\ue000-\ue009]")
_SHOW = str.maketrans("".join(chr(_PUA + i) for i in range(10)), "0123456789")
_DIGIT_NAME = re.compile(
    r"(?<=[^\d号组楼元])\d+(?=" + "|".join(ROAD_SUFFIXES) + r")|\d+(?=国道)"
    # 经8农 (a road whose suffix was mistyped): one or two digits between two characters of a name
    r"|(?:^|(?<=[\u4e00-\u9fff])(?<![号组社楼元室户层路街巷道区园寓村乡镇木查]))\d{1,2}"
    r"(?=[\u4e00-\u9fff])(?!号|单元|组|社|室|户|层)"
)


def _hide_digits(s: str, known: Mapping[str, str] | None) -> str:
    """``s`` with the digits of names that contain digits turned into private-use characters."""
    s = _DIGIT_NAME.sub(lambda m: m.group().translate(_HIDE), s)
    for name in _known_info(known)[1] if known else ():
        if name in s:
            s = s.replace(name, name.translate(_HIDE))
    return s


class _Shown(dict[str, str]):
    """A view of known names that looks names up with their hidden digits shown again."""

    def __init__(self, known: Mapping[str, str]) -> None:
        super().__init__(known)
        self.base = known

    def get(self, key: str, default: Any = None) -> Any:
        """The kind of ``key`` with its digits shown."""
        return super().get(key.translate(_SHOW), default)


def parse(text: str, known: Mapping[str, str] | None = None, *, normalized: bool = False) -> Parts:
    """Split a text into its parts (normalised first unless ``normalized``); parts may come in any order.

    ``known`` names (normalised name → kind: township, road, compound, village) are kept whole, also
    when they contain digits (十二连城乡 → 12连城乡); the matcher passes the registry's.

    Examples
    --------
    >>> p = parse("康和小区5栋2单元，迎泽路32号")
    >>> (p.road, p.door, p.compound, p.building, p.entrance)
    ('迎泽路', '32', '康和小区', '5', '2')
    """
    s = _hide_digits(text if normalized else normalize(text), known)
    has_hidden = _HIDDEN.search(s) is not None
    hidden = _Shown(known) if known and has_hidden else known
    parts: dict[str, str] = {}
    rest: list[str] = []
    bare: set[str] = set()
    after_road: set[str] = set()
    guessed: set[str] = set()  # kinds filled by a name the registry does not know

    def place(kind: str, name: str) -> bool:
        """Put a name in its part (a known name displaces a guessed one); False when it goes to rest."""
        known_here = hidden is not None and hidden.get(name) == kind
        if kind and (kind not in parts or (kind in guessed and known_here)):
            if kind in parts:
                rest.append(parts[kind])
            parts[kind] = name
            guessed.discard(kind)
            if not known_here:
                guessed.add(kind)
            return True
        rest.append(name)
        return False

    last_kind = ""
    pos = 0
    for m in _NUMBER.finditer(s):
        for kind, name in split_names(s[pos : m.start()], hidden):
            last_kind = kind if place(kind, name) else ""
        pos = m.end()
        number, suffix = m.group(1), m.group(2) or ""
        if suffix == "号楼":
            key = "building"
        elif suffix == "单元":
            key = "entrance"
        elif suffix in ("组", "社"):
            key = "group"
        elif suffix in ("室", "户", "层"):
            rest.append(m.group())
            continue
        elif (
            last_kind in ("compound", "")
            and "building" not in parts
            and "-" not in number
            and re.match(r"\d+单元", s[m.end() :])
        ):
            key = "building"  # 嘉瑞园3号1单元: a number right before an entrance is the building
        elif last_kind == "compound" and "building" not in parts and "-" not in number:
            key = "building"  # 康和小区5号 / 康和小区5: the building, said short
        elif last_kind == "building" and "entrance" not in parts and not suffix:
            key = "entrance"
        else:
            key = "door"
        if key == "door" and last_kind == "road" and "door" in parts and "door" not in after_road:
            rest.append(parts[key])  # 嘉瑞园3号 … 凤山路49号: the number after the road is the door
            parts[key] = number
            after_road.add(key)
        elif key in parts and key == "door" and suffix == "号" and "door" in bare:
            rest.append(parts[key])  # 12 … 9号: the number said with 号 is the door
            parts[key] = number
            bare.discard("door")
        elif key in parts:
            rest.append(m.group())
        else:
            parts[key] = number
            if not suffix:
                bare.add(key)
            if last_kind == "road":
                after_road.add(key)
        last_kind = key
    for kind, name in split_names(s[pos:], hidden):
        place(kind, name)
    if has_hidden:
        return Parts(rest="".join(rest).translate(_SHOW), **{k: v.translate(_SHOW) for k, v in parts.items()})
    return Parts(rest="".join(rest), **parts)


# -- names: the registry's roads, compounds, villages and townships, looked up tolerantly ----------------

_PINYIN: dict[str, str] = {}


def pinyin(text: str) -> tuple[str, ...]:
    """The toneless pinyin of each character of ``text`` (pypinyin; other characters as themselves)."""
    out = []
    for ch in text:
        py = _PINYIN.get(ch)
        if py is None:
            from pypinyin import lazy_pinyin  # imported on first use: its dictionaries take a moment

            py = _PINYIN[ch] = lazy_pinyin(ch)[0] if "\u4e00" <= ch <= "\u9fff" else ch
        out.append(py)
    return tuple(out)


@lru_cache(maxsize=65536)
def spoken(text: str) -> str:
    """``text`` with its digits said as Chinese numerals again (经15路 → 经十五路), for fuzzy comparison.

    A typo or homophone in a numeral (经十桥路, 纬侍路) is one character away from the spoken form and
    further from the digits, so names are compared spoken.
    """
    if not any(c.isdigit() for c in text):
        return text
    return re.sub(
        r"\d+", lambda m: str(cn2an.an2cn(m.group(), "low")) if len(m.group()) < 9 else m.group(), text
    )


class Hit(NamedTuple):
    """How well a text's name agrees with one registry name: a score in [0, 1] and how it was found."""

    score: float
    how: str  # exact | fuzzy | alias


def _edits(seq: Any) -> list[Any]:
    """``seq`` (a str or a tuple) and every form of it with one element deleted (symmetric-delete keys)."""
    return [seq, *(seq[:i] + seq[i + 1 :] for i in range(len(seq)))]


def _best(found: dict[str, Hit], prefer: Container[str]) -> dict[str, Hit]:
    """The MAX_HITS best of ``found``: by score, then those in ``prefer``, then by name."""
    return dict(sorted(found.items(), key=lambda kv: (-kv[1].score, kv[0] not in prefer, kv[0]))[:MAX_HITS])


class Names:
    """One kind of registry name (roads, compounds …) indexed exactly, by core, pinyin and one-edit keys."""

    def __init__(self, values: Iterable[str], suffixes: tuple[str, ...]) -> None:
        self.suffixes = tuple(sorted(suffixes, key=len, reverse=True))
        self.split: dict[str, tuple[str, str]] = {}
        self._memo: dict[tuple[str, bool, frozenset[str]], dict[str, Hit]] = {}
        self._found: dict[tuple[str, bool], dict[str, Hit]] = {}
        self.pinyins: dict[str, tuple[str, ...]] = {}
        self.by_spoken: dict[str, set[str]] = {}
        self.exact: set[str] = set()
        self.aliases: dict[str, set[str]] = {}
        self.cores: dict[str, str] = {}
        self.by_core: dict[str, set[str]] = {}
        self.by_pinyin: dict[tuple[str, ...], set[str]] = {}
        self.by_edit: dict[Any, set[str]] = {}
        for value in set(values) - {""}:
            self.exact.add(value)
            self._index(value, value)
        self.core_lengths = sorted({len(c) for c in self.by_core}, reverse=True)

    def core(self, name: str) -> tuple[str, str]:
        """``name`` split into its core and its generic suffix (康安苑, 小区)."""
        got = self.split.get(name)
        if got is not None:
            return got
        for suffix in self.suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)], suffix
        return name, ""

    def _index(self, key: str, name: str) -> None:
        """Index ``key`` (a name or an alias) as leading to ``name``."""
        core, _ = self.core(key)
        self.split[key] = (core, _)
        self.by_core.setdefault(core, set()).add(name)
        core = self.cores[key] = spoken(core)
        self.by_spoken.setdefault(core, set()).add(name)
        py = pinyin(core)
        self.pinyins[key] = py
        self.by_pinyin.setdefault(py, set()).add(name)
        for k in (*_edits(core), *_edits(py)):
            self.by_edit.setdefault(k, set()).add(name)

    def add_alias(self, alias: str, name: str) -> None:
        """Let ``alias`` (an old or other name) lead to ``name``."""
        if alias and alias not in self.exact:
            self.aliases.setdefault(alias, set()).add(name)
            self._index(alias, name)
            self._memo.clear()
            self._found.clear()
            self.core_lengths = sorted({len(c) for c in self.by_core}, reverse=True)

    def lookup(
        self, text: str, *, bare: bool = False, prefer: frozenset[str] = frozenset()
    ) -> dict[str, Hit]:
        """Registry names ``text`` may be, with scores (memoised: the same names recur in every batch)."""
        key = (text, bare, prefer)
        got = self._memo.get(key)
        if got is None:
            if len(self._memo) > MEMO_SIZE:
                self._memo.clear()
                self._found.clear()
            # every name found is remembered whatever the township: only the cut to MAX_HITS asks for it
            found = self._found.get((text, bare))
            if found is None:
                found = self._found[(text, bare)] = self._lookup(text, bare=bare)
            got = self._memo[key] = _best(found, prefer) if len(found) > MAX_HITS else found
        return got

    def _lookup(self, text: str, *, bare: bool = False) -> dict[str, Hit]:
        """Every registry name ``text`` may be, with scores; ``bare``: text with no suffix, searched inside.

        ``lookup`` keeps the MAX_HITS best, the best first and, among equals, those in its ``prefer``.
        """
        found: dict[str, Hit] = {}

        def put(name: str, score: float, how: str) -> None:
            old = found.get(name)
            if old is None or old.score < score:
                found[name] = Hit(score, how)

        if not bare:
            if text in self.exact:
                put(text, 1.0, "exact")
            for name in self.aliases.get(text, ()):
                put(name, 1.0, "alias")
            core, suffix = self.core(text)
            cores = [core]
        else:
            suffix = ""
            cores = [text[i : i + n] for n in self.core_lengths for i in range(len(text) - n + 1) if n >= 2]
        for core in cores:
            for name in self.by_core.get(core, ()):
                same = self.core(name)[1] == suffix
                put(name, 0.97 if not suffix else 1.0 if same else 0.9, "fuzzy" if not same else "exact")
            for name in self.by_pinyin.get(pinyin(spoken(core)), ()):
                if name not in found:
                    same = self.core(name)[1] == suffix or not suffix
                    put(name, 0.93 if same else 0.85, "fuzzy")
        if bare and found:
            return found
        core = spoken(cores[0] if cores else text)
        py = pinyin(core)
        near: set[str] = set()
        for k in (*_edits(core), *_edits(py)):
            near |= self.by_edit.get(k, set())
        for name in near - set(found):
            other = self.cores.get(name) or spoken(self.core(name)[0])
            r = max(fuzz.ratio(core, other), fuzz.ratio(py, self.pinyins.get(name) or pinyin(other))) / 100
            same = self.core(name)[1] == suffix or not suffix
            put(name, (1 - 0.6 * (1 - r)) * (1.0 if same else 0.92), "fuzzy")
        if not found and not bare and len(core) >= 2:
            for other, r, _ in process.extract(
                core, list(self.by_spoken), scorer=fuzz.ratio, limit=3, score_cutoff=55
            ):
                for name in self.by_spoken[other]:
                    put(name, min(0.75, 1 - 0.6 * (1 - r / 100)), "fuzzy")
        return found
