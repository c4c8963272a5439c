"""How would a hotline operator type this address? Generated renderings of registry addresses.

``variants(registry, n, seed)`` draws addresses from a registry (``ADDRESS_COLUMNS`` rows) and writes each
the way a 12345 operator might: a look-alike or same-sounding character in a name, numbers in Chinese or
in digits, a part left out or put first, province/city/county prefixes, full-width digits, stray spaces
and punctuation, 栋/幢/座 for 号楼, an entrance (单元/门) named. Each variant combines one to three of
these (``KINDS``) and keeps enough of the address to name its building without doubt: a part is left out
only when the rest is unique in the registry, and a changed name never becomes another name of the
registry. The matcher's tests and its calibration use these; the module shares no code with the matcher.

Examples
--------
>>> import pandas as pd
>>> row = {"address_id": "A1", "township": "薛家湾镇", "road": "迎泽路", "door": "32",
...        "compound": "康和小区", "building": "5", "entrances": 3, "building_id": "B1"}
>>> [v.address_id for v in variants(pd.DataFrame([row]), 3, seed=1)]
['A1', 'A1', 'A1']
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cn2an
import pandas as pd
from pypinyin import Style, lazy_pinyin
from rapidfuzz.distance import Levenshtein

KINDS: tuple[str, ...] = (
    "no_township",  # the township left out
    "no_road",  # road and door number left out (compound and building still name the building)
    "no_compound",  # the compound's name left out (road and door still name it)
    "no_building",  # the building number left out (road and door still name it)
    "entrance",  # "N单元" added (the building has N or more entrances)
    "entrance_door",  # "N门" added, the other way to say 单元
    "building_word",  # 5号楼 written 5栋, 5幢 or 5座
    "typo",  # one character of a name replaced by a look-alike (薛 → 薜)
    "homophone",  # one character of a name replaced by a common one of the same pinyin (康 → 抗)
    "numerals_zh",  # numbers in Chinese: 32号 → 三十二号, 5号楼 → 五号楼, 3组 → 三组
    "numerals_arabic",  # Chinese numerals of a name in digits: 经十二路 → 经12路
    "prefix",  # 内蒙古(自治区), 鄂尔多斯(市), 准格尔旗 put before
    "reorder",  # compound and building before road and door
    "fullwidth",  # digits full-width: 32 → ３２
    "punctuation",  # spaces and ，。、- between parts
)

#: Look-alike characters (one stroke more or less, a component swapped) for the characters of the
#: registry's vocabulary: road and compound words, the demo county's townships, common name characters.
CONFUSABLE: dict[str, str] = {
    "路": "略璐", "街": "衔", "巷": "港卷", "道": "遒", "大": "太犬", "小": "少", "区": "匹巨",
    "园": "圆", "苑": "范宛", "家": "冢", "花": "苍", "村": "材树", "组": "阻", "号": "亏", "楼": "搂",
    "镇": "填慎", "寓": "禺", "城": "域", "居": "局", "府": "俯", "庭": "廷", "院": "阮", "湾": "弯",
    "轩": "轨", "里": "厘", "新": "亲", "公": "么", "片": "斤", "嘎": "戛", "查": "杳",
    "薛": "薜", "沙": "抄纱", "圪": "屹", "堵": "睹", "准": "淮", "格": "洛恪", "尔": "尓", "召": "沼",
    "纳": "钠", "日": "曰", "松": "淞", "魏": "巍", "峁": "茆", "连": "运", "暖": "缓", "水": "永",
    "布": "市", "陶": "淘", "木": "本术", "隆": "降", "蓝": "篮", "天": "夭", "友": "反", "谊": "宜",
    "金": "全", "盛": "盘", "宏": "宋", "康": "唐", "景": "影", "绿": "缘", "锦": "绵", "北": "比",
    "东": "车", "西": "酉", "御": "卸", "翠": "萃", "瑞": "端", "泰": "秦", "凤": "风", "龙": "尤",
    "福": "幅", "鑫": "森", "嘉": "喜", "丰": "半", "银": "很", "华": "毕", "祥": "详", "和": "知",
    "安": "妄", "南": "商", "兴": "关", "迎": "仰", "泽": "译", "阳": "阴", "明": "朋", "光": "先",
    "平": "乎", "民": "氏", "人": "入", "建": "健", "设": "没", "青": "靑", "清": "情", "文": "丈",
    "工": "土", "王": "玉", "土": "士", "士": "土", "田": "由", "白": "自", "千": "干", "力": "办",
    "万": "方", "河": "诃", "湖": "瑚", "海": "悔", "洋": "样", "林": "材", "桥": "侨", "石": "右",
    "中": "申", "心": "必", "正": "止", "胜": "牲", "利": "刹", "团": "困", "富": "副", "宁": "宇",
    "开": "并", "德": "徳", "永": "水", "泉": "录", "山": "出", "塔": "搭", "滩": "摊", "梁": "粱",
    "乐": "尔", "寿": "涛", "进": "讲", "关": "美", "门": "闩", "书": "韦", "保": "堡", "共": "其",
    "业": "亚", "旺": "汪", "农": "衣", "场": "扬", "凌": "凑", "霄": "宵", "刘": "浏", "前": "煎",
    "升": "开", "博": "傅", "爱": "受", "厚": "原", "古": "吉", "合": "含", "吉": "古", "同": "周",
    "向": "问", "荣": "荥", "美": "关", "顺": "须", "复": "夏", "夏": "复", "雨": "两", "孙": "逊",
    "学": "觉", "营": "宫", "崇": "祟", "巴": "巳", "广": "厂", "振": "赈", "旧": "归", "昌": "晶",
    "春": "泰", "风": "凤", "望": "忘", "机": "几", "杏": "呆", "杭": "抗", "枣": "束", "柳": "仰",
    "桃": "挑", "梅": "悔", "榆": "愉", "欣": "钦", "武": "式", "油": "由", "沿": "铅", "棠": "堂",
    "涌": "诵", "温": "湿", "滨": "宾", "燕": "蒸", "牡": "牲", "牧": "收", "狮": "师", "玉": "王",
    "珍": "诊", "甘": "廿", "电": "申", "畅": "肠", "矿": "旷", "磨": "摩", "秀": "诱", "秋": "秌",
    "科": "料", "立": "产", "粮": "狼", "紫": "柴", "繁": "緐", "红": "缸", "育": "盲", "能": "熊",
    "苏": "芬", "草": "革", "莺": "茑", "菊": "鞠", "菜": "采", "葡": "匍", "萄": "匐", "虎": "虑",
    "观": "现", "贾": "贯", "赵": "越", "车": "东", "达": "这", "那": "哪", "郝": "赫", "郭": "廓",
    "鄂": "萼", "阿": "呵", "雁": "鹰", "韩": "鞘", "马": "乌", "鸿": "鸡",
    "乌": "鸟", "鹊": "鹄", "鹤": "鹌", "鹿": "麂", "黄": "寅", "兰": "半", "哈": "恰", "拉": "垃",
    "沁": "泌", "音": "昔", "敖": "傲", "包": "刨", "黑": "墨", "岱": "贷", "棉": "绵", "图": "囹",
    "羊": "半", "市": "布", "咀": "阻", "房": "防",
}  # fmt: skip

#: Province, city and county before the township, in the ways people say them.
PREFIXES: tuple[tuple[str, ...], ...] = (
    ("内蒙古自治区", "内蒙古"),
    ("鄂尔多斯市", "鄂尔多斯"),
    ("准格尔旗",),
)
BUILDING_WORDS = ("栋", "幢", "座")
SEPARATORS = (" ", "  ", "，", "。", "、", "-", ",", " ，")
NAME_PARTS = ("township", "road", "compound", "village")
_NUMERAL_RUN = re.compile(r"[一二三四五六七八九十]+")  # 百 of 百合街 is no number
_FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


@dataclass(frozen=True)
class Variant:
    """One rendering of a registry address, the address and building it means, and how it was made."""

    text: str
    address_id: str
    building_id: str
    kinds: tuple[str, ...]


@dataclass
class _Draft:
    """An address on its way to a text: its parts and how they will be written."""

    parts: dict[str, str | None]
    prefix: list[str] = field(default_factory=list)
    entrance: str | None = None
    entrance_word: str = "单元"
    building_word: str = "号楼"
    compound_first: bool = False
    chinese: frozenset[str] = frozenset()  # number parts written in Chinese numerals
    touched: frozenset[str] = frozenset()  # name parts already given a typo or homophone


@functools.cache
def common_homophones() -> dict[str, tuple[str, ...]]:
    """Pinyin (toneless, as typed into an input method) → the common characters read so.

    The common characters are the 3,755 of GB 2312's first level (the 一级常用汉字 of the standard).
    """
    table: dict[str, list[str]] = {}
    for high in range(0xB0, 0xD8):
        for low in range(0xA1, 0xFF):
            if high == 0xD7 and low > 0xF9:
                break
            char = bytes([high, low]).decode("gb2312")
            table.setdefault(lazy_pinyin(char, style=Style.NORMAL)[0], []).append(char)
    return {sound: tuple(chars) for sound, chars in table.items()}


def _value(row: dict[str, Any], column: str) -> str | None:
    """A registry cell as text; None when empty or missing (pandas reads numbers as floats or ints)."""
    value = row.get(column)
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def canonical_text(parts: dict[str, str | None]) -> str:
    """The registry's own text for an address (as ``registry.address_text``), to tell variants from it."""
    p = {k: v or "" for k, v in parts.items()}
    if p["village"]:
        return f"{p['township']}{p['village']}{p['group']}组{p['door']}号"
    road = f"{p['road']}{p['door']}号" if p["road"] else ""
    compound = f"{p['compound']}{p['building']}号楼" if p["compound"] else ""
    return f"{p['township']}{road}{compound}"


