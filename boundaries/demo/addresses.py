"""The demo county's standard-address registry (addresses.csv): one address per building, reproducibly.

Towns: every building gets a door on the nearest named road — an arterial of roads.geojson (经一路, 109国道,
...) or a "stroke" of local streets (segments continuing one another straight across junctions, at least
``MIN_ROAD_M`` long) named from ``ROAD_WORDS``, each word once (大道/路/街/巷 from the longest to the
shortest); those names live only here: roads.geojson keeps its local streets unnamed. Door numbers grow
along the road from its west (or south) end, about one per ``DOOR_SPACING_M``: odd on the left, even on
the right. The compound is the
building's micro-grid (its 片区 names renamed 小区/花园/家园) and the building its number there. The rural
townships (``RURAL``) give village (one per community), group (the grid's ordinal in the community) and a
door number within the group instead. A few dozen compounds carry old names as aliases.
"""

from __future__ import annotations

import collections
import csv
import io
import itertools
import zlib

import numpy as np
import shapely

RURAL = ("十二连城乡", "暖水乡", "布尔陶亥苏木")
VALID_FROM = "2024-01-01"
MIN_ROAD_M = 900.0  # shorter local strokes are lanes inside blocks: their buildings face a longer road
DOOR_SPACING_M = 30.0
STRAIGHT_DEG = 35.0  # two segments meeting at a junction continue one road when it bends less than this
N_ALIASES, N_SECOND_ALIASES = 36, 10
HEADERS = {
    "address_id": "地址编码",
    "township": "乡镇街道",
    "road": "道路",
    "door": "门牌号",
    "compound": "小区",
    "building": "楼栋",
    "entrances": "单元数",
    "village": "村",
    "group": "组",
    "lon": "经度",
    "lat": "纬度",
    "building_id": "建筑编号",
    "aliases": "别名",
    "valid_from": "启用日期",
    "valid_to": "停用日期",
    "text": "标准地址",
}
ROAD_WORDS = """迎泽 康宁 文化 建设 人民 解放 和平 胜利 民主 青年 工农 育才 体育 府前 前进 天骄 鸿雁
白杨 松柏 丁香 玫瑰 海棠 杏林 柳林 榆林 桃园 梨园 枣园 沙棘 红柳 苁蓉 马莲 芦苇 鄂尔多斯
伊金霍洛 乌兰木伦 达拉特 杭锦 鄂托克 乌审 东胜 康巴什 阿腾席连 锡林 那达慕 苏勒德 草原 黄河
长城 煤城 能源 电力 矿业 车站 机场 站前 广场 公园 园林 书院 学府 科技 创业 开元 兴业
富民 利民 安民 保安 平安 长安 永安 康乐 福寿 长寿 延寿 万寿 百合 紫荆 石榴 葡萄 苹果
杏花 桃花 梨花 荷花 兰花 菊花 梅花 桂花 牡丹 芙蓉 月季 迎春 春风 春雨 夏雨 秋实 冬青
翠竹 青松 绿杨 银杏 合欢 紫薇 凌霄 向荣 欣荣 繁荣 昌盛 隆盛 中兴 振兴 复兴 建华 振华
中华 光华 荣华 昌平 太平 升平 安平 广平 北平 新民 新建 新开 新城 古城 旧城 南关 北关
东关 西关 南门 北门 东门 西门 城东 城西 城南 城北 河东 河西 河滨 沿河 临河 望河 观山
望山 青山 秀山 南山 北山 东山 西山 龙山 凤山 虎山 狮山 鹿鸣 鹤鸣 凤鸣 莺歌 燕归 雁塔
鹊桥 星河 银河 天河 明珠 宝石 珍珠 玉泉 金泉 清泉 甘泉 温泉 涌泉 龙泉 井坪 沙梁 塔湾
沙湾 柳湾 榆湾 窑子 小营 羊场 牧场 农场 林场 果园 菜园 粮站 油房 磨坊 碾房 驼铃 马鞍
牛角 羊角 鹿角 鹰嘴 哈尔乌素 窑湾 马家 李家 王家 张家 刘家 赵家 郝家 贾家 白家 高家 孙家
武家 苏家 韩家 郭家 田家 石家 纳林 召庙 经堂 丰收 丰裕 富强 富裕 兴旺 旺盛 源泉 通达
通顺 顺达 畅通 迎新 迎祥 吉祥 如意 和顺 和美 和睦 友爱 仁爱 博爱 诚信 明德 厚德 崇德
尚德 弘德 怀德 立德 同心 同德 同乐 共和""".split()  # noqa: SIM905
VILLAGES = """榆树湾 柳树沟 大营盘 石圪咀 海子塔 羊市塔 五字湾 杨家圪堵 沙圪梁 大塔 小滩子 黄天棉图
瓦窑沟 房塌 西黑岱 唐公塔""".split()  # noqa: SIM905
GACHAS = "乌兰哈达 巴音敖包 阿贵庙 哈拉沁 宝日陶亥 呼和乌素 查干淖尔 乌兰不浪".split()  # noqa: SIM905
OLD_UNITS = """矿务局家属院 电厂宿舍区 供电局家属楼 粮食局家属院 一中教师楼 水泥厂宿舍 煤炭公司家属院 运输公司家属院
人民医院家属楼 农机厂宿舍 邮电局家属院 物资局家属楼 林业局家属院 建筑公司宿舍""".split()  # noqa: SIM905
KINDS = ("小区", "花园", "家园")  # what a 片区 becomes (片区 names an area, not a compound)
ALIAS_KINDS = ("小区", "花园", "家园", "新村", "公寓")