class _Keys:
    """Which combinations of parts name exactly one address of the registry."""

    def __init__(self, rows: list[dict[str, str | None]]) -> None:
        self.counts: Counter[Hashable] = Counter()
        for parts in rows:
            for key in self._keys(parts, with_township=True) + self._keys(parts, with_township=False):
                self.counts[key] += 1

    @staticmethod
    def _keys(parts: dict[str, str | None], with_township: bool) -> list[Hashable]:
        """The identifying keys an address offers: road+door, compound+building, village+group+door."""
        town = parts["township"] if with_township else None
        keys: list[Hashable] = []
        if parts["road"] and parts["door"]:
            keys.append(("road", town, parts["road"], parts["door"]))
        if parts["compound"] and parts["building"]:
            keys.append(("compound", town, parts["compound"], parts["building"]))
        if parts["village"] and parts["group"] and parts["door"]:
            keys.append(("village", town, parts["village"], parts["group"], parts["door"]))
        return keys

    def identifies(self, parts: dict[str, str | None]) -> bool:
        """Whether what is left of an address still names one registry address."""
        return any(self.counts[k] == 1 for k in self._keys(parts, with_township=bool(parts["township"])))


def _numbers(d: _Draft) -> list[str]:
    """The number parts a draft writes (door, building, group, entrance) whose value is all digits."""
    out = [k for k in ("door", "building", "group") if d.parts[k] and str(d.parts[k]).isdigit()]
    return out + (["entrance"] if d.entrance else [])


def _number(d: _Draft, key: str) -> str:
    """A number part as written: digits, or Chinese numerals when the draft says so."""
    value = d.entrance if key == "entrance" else d.parts[key]
    assert value is not None
    return str(cn2an.an2cn(int(value))) if key in d.chinese else value


def _segments(d: _Draft) -> list[str]:
    """The draft's text in pieces, in order (separators go between pieces)."""
    p = d.parts
    head = [*d.prefix, *([p["township"]] if p["township"] else [])]
    if p["village"]:
        return [*head, p["village"], f"{_number(d, 'group')}组", f"{_number(d, 'door')}号"]
    road = [p["road"], f"{_number(d, 'door')}号"] if p["road"] else []
    building = [f"{_number(d, 'building')}{d.building_word}"] if p["building"] else []
    entrance = [f"{_number(d, 'entrance')}{d.entrance_word}"] if d.entrance else []
    compound = ([p["compound"]] if p["compound"] else []) + building + entrance
    body = compound + road if d.compound_first else road + compound
    return [*head, *(s for s in body if s)]


class _Names:
    """The registry's names (and aliases), and their cores: the name less its last one or two characters."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = set(names)
        self.cores: dict[str, set[str]] = {}
        for name in self.names:
            for core in (name[:-1], name[:-2]):
                if len(core) >= 2:
                    self.cores.setdefault(core, set()).add(name)

    def taken(self, renamed: str, original: str) -> bool:
        """Whether a changed name is, or shares its core with, another registry name (another address).

        康和苑 written for 康和小区 would be 康和苑小区's, or both: not a variant of 康和小区 alone.
        """
        if renamed in self.names:
            return True
        return any(
            self.cores.get(core, set()) - {original}
            for core in (renamed[:-1], renamed[:-2])
            if len(core) >= 2
        )


def _rename(d: _Draft, rng: random.Random, names: _Names, swap: Callable[[str], Iterable[str]]) -> bool:
    """Replace one character of one untouched name by one ``swap`` offers; False when none can be."""
    options = []
    for part in NAME_PARTS:
        name = d.parts[part]
        if name and part not in d.touched:
            for i, char in enumerate(name):
                options += [(part, i, new) for new in swap(char)]
    rng.shuffle(options)
    for part, i, new in options:
        name = d.parts[part]
        assert name is not None
        renamed = name[:i] + new + name[i + 1 :]
        if not names.taken(renamed, name):  # another registry name would be another address
            d.parts = {**d.parts, part: renamed}
            d.touched |= {part}
            return True
    return False


def _homophones(char: str) -> tuple[str, ...]:
    """Common characters that sound like ``char`` (toneless pinyin), ``char`` itself left out."""
    if not ("\u4e00" <= char <= "\u9fff"):
        return ()
    sound = lazy_pinyin(char, style=Style.NORMAL)[0]
    return tuple(c for c in common_homophones().get(sound, ()) if c != char)


def _arabic(d: _Draft, rng: random.Random) -> bool:
    """Write the Chinese numerals inside one name in digits (经十二路 → 经12路); False when no name has any."""
    named = [p for p in NAME_PARTS if d.parts[p] and _NUMERAL_RUN.search(str(d.parts[p]))]
    if not named:
        return False
    part = rng.choice(named)
    name = str(d.parts[part])
    d.parts = {**d.parts, part: _NUMERAL_RUN.sub(lambda m: str(cn2an.cn2an(m.group(), "smart")), name)}
    return True


def _perturb(kind: str, d: _Draft, rng: random.Random, row: dict[str, Any], names: _Names) -> bool:
    """Apply one kind of change to a draft; False when it does not apply to this address."""
    p = d.parts
    if kind == "no_township":
        d.parts = {**p, "township": None}
        return bool(p["township"])
    if kind == "no_road":
        d.parts = {**p, "road": None, "door": None}
        return bool(p["road"] and p["compound"] and p["building"])
    if kind == "no_compound":
        d.parts = {**p, "compound": None}
        return bool(p["compound"] and p["road"])
    if kind == "no_building":
        d.parts = {**p, "building": None}
        return bool(p["building"] and p["road"])
    if kind in ("entrance", "entrance_door"):
        entrances = int(float(row.get("entrances") or 0))
        if d.entrance or p["village"] or entrances < 1:
            return False
        d.entrance = str(rng.randint(1, entrances))
        d.entrance_word = "单元" if kind == "entrance" else "门"
        return True
    if kind == "building_word":
        d.building_word = rng.choice(BUILDING_WORDS)
        return bool(p["building"])
    if kind == "typo":
        return _rename(d, rng, names, lambda c: CONFUSABLE.get(c, ""))
    if kind == "homophone":
        return _rename(d, rng, names, lambda c: rng.sample(_homophones(c), min(2, len(_homophones(c)))))
    if kind == "numerals_zh":
        numbers = _numbers(d)
        chosen = [k for k in numbers if rng.random() < 0.6] or ([rng.choice(numbers)] if numbers else [])
        d.chinese = frozenset(chosen)
        return bool(chosen)
    if kind == "numerals_arabic":
        return _arabic(d, rng)
    if kind == "prefix":
        levels = [lv for lv in PREFIXES if rng.random() < 0.6] or [rng.choice(PREFIXES)]
        d.prefix = [rng.choice(level) for level in levels]
        return True
    if kind == "reorder":
        d.compound_first = True
        return bool(p["road"] and p["compound"])
    raise ValueError(f"unknown kind of variant: {kind}")


def _finish(kinds: tuple[str, ...], segments: list[str], rng: random.Random) -> str | None:
    """Join the pieces, with stray punctuation and full-width digits if asked; None when they change nothing."""
    if "punctuation" in kinds and len(segments) > 1:
        gaps = rng.sample(range(1, len(segments)), rng.randint(1, min(3, len(segments) - 1)))
        text = "".join((rng.choice(SEPARATORS) if i in gaps else "") + s for i, s in enumerate(segments))
        if rng.random() < 0.2:
            text = " " + text + rng.choice(("。", " ", "，"))
    else:
        text = "".join(segments)
    if "fullwidth" in kinds:
        if not re.search(r"\d", text):
            return None
        text = text.translate(_FULLWIDTH)
    return text


def _draw(
    row: dict[str, Any], parts: dict[str, str | None], kinds: tuple[str, ...], rng: random.Random,
    names: _Names, keys: _Keys,
) -> str | None:  # fmt: skip
    """The text of one variant of ``row`` made by ``kinds``; None when they do not fit this address."""
    d = _Draft(parts=dict(parts))
    for kind in kinds:
        if kind not in ("fullwidth", "punctuation") and not _perturb(kind, d, rng, row, names):
            return None
    if not keys.identifies(_original(parts, d.parts)):
        return None
    return _finish(kinds, _segments(d), rng)


def _original(parts: dict[str, str | None], now: dict[str, str | None]) -> dict[str, str | None]:
    """The registry's parts that a draft still writes (a renamed part counts as written, as it was)."""
    return {k: (v if now.get(k) else None) for k, v in parts.items()}