def strokes(lines: list[shapely.LineString]) -> list[list[int]]:
    """Group lines into strokes: at each junction pair up the legs that continue most straight."""
    parent = list(range(len(lines)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    legs: dict[tuple[float, float], list[tuple[int, np.ndarray]]] = collections.defaultdict(list)
    for i, line in enumerate(lines):
        c = shapely.get_coordinates(line)
        for end, towards in ((c[0], c[1]), (c[-1], c[-2])):
            d = towards - end
            legs[(round(float(end[0]), 2), round(float(end[1]), 2))].append((i, d / np.hypot(*d)))
    limit = -np.cos(np.deg2rad(STRAIGHT_DEG))
    for node in sorted(legs):
        pairs = sorted(
            (float(a[1] @ b[1]), a[0], b[0]) for a, b in itertools.combinations(legs[node], 2) if a[0] != b[0]
        )
        taken: set[int] = set()
        for dot, i, j in pairs:
            if dot > limit:
                break
            if i not in taken and j not in taken and find(i) != find(j):
                taken |= {i, j}
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = collections.defaultdict(list)
    for i in range(len(lines)):
        groups[find(i)].append(i)
    return sorted(groups.values())


class Road:
    """A road as oriented parts laid end to end from its west (or south) end: positions and sides."""

    def __init__(self, lines: list[shapely.LineString]) -> None:
        merged = shapely.line_merge(shapely.MultiLineString(lines))
        parts = list(shapely.get_parts(merged))
        pts = np.concatenate([shapely.get_coordinates(p) for p in parts])
        span = pts.max(axis=0) - pts.min(axis=0)
        axis = np.array([1.0, 0.0]) if span[0] >= span[1] else np.array([0.0, 1.0])
        oriented = []
        for p in parts:
            c = shapely.get_coordinates(p)
            oriented.append(c if (c[-1] - c[0]) @ axis >= 0 else c[::-1])
        oriented.sort(key=lambda c: float(c.mean(axis=0) @ axis))
        self.parts = [shapely.LineString(c) for c in oriented]
        self.offsets = np.concatenate([[0.0], np.cumsum([p.length for p in self.parts])[:-1]])
        self.length = float(sum(p.length for p in self.parts))

    def locate(self, x: float, y: float) -> tuple[float, int]:
        """Position along the road (m) of the point's foot, and its side: 1 left, -1 right."""
        pt = shapely.Point(x, y)
        k = int(np.argmin([p.distance(pt) for p in self.parts]))
        part = self.parts[k]
        c = shapely.get_coordinates(part)
        a, b = c[:-1], c[1:]
        ab = b - a
        t = np.clip(((np.array([x, y]) - a) * ab).sum(axis=1) / (ab * ab).sum(axis=1), 0, 1)
        d = np.hypot(*(a + ab * t[:, None] - np.array([x, y])).T)
        s = int(np.argmin(d))
        cross = ab[s, 0] * (y - a[s, 1]) - ab[s, 1] * (x - a[s, 0])
        return float(self.offsets[k] + part.project(pt)), 1 if cross >= 0 else -1


def road_of_buildings(
    network: list[tuple[str, str, shapely.LineString]], xy: np.ndarray, rng: np.random.Generator
) -> tuple[list[str], dict[str, Road]]:
    """The nearest named road of each point, and the named roads (arterials and named strokes)."""
    arterial = collections.defaultdict(list)
    for kind, name, line in network:
        if kind == "arterial":
            arterial[name].append(line)
    streets = [line for kind, _name, line in network if kind == "street"]
    long_strokes = [s for s in strokes(streets) if sum(streets[i].length for i in s) >= MIN_ROAD_M]
    lines = [line for name in sorted(arterial) for line in arterial[name]]
    owner: list[str | int] = [name for name in sorted(arterial) for _ in arterial[name]]
    for k, s in enumerate(long_strokes):
        lines += [streets[i] for i in s]
        owner += [k] * len(s)
    tree = shapely.STRtree(np.array(lines, dtype=object))
    found_pt, found_line = tree.query_nearest(shapely.points(xy), all_matches=True)
    nearest = np.full(len(xy), len(lines))
    np.minimum.at(nearest, found_pt, found_line)
    owners = [owner[i] for i in nearest.tolist()]
    used = sorted({o for o in owners if isinstance(o, int)})
    geoms = {k: [streets[i] for i in long_strokes[k]] for k in used}
    lengths = {k: sum(g.length for g in geoms[k]) for k in used}
    if len(used) > len(ROAD_WORDS):
        raise ValueError(f"{len(used)} roads to name, {len(ROAD_WORDS)} words")
    words = [ROAD_WORDS[i] for i in rng.permutation(len(ROAD_WORDS))]
    names: dict[str | int, str] = {name: name for name in arterial}
    ranked = sorted(used, key=lambda k: (-round(lengths[k], 2), k))
    for rank, (word, k) in enumerate(zip(words, ranked, strict=False)):
        share = rank / len(ranked)  # the longest few are 大道, the shortest fifth 巷
        suffix = "大道" if share < 0.04 else "路" if share < 0.5 else "街" if share < 0.8 else "巷"
        names[k] = word + suffix
    roads = {name: Road(arterial[name]) for name in arterial}
    roads.update({names[k]: Road(geoms[k]) for k in used})
    return [names[o] for o in owners], roads


def doors(road_names: list[str], roads: dict[str, Road], xy: np.ndarray) -> list[str]:
    """Door numbers along each road: odd on the left, even on the right, one per ``DOOR_SPACING_M``."""
    by_side: dict[tuple[str, int], list[tuple[float, int]]] = collections.defaultdict(list)
    for i, name in enumerate(road_names):
        pos, side = roads[name].locate(float(xy[i, 0]), float(xy[i, 1]))
        by_side[(name, side)].append((pos, i))
    out = [""] * len(road_names)
    for (_name, side), members in by_side.items():
        first = 1 if side == 1 else 2
        last = first - 2
        for pos, i in sorted(members):
            last = max(last + 2, first + 2 * int(pos // DOOR_SPACING_M))
            out[i] = str(last)
    return out


def compound_names(microgrids: list[dict]) -> dict[str, str]:
    """Micro-grid code -> compound name, 片区 renamed to a free 小区/花园/家园 (chosen by a CRC of the name)."""
    taken = {m["name"] for m in microgrids}
    out = {}
    for m in microgrids:
        name = m["name"]
        if name.endswith("片区"):
            start = zlib.crc32(name.encode())
            for k in range(len(KINDS)):
                candidate = name[:-2] + KINDS[(start + k) % len(KINDS)]
                if candidate not in taken:
                    taken.add(candidate)
                    name = candidate
                    break
        out[m["code"]] = name
    return out


def aliases(compounds: list[str], rng: np.random.Generator) -> dict[str, str]:
    """A few dozen compounds' old names: the same stem with another kind, some also a work unit's housing."""
    taken = set(compounds)
    out: dict[str, str] = {}
    chosen = rng.choice(sorted(set(compounds)), size=N_ALIASES, replace=False).tolist()
    units = iter(rng.permutation(OLD_UNITS).tolist())
    for n, compound in enumerate(chosen):
        stem = compound[:-2]
        free = [stem + k for k in ALIAS_KINDS if stem + k not in taken]
        if not free:
            continue
        old = [str(rng.choice(free))]
        if n < N_SECOND_ALIASES:
            old.append(next(units))
        taken.update(old)
        out[compound] = "；".join(old)
    return out


def address_text(row: dict[str, str]) -> str:
    """The canonical text: township, road, door, compound, building (towns) or village, group, door."""
    if row["village"]:
        return f"{row['township']}{row['village']}{row['group']}组{row['door']}号"
    return f"{row['township']}{row['road']}{row['door']}号{row['compound']}{row['building']}号楼"


def registry(
    layers: dict[str, list[dict]],
    network: list[tuple[str, str, shapely.LineString]],
    building_xy: list[tuple[float, float]],
    rng: np.random.Generator,
) -> list[dict[str, str]]:
    """One address per building of ``layers`` (in their order), columns ``HEADERS``, values as text."""
    street = {f["properties"]["code"]: f["properties"]["name"] for f in layers["streets"]}
    props = [f["properties"] for f in layers["buildings"]]
    points = [f["geometry"]["coordinates"] for f in layers["buildings"]]
    xy = np.asarray(building_xy, dtype=float)
    township = [street[p["microgrid_code"][:9]] for p in props]
    rural = np.array([t in RURAL for t in township])
    urban = np.flatnonzero(~rural)
    road_names, roads = road_of_buildings(network, xy[urban], rng)
    door_of = dict(zip(urban.tolist(), doors(road_names, roads, xy[urban]), strict=True))
    road_of = dict(zip(urban.tolist(), road_names, strict=True))
    compound = compound_names([f["properties"] for f in layers["microgrids"]])
    old_names = aliases([compound[props[i]["microgrid_code"]] for i in urban.tolist()], rng)
    # villages: one per rural community, 嘎查 in the 苏木; groups are grids; doors north-west first in a group
    village: dict[str, str] = {}
    villages = iter(rng.permutation(VILLAGES).tolist())
    gachas = iter(rng.permutation(GACHAS).tolist())
    for c in layers["communities"]:
        code = c["properties"]["code"]
        if street[code[:9]] in RURAL:
            village[code] = (
                next(gachas) + "嘎查" if street[code[:9]].endswith("苏木") else next(villages) + "村"
            )
    in_grid: dict[str, list[int]] = collections.defaultdict(list)
    for i in np.flatnonzero(rural).tolist():
        in_grid[props[i]["microgrid_code"][:15]].append(i)
    for members in in_grid.values():
        members.sort(key=lambda i: (-round(float(xy[i, 1]), 2), round(float(xy[i, 0]), 2), i))
        for n, i in enumerate(members, start=1):
            door_of[i] = str(n)
    rows = []
    for i, (p, (lon, lat)) in enumerate(zip(props, points, strict=True)):
        code = p["microgrid_code"]
        row = dict.fromkeys(HEADERS, "")
        row.update(
            address_id=f"A{p['id']}",
            township=township[i],
            door=door_of[i],
            entrances=str(max(1, round(p["households"] / (2 * p["floors"])))),
            lon=repr(float(lon)),
            lat=repr(float(lat)),
            building_id=p["id"],
            valid_from=VALID_FROM,
        )
        if rural[i]:
            row.update(village=village[code[:12]], group=str(int(code[12:15])))
        else:
            name = compound[code]
            row.update(
                road=road_of[i],
                compound=name,
                building=str(int(p["id"].split("-")[1])),
                aliases=old_names.get(name, ""),
            )
        row["text"] = address_text(row)
        rows.append(row)
    return rows


def registry_csv(rows: list[dict[str, str]]) -> str:
    """The registry as CSV: UTF-8 (no BOM), LF, Chinese headers in ``HEADERS`` order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADERS.values())
    writer.writerows([row[key] for key in HEADERS] for row in rows)
    return out.getvalue()