def variants(registry: pd.DataFrame, n: int, seed: int) -> list[Variant]:
    """``n`` hotline renderings of addresses drawn from ``registry``, the same ones for the same seed.

    Parameters
    ----------
    registry
        Registry rows (``ADDRESS_COLUMNS``: address_id, township, road, door, compound, building,
        entrances, village, group, building_id; others ignored), the addresses in force.
    n
        How many variants.
    seed
        Seed of the draw: the same registry, ``n`` and seed give the same variants.

    Returns
    -------
    list[Variant]
        Texts that differ from the registry's own text, each with the address and building it means and
        the ``KINDS`` (one to three) it was made with, in the order they were applied.
    """
    rows = [dict(zip(registry.columns, values, strict=True)) for values in registry.itertuples(index=False)]
    if not rows or n <= 0:
        return []
    columns = ("township", "road", "door", "compound", "building", "village", "group")
    parts = [{c: _value(row, c) for c in columns} for row in rows]
    aliases = [a.strip() for row in rows for a in re.split(r"[;；|｜]", _value(row, "aliases") or "")]
    names = _Names([str(p[c]) for p in parts for c in NAME_PARTS if p[c]] + [a for a in aliases if a])
    keys = _Keys(parts)
    rng = random.Random(seed)
    out: list[Variant] = []
    while len(out) < n:
        i = rng.randrange(len(rows))
        for _attempt in range(20):
            count = rng.choices((1, 2, 3), weights=(4, 4, 2))[0]
            kinds = tuple(sorted(rng.sample(KINDS, count), key=KINDS.index))
            text = _draw(rows[i], parts[i], kinds, rng, names, keys)
            if text is not None and text != canonical_text(parts[i]):
                row = rows[i]
                out.append(Variant(text, str(row["address_id"]), _value(row, "building_id") or "", kinds))
                break
    return out


ABSENT_KINDS: tuple[str, ...] = (
    "unknown_door",  # a registry road with a door number it does not have (another road has it)
    "unknown_building",  # a registry compound with a building number it does not have (another has it)
    "contradiction",  # a road and door with another building of the door's compound (紫荆路9号2号楼)
)


def absent(registry: pd.DataFrame, n: int, seed: int) -> list[Variant]:
    """``n`` texts that name a registry road or compound with a number it lacks, or that contradict
    themselves (a door and another building of its compound): no one building is meant.

    A caller's wrong door number (经九路835号 where 经九路 ends at 120) must not be placed on another
    road that has that number (经十九路835号): the number is drawn from a road (compound) whose name is
    one character away where there is one, from any other otherwise. Each Variant has empty address and
    building ids and one of ``ABSENT_KINDS`` (as many of each); some are written with Chinese numerals,
    the township or a province prefix. Fewer than ``n`` only when the registry's names share every number.
    """
    rows = [dict(zip(registry.columns, values, strict=True)) for values in registry.itertuples(index=False)]
    both = [r for r in rows if all(_value(r, c) for c in ("road", "door", "compound", "building"))]
    numbers: dict[str, dict[str, set[str]]] = {"road": {}, "compound": {}}
    townships: dict[tuple[str, str], str] = {}
    for row in rows:
        for part, number in (("road", "door"), ("compound", "building")):
            name, value = _value(row, part), _value(row, number)
            if name and value and value.isdigit():
                numbers[part].setdefault(name, set()).add(value)
                townships[(part, name)] = _value(row, "township") or ""
    rng = random.Random(seed)
    out: list[Variant] = []
    pairs = (("unknown_door", "road"), ("unknown_building", "compound"))
    plans = [(k, p, sorted(numbers[p])) for k, p in pairs]
    plans = [plan for plan in plans if len(plan[2]) > 1]  # a number lacking here must be had elsewhere
    if both:
        plans.append(("contradiction", "compound", []))
    if not plans or n <= 0:
        return []
    for _attempt in range(50 * n):  # a registry whose names all share their numbers yields fewer
        if len(out) >= n:
            break
        kind, part, names_of_part = rng.choice(plans)  # as many of each kind, however many names each has
        if kind == "contradiction":
            row = rng.choice(both)
            compound, own = str(_value(row, "compound")), str(_value(row, "building"))
            others = sorted(numbers["compound"].get(compound, set()) - {own})
            if not others:
                continue
            said_compound = compound if rng.random() < 0.5 else ""
            text = f"{_value(row, 'road')}{_value(row, 'door')}号{said_compound}{rng.choice(others)}号楼"
            out.append(Variant(text, "", "", (kind,)))
            continue
        name = rng.choice(names_of_part)
        mine = numbers[part][name]
        near = [o for o in numbers[part] if o != name and Levenshtein.distance(o, name) <= 1]
        pool = sorted({v for o in (near or list(numbers[part])) for v in numbers[part][o]} - mine)
        if not pool:
            continue
        value = rng.choice(pool)
        said = str(cn2an.an2cn(int(value))) if rng.random() < 0.25 else value
        text = f"{name}{said}{'号' if part == 'road' else rng.choice(BUILDING_WORDS)}"
        if rng.random() < 0.5:
            text = townships[(part, name)] + text
        if rng.random() < 0.25:
            text = rng.choice(PREFIXES[0]) + text
        out.append(Variant(text, "", "", (kind,)))
    return out


__all__ = [
    "ABSENT_KINDS",
    "CONFUSABLE",
    "KINDS",
    "Variant",
    "absent",
    "canonical_text",
    "common_homophones",
    "variants",
]
