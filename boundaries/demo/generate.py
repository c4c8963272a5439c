"""Generate the GeoGrid demo county: a seeded, reproducible county modelled on Jungar Banner.

13 streets/townships, 42 communities, 522 basic grids and about 3,000 micro-grids near 111.2°E, 39.85°N,
with buildings (points) carrying households. The recipe:

1. an irregular county outline and a network of wobbly arterial roads, polygonised into superblocks;
2. each superblock cut recursively by slightly bent local streets and compound walls, smaller near the
   centre, into compounds: the micro-grids;
3. all cut lines re-noded on a 5 cm grid and polygonised once, so neighbours share exact vertices;
4. streets, communities and grids built bottom-up as unions of whole micro-grids (balanced recursive
   bisection, repaired to be contiguous), so every level tiles its parent exactly;
5. households drawn per grid (most 300-500, a few deliberately over and under), spread over micro-grids
   and buildings;
6. roads: every micro-grid edge (walls and local streets; "arterial" and named along the arterials, "path"
   along the county line), merged and split so lines meet only at junctions: one connected network;
7. service sites "1+N": a centre per community and a station per 3-5 grids (fewer where sparse), so a
   15-minute walk reaches most households, but not rural edges nor one planted centre-only community;
8. a roster, one row per post (UTF-8 with BOM, Chinese headers, as Excel writes it): a leader and about
   five workers per grid sharing its buildings ("1+X"), secretaries, street staff, liaisons, building
   heads, party-member households, some 2025 handovers; planted.json lists the planted cases (grids with
   no leader or no worker, a worker on five grids, a community with no secretary, households off the norm).

9. a standard-address registry, one address per building (addresses.py beside this script).

Steps 1-5 draw from one seeded rng, 7, 8 and 9 from rngs of their own, so new layers leave the old alone.

Run ``python boundaries/demo/generate.py`` to rewrite the files beside this script byte for byte;
``--check`` verifies that every committed file is what the generator makes.
"""

from __future__ import annotations

import argparse
import collections
import csv
import importlib.util
import io
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely import ops

from geogrid.crs import wgs84_to_gcj02

SEED = 20261122
HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("demo_addresses", HERE / "addresses.py")
assert _spec is not None and _spec.loader is not None
addresses = sys.modules["demo_addresses"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(addresses)  # the registry's own module (step 9): a sibling file, not a package
COUNTY_CODE = "150622"  # Jungar Banner's administrative code
COUNTY_NAME = "准格尔旗(演示)"
CENTER = (111.2, 39.85)
METRIC = "EPSG:4546"  # CGCS2000 / 3-degree Gauss-Kruger CM 111E
GRID_M = 0.05  # noding precision of the road network, metres
MIN_AREA_M2 = 2500.0  # smaller pieces are slivers between roads, merged into a neighbour
N_STREETS, N_COMMUNITIES, N_GRIDS = 13, 42, 522
DECIMALS, GCJ_DECIMALS = 7, 8
NUMERALS = "一 二 三 四 五 六 七 八 九 十 十一 十二 十三 十四 十五 十六 十七 十八 十九 二十".split()  # noqa: SIM905

STREET_NAMES = [
    "薛家湾镇",
    "沙圪堵镇",
    "大路镇",
    "龙口镇",
    "准格尔召镇",
    "纳日松镇",
    "魏家峁镇",
    "十二连城乡",
    "暖水乡",
    "布尔陶亥苏木",
    "兴隆街道",
    "蓝天街道",
    "友谊街道",
]
COMMUNITY_WORDS = [
    "幸福",
    "和谐",
    "阳光",
    "康居",
    "龙凤",
    "金泰",
    "迎宾",
    "朝阳",
    "新华",
    "文明",
    "民族",
    "团结",
    "丰泽",
    "长青",
    "锦绣",
    "滨河",
    "东城",
    "西城",
    "南苑",
    "北苑",
    "世纪",
    "育才",
    "兴旺",
    "安康",
    "永盛",
    "瑞丰",
    "祥和",
    "福源",
    "宏达",
    "光明",
    "向阳",
    "春晖",
    "丽景",
    "凤凰",
    "泰和",
    "嘉禾",
    "惠民",
    "润泽",
    "广源",
    "晨光",
    "绿洲",
    "星火",
]
COMPOUND_HEADS = [
    "金",
    "银",
    "华",
    "鑫",
    "泰",
    "盛",
    "祥",
    "瑞",
    "丰",
    "安",
    "康",
    "福",
    "和",
    "兴",
    "宏",
    "景",
    "锦",
    "御",
    "翠",
    "绿",
    "新",
    "东",
    "西",
    "南",
    "北",
    "龙",
    "凤",
    "嘉",
]
COMPOUND_TAILS = ["苑", "园", "居", "府", "庭", "城", "湾", "轩", "里", "院"]
COMPOUND_KINDS = ["小区", "家园", "花园", "新村", "片区", "公寓"]


def outline(rng: np.random.Generator, cx: float, cy: float) -> shapely.Polygon:
    """An irregular county outline about 24 km by 18 km."""
    theta = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 7):
        r += rng.uniform(0.02, 0.07) / (k - 1) * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    r += rng.normal(0, 0.004, theta.size)
    x = cx + 12000 * r * np.cos(theta)
    y = cy + 9000 * r * np.sin(theta)
    return shapely.Polygon(np.column_stack([x, y]))


def wobbly(
    p0: np.ndarray, p1: np.ndarray, step: float, amp: float, rng: np.random.Generator
) -> shapely.LineString:
    """A road from p0 to p1 with vertices every ``step`` metres jittered sideways by up to ``amp``."""
    n = max(2, int(np.hypot(*(p1 - p0)) / step) + 1)
    t = np.linspace(0, 1, n)
    pts = p0 + np.outer(t, p1 - p0)
    normal = np.array([-(p1 - p0)[1], (p1 - p0)[0]]) / np.hypot(*(p1 - p0))
    offsets = np.cumsum(rng.normal(0, amp / 2.5, n))
    offsets -= np.linspace(offsets[0], offsets[-1], n)  # pinned at both ends
    pts[1:-1] += np.outer(np.clip(offsets, -amp, amp), normal)[1:-1]
    return shapely.LineString(pts)


def arterials(rng: np.random.Generator, cx: float, cy: float) -> list[tuple[str, shapely.LineString]]:
    """Two rotated families of wobbly arterials about 1.6 km apart, plus a river and a highway.

    Each line comes with its family: "纬" (west-east, numbered south to north), "经" (south-north,
    numbered west to east), "river" or "highway".
    """
    lines = []
    angle = np.deg2rad(rng.uniform(8, 16))
    u = np.array([np.cos(angle), np.sin(angle)])
    v = np.array([-u[1], u[0]])
    c = np.array([cx, cy])
    for family, direction, normal in (("纬", u, v), ("经", v, u)):
        offset = -15000.0
        while offset < 15000:
            offset += rng.uniform(1300, 2000)
            p0 = c + normal * offset - direction * 16000
            p1 = c + normal * offset + direction * 16000
            lines.append((family, wobbly(p0, p1, 450, 90, rng)))
    t = np.linspace(-16000, 16000, 200)
    river = np.column_stack([cx + t, cy + 2500 * np.sin(t / 5200 + 0.7) - 0.25 * t])
    lines.append(("river", shapely.LineString(river)))
    lines.append(
        ("highway", wobbly(c + np.array([-15000, 9000]), c + np.array([14000, -11000]), 600, 200, rng))
    )
    return lines


def split_recursive(poly: shapely.Polygon, target, rng: np.random.Generator, out: list) -> None:
    """Cut ``poly`` by bent lines across its long axis until pieces reach the target area."""
    c = poly.centroid
    if poly.area <= target(c.x, c.y) * rng.uniform(0.9, 1.6):
        out.append(poly)
        return
    rect = np.asarray(shapely.minimum_rotated_rectangle(poly).exterior.coords)[:4]
    e1, e2 = rect[1] - rect[0], rect[2] - rect[1]
    long_axis = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    length = np.hypot(*long_axis)
    axis = long_axis / length
    for _attempt in range(4):
        t = rng.uniform(-0.13, 0.13) * length
        turn = np.deg2rad(rng.uniform(-14, 14))
        across = np.array([-axis[1], axis[0]])
        across = np.array(
            [
                across[0] * np.cos(turn) - across[1] * np.sin(turn),
                across[0] * np.sin(turn) + across[1] * np.cos(turn),
            ]
        )
        mid = np.array([c.x, c.y]) + axis * t
        bend = axis * rng.uniform(-0.05, 0.05) * length
        far = 2 * length + 50
        cut = shapely.LineString(
            [mid - across * far, mid + bend * 0.5 - across * far * 0.02, mid + bend, mid + across * far]
        )
        pieces = [g for g in ops.split(poly, cut).geoms if g.area > 1.0]
        if len(pieces) >= 2:
            for piece in sorted(pieces, key=lambda g: (round(g.centroid.x, 3), round(g.centroid.y, 3))):
                split_recursive(piece, target, rng, out)
            return
    out.append(poly)


def micro_grids(
    rng: np.random.Generator,
) -> tuple[list[shapely.Polygon], np.ndarray, list[tuple[str, shapely.Geometry]]]:
    """The tessellation of compounds in metres, with exactly shared vertices, their superblocks and the
    named arterials (clipped to the county)."""
    to_metric = Transformer.from_crs(4326, METRIC, always_xy=True)
    cx, cy = to_metric.transform(*CENTER)
    county = outline(rng, cx, cy)
    clipped = [(family, shapely.intersection(line, county)) for family, line in arterials(rng, cx, cy)]
    roads = [county.exterior, *(line for _family, line in clipped)]
    superblocks = shapely.polygonize([shapely.union_all(roads, grid_size=GRID_M)]).geoms

    def target(x: float, y: float) -> float:
        r2 = ((x - cx) / 5500) ** 2 + ((y - cy) / 4200) ** 2
        return 32500.0 * (1 + 2.2 * r2)

    pieces: list[shapely.Polygon] = []
    for block in sorted(superblocks, key=lambda g: (round(g.centroid.x, 3), round(g.centroid.y, 3))):
        split_recursive(block, target, rng, pieces)
    noded = shapely.union_all(shapely.boundary(np.array(pieces, dtype=object)), grid_size=GRID_M)
    polys = merge_small(list(shapely.polygonize([noded]).geoms), MIN_AREA_M2)
    polys.sort(key=lambda g: (round(g.centroid.y, 2), round(g.centroid.x, 2)))
    # The superblock (between arterials) each compound lies in: communities and streets follow arterials.
    tree = shapely.STRtree(np.array(superblocks, dtype=object))
    inside = tree.query(shapely.point_on_surface(np.array(polys, dtype=object)), predicate="within")
    superblock_of = np.zeros(len(polys), dtype=int)
    superblock_of[inside[0]] = inside[1]
    return polys, np.unique(superblock_of, return_inverse=True)[1], arterial_names(clipped)


def arterial_names(clipped: list[tuple[str, shapely.Geometry]]) -> list[tuple[str, shapely.Geometry]]:
    """Name the arterials inside the county: 纬一路, 纬二路, ..., 经一路, ..., 滨河大道, 109国道."""
    named, counts = [], {"纬": 0, "经": 0}
    for family, line in clipped:
        if line.is_empty:
            continue
        if family in counts:
            counts[family] += 1
            named.append((f"{family}{NUMERALS[counts[family] - 1]}路", line))
        else:
            named.append(({"river": "滨河大道", "highway": "109国道"}[family], line))
    return named


def merge_small(polys: list[shapely.Polygon], min_area: float) -> list[shapely.Polygon]:
    """Merge slivers left between nearly parallel roads into the neighbour sharing their longest edge."""
    while True:
        geoms = np.array(polys, dtype=object)
        small = [i for i in np.argsort(shapely.area(geoms), kind="stable") if geoms[i].area < min_area]
        if not small:
            return polys
        adj = adjacency(geoms)
        i = int(small[0])
        j = max(sorted(adj[i]), key=lambda n: adj[i][n])
        merged = shapely.union(geoms[i], geoms[j], grid_size=GRID_M)
        polys = [g for k, g in enumerate(polys) if k not in (i, j)] + [merged]


def adjacency(geoms: np.ndarray) -> dict[int, dict[int, float]]:
    """Shared edge length between every pair of touching polygons."""
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(
        shapely.intersection(shapely.boundary(geoms[left]), shapely.boundary(geoms[right]))
    )
    adj: dict[int, dict[int, float]] = {i: {} for i in range(len(geoms))}
    for a, b, length in zip(left.tolist(), right.tolist(), shared.tolist(), strict=True):
        if length > 0.5:
            adj[a][b] = length
            adj[b][a] = length
    return adj


def bisect(members: np.ndarray, xy: np.ndarray, weight: np.ndarray, k: int) -> list[np.ndarray]:
    """Split member indices into k compact groups of near-equal weight by recursive bisection."""
    if k == 1 or len(members) <= 1:
        return [members] + [members[:0]] * (k - 1)
    pts = xy[members]
    centred = pts - pts.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    order = members[np.argsort(centred @ vt[0], kind="stable")]
    k1 = k // 2
    cum = np.cumsum(weight[order])
    cut = int(np.clip(np.searchsorted(cum, cum[-1] * k1 / k) + 1, 1, len(order) - 1))
    return bisect(order[:cut], xy, weight, k1) + bisect(order[cut:], xy, weight, k - k1)


def make_contiguous(groups: list[np.ndarray], adj: dict[int, dict[int, float]]) -> list[np.ndarray]:
    """Move stray pieces of a group to the neighbouring group (same parent) with the longest shared edge."""
    label = {int(m): g for g, members in enumerate(groups) for m in members}
    for _round in range(50):
        moved = False
        for g in range(len(groups)):
            members = [m for m, lab in label.items() if lab == g]
            comps = components(members, adj)
            for comp in sorted(comps, key=len)[:-1]:
                border: dict[int, float] = {}
                for m in comp:
                    for n, length in adj[m].items():
                        if n in label and label[n] != g:
                            border[label[n]] = border.get(label[n], 0.0) + length
                if border:
                    best = max(sorted(border), key=lambda lab: border[lab])
                    for m in comp:
                        label[m] = best
                    moved = True
        if not moved:
            break
    return [
        np.array(sorted(m for m, lab in label.items() if lab == g), dtype=int) for g in range(len(groups))
    ]


def components(members: list[int], adj: dict[int, dict[int, float]]) -> list[list[int]]:
    """Connected components of members under shared-edge adjacency."""
    todo, comps = set(members), []
    for start in members:
        if start not in todo:
            continue
        todo.discard(start)
        stack, comp = [start], []
        while stack:
            m = stack.pop()
            comp.append(m)
            for n in adj[m]:
                if n in todo:
                    todo.discard(n)
                    stack.append(n)
        comps.append(sorted(comp))
    return comps


def apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to weights (largest remainder), at least one each."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    out = np.maximum(1, np.floor(raw)).astype(int)
    for i in np.argsort(-(raw - np.floor(raw)), kind="stable"):
        if out.sum() >= total:
            break
        out[i] += 1
    while out.sum() > total:
        out[np.argmax(out)] -= 1
    return out.tolist()


class Atoms:
    """Micro-grids grouped into atoms (superblocks, or single micro-grids) that partitions keep whole."""

    def __init__(self, atom_of: np.ndarray, xy: np.ndarray, adj: dict[int, dict[int, float]]) -> None:
        self.atom_of = atom_of
        n = int(atom_of.max()) + 1
        self.weight = np.bincount(atom_of, minlength=n).astype(float)
        self.xy = np.column_stack([np.bincount(atom_of, xy[:, 0], n), np.bincount(atom_of, xy[:, 1], n)])
        self.xy /= self.weight[:, None]
        self.adj: dict[int, dict[int, float]] = {a: {} for a in range(n)}
        for m, neighbours in adj.items():
            for other, length in neighbours.items():
                a, b = int(atom_of[m]), int(atom_of[other])
                if a != b:
                    self.adj[a][b] = self.adj[a].get(b, 0.0) + length

    def partition(self, micro: np.ndarray, k: int) -> list[np.ndarray]:
        """k contiguous groups of whole atoms covering ``micro``, ordered north-west to south-east."""
        atoms = np.unique(self.atom_of[micro])
        if len(atoms) < k:
            raise ValueError("fewer atoms than groups")
        inside = set(atoms.tolist())
        adj = {a: {b: v for b, v in self.adj[a].items() if b in inside} for a in inside}
        groups = make_contiguous(bisect(atoms, self.xy, self.weight, k), adj)
        if any(len(g) == 0 for g in groups):
            raise ValueError("empty group")
        micro_groups = [micro[np.isin(self.atom_of[micro], g)] for g in groups]
        return sorted(
            micro_groups,
            key=lambda g: (
                -round(self.xy[self.atom_of[g]].mean(axis=0)[1], 1),
                round(self.xy[self.atom_of[g]].mean(axis=0)[0], 1),
            ),
        )


def by_blocks_or_singles(blocks: Atoms, singles: Atoms, micro: np.ndarray, k: int) -> list[np.ndarray]:
    """Partition along arterials (whole superblocks) where there are enough of them, else by compounds."""
    try:
        return blocks.partition(micro, k)
    except ValueError:
        return singles.partition(micro, k)


def grid_households(rng: np.random.Generator, n: int) -> np.ndarray:
    """Households per grid: most 300-500, about 6% deliberately over and 6% under the norm.

    The per-grid norm wins over a county total: 522 grids at 300-500 households come to ~210,000, so a
    total of ~85,000 (as once asked for) cannot hold together with it.
    """
    hh = rng.integers(300, 501, n)
    kind = rng.random(n)
    hh[kind < 0.06] = rng.integers(120, 281, int((kind < 0.06).sum()))
    hh[kind > 0.94] = rng.integers(540, 820, int((kind > 0.94).sum()))
    return hh


def compound_name(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        name = (
            rng.choice(COMPOUND_HEADS)
            + rng.choice(COMPOUND_HEADS)
            + rng.choice(COMPOUND_TAILS)
            + rng.choice(COMPOUND_KINDS)
        )
        if name not in used:
            used.add(name)
            return str(name)


def points_in(poly: shapely.Polygon, n: int, rng: np.random.Generator) -> list[shapely.Point]:
    """n random points inside poly, kept 5 m from its edge where it is wide enough."""
    inner = poly.buffer(-5.0)
    area = inner if not inner.is_empty and inner.area > 0.2 * poly.area else poly
    x0, y0, x1, y1 = area.bounds
    prepared = shapely.prepared.prep(area)
    pts: list[shapely.Point] = []
    while len(pts) < n:
        cand = shapely.points(rng.uniform(x0, x1, 4 * n), rng.uniform(y0, y1, 4 * n))
        pts.extend(p for p in cand if prepared.contains(p))
    return pts[:n]


@dataclass
class Metric:
    """What the unit layers are made of, in metres: the layers built on top of them start here."""

    polys: list[shapely.Polygon]  # the micro-grids
    micro_index: dict[str, int]  # micro-grid code -> index into polys
    arterials: list[tuple[str, shapely.Geometry]]  # (name, line)
    building_xy: list[tuple[float, float]] = field(default_factory=list)  # in the buildings' order


def units(seed: int = SEED) -> tuple[dict[str, list[dict]], Metric]:
    """The unit layers and buildings as lists of GeoJSON-like features (WGS-84, rounded), and their metres."""
    rng = np.random.default_rng(seed)
    polys_m, superblock_of, named_arterials = micro_grids(rng)
    metric = Metric(polys_m, {}, named_arterials)
    to_wgs = Transformer.from_crs(METRIC, 4326, always_xy=True)

    def lonlat(coords: np.ndarray) -> np.ndarray:
        x, y = to_wgs.transform(coords[:, 0], coords[:, 1])
        return np.round(np.column_stack([x, y]), DECIMALS)

    polys_ll = np.array([shapely.transform(p, lonlat) for p in polys_m], dtype=object)
    geoms_m = np.array(polys_m, dtype=object)
    xy = np.column_stack([shapely.get_x(shapely.centroid(geoms_m)), shapely.get_y(shapely.centroid(geoms_m))])
    adj = adjacency(geoms_m)
    everything = np.arange(len(polys_m))

    blocks = Atoms(superblock_of, xy, adj)
    singles = Atoms(everything, xy, adj)
    streets = blocks.partition(everything, N_STREETS)
    comm_counts = apportion(N_COMMUNITIES, [len(s) for s in streets])
    communities = [
        by_blocks_or_singles(blocks, singles, s, k) for s, k in zip(streets, comm_counts, strict=True)
    ]
    flat_comms = [c for cs in communities for c in cs]
    grid_counts = apportion(N_GRIDS, [len(c) for c in flat_comms])
    grid_hh = iter(grid_households(rng, N_GRIDS))

    layers: dict[str, list[dict]] = {
        k: [] for k in ("streets", "communities", "grids", "microgrids", "buildings")
    }
    used_names: set[str] = set()
    word_order = rng.permutation(len(COMMUNITY_WORDS))
    ci = 0
    for si, street_comms in enumerate(communities, start=1):
        s_code = f"{COUNTY_CODE}{si:03d}"
        s_name = STREET_NAMES[si - 1]
        s_hh = s_pop = 0
        for cj, comm in enumerate(street_comms, start=1):
            c_code = f"{s_code}{cj:03d}"
            c_name = COMMUNITY_WORDS[word_order[ci]] + ("社区" if "街道" in s_name or si <= 6 else "村")
            c_hh = c_pop = 0
            for gk, grid in enumerate(singles.partition(comm, grid_counts[ci]), start=1):
                g_code = f"{c_code}{gk:03d}"
                g_name = f"{c_name}第{gk}网格"
                hh_total = int(next(grid_hh))
                shares = rng.dirichlet(np.full(len(grid), 3.0))
                mg_hh = np.floor(shares * hh_total).astype(int)
                mg_hh[: hh_total - mg_hh.sum()] += 1
                g_pop = 0
                for ml, (m, hh) in enumerate(
                    zip(sorted(grid, key=lambda i: (-xy[i, 1], xy[i, 0])), mg_hh, strict=True), start=1
                ):
                    m_code = f"{g_code}{ml:03d}"
                    metric.micro_index[m_code] = int(m)
                    m_name = compound_name(rng, used_names)
                    n_b = max(1, round(int(hh) / rng.uniform(14, 36)))
                    b_hh = rng.multinomial(int(hh), np.full(n_b, 1.0 / n_b))
                    m_pop = 0
                    for bn, (pt, bhh) in enumerate(
                        zip(points_in(polys_m[m], n_b, rng), b_hh, strict=True), start=1
                    ):
                        pop = round(int(bhh) * rng.uniform(2.3, 3.0))
                        metric.building_xy.append((pt.x, pt.y))
                        m_pop += pop
                        layers["buildings"].append(
                            feature(
                                {
                                    "id": f"{m_code}-{bn:02d}",
                                    "microgrid_code": m_code,
                                    "name": f"{m_name}{bn}号楼",
                                    "households": int(bhh),
                                    "population": pop,
                                    "floors": int(rng.integers(2, 19)),
                                },
                                shapely.transform(pt, lonlat),
                            )
                        )
                    layers["microgrids"].append(
                        unit(m_code, m_name, "microgrid", g_code, int(hh), m_pop, polys_ll[m])
                    )
                    g_pop += m_pop
                layers["grids"].append(
                    unit(g_code, g_name, "grid", c_code, hh_total, g_pop, shapely.union_all(polys_ll[grid]))
                )
                c_hh, c_pop = c_hh + hh_total, c_pop + g_pop
            layers["communities"].append(
                unit(c_code, c_name, "community", s_code, c_hh, c_pop, shapely.union_all(polys_ll[comm]))
            )
            s_hh, s_pop = s_hh + c_hh, s_pop + c_pop
            ci += 1
        layers["streets"].append(
            unit(
                s_code,
                s_name,
                "street",
                COUNTY_CODE,
                s_hh,
                s_pop,
                shapely.union_all(polys_ll[np.concatenate(street_comms)]),
            )
        )
    layers["county"] = [
        unit(
            COUNTY_CODE,
            COUNTY_NAME,
            "county",
            None,
            sum(f["properties"]["households"] for f in layers["streets"]),
            sum(f["properties"]["population"] for f in layers["streets"]),
            shapely.union_all(polys_ll),
        )
    ]
    layers["grids_gcj02"] = [
        {
            **f,
            "geometry": geojson_geometry(
                shapely.transform(shapely.geometry.shape(f["geometry"]), to_gcj), GCJ_DECIMALS
            ),
        }
        for f in layers["grids"]
    ]
    return layers, metric


def to_gcj(coords: np.ndarray) -> np.ndarray:
    lon, lat = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
    return np.column_stack([lon, lat])


def unit(code, name, level, parent, households, population, geom) -> dict:
    if geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    return feature(
        {
            "code": code,
            "name": name,
            "level": level,
            "parent_code": parent,
            "households": households,
            "population": population,
        },
        geom,
    )


def geojson_geometry(geom, decimals: int = DECIMALS) -> dict:
    """A GeoJSON geometry dict with coordinates rounded to ``decimals`` (orientation: RFC 7946)."""
    geom = shapely.orient_polygons(geom) if hasattr(shapely, "orient_polygons") else geom
    mapping = shapely.geometry.mapping(geom)

    def rnd(c):
        if isinstance(c[0], (float, int)):
            return [round(float(v), decimals) for v in c]
        return [rnd(x) for x in c]

    return {"type": mapping["type"], "coordinates": rnd(mapping["coordinates"])}


def feature(props: dict, geom) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geojson_geometry(geom)}


def dumps(features: list[dict], name: str) -> str:
    """A GeoJSON FeatureCollection, one feature per line, deterministic to the byte."""
    head = json.dumps({"type": "FeatureCollection", "name": name}, ensure_ascii=False)[:-1]
    body = ",\n".join(json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features)
    return f'{head}, "features": [\n{body}\n]}}\n'


def road_network(metric: Metric) -> list[tuple[str, str, shapely.LineString]]:
    """The walking network in metres, as (kind, name, line): every micro-grid edge, noded at junctions.

    Walls and local streets are the edges of the tessellation; the ones along an arterial are "arterial"
    (named), the ones along the county line "path", the rest "street". Lines of one kind and name are
    merged between junctions (nodes where three or more edges meet) and split at every junction.
    """
    geoms = np.array(metric.polys, dtype=object)
    segments = shapely.get_parts(shapely.union_all(shapely.boundary(geoms)))
    ends = np.concatenate([shapely.get_coordinates(shapely.get_point(segments, i)) for i in (0, -1)])
    nodes, degree = np.unique(ends, axis=0, return_counts=True)
    junctions = {tuple(xy) for xy in nodes[degree >= 3].tolist()}
    # the kind of a segment: what a quarter, half and three quarters of the way along lie on (0.5 m)
    probes = [shapely.line_interpolate_point(segments, f, normalized=True) for f in (0.25, 0.5, 0.75)]
    names = np.full(len(segments), "", dtype=object)
    kinds = np.full(len(segments), "street", dtype=object)
    edge = shapely.boundary(shapely.union_all(geoms))
    kinds[np.all([shapely.dwithin(edge, p, 0.01) for p in probes], axis=0)] = "path"
    for name, line in metric.arterials:
        on = np.all([shapely.dwithin(line, p, 0.5) for p in probes], axis=0) & (kinds == "street")
        kinds[on], names[on] = "arterial", name
    out = []
    for kind, name in sorted(set(zip(kinds.tolist(), names.tolist(), strict=True))):
        mine = segments[(kinds == kind) & (names == name)]
        for line in shapely.get_parts(shapely.line_merge(shapely.MultiLineString(mine.tolist()))):
            coords = shapely.get_coordinates(line)
            cuts = [i for i in range(1, len(coords) - 1) if tuple(coords[i].tolist()) in junctions]
            for a, b in itertools.pairwise([0, *cuts, len(coords) - 1]):
                out.append((kind, name, shapely.LineString(coords[a : b + 1])))
    return sorted(out, key=lambda r: (KIND_ORDER[r[0]], r[1], *sort_key(r[2])))


KIND_ORDER = {"arterial": 0, "street": 1, "path": 2}


def sort_key(line: shapely.LineString) -> tuple[float, float]:
    """North-west first: the line's middle, rounded to 1 cm, y descending then x."""
    p = line.interpolate(0.5, normalized=True)
    return (-round(p.y, 2), round(p.x, 2))


STATION_HOURS = ["09:00-17:00", "08:30-17:30", "09:00-18:00", "08:00-20:00", "14:00-20:00"]
SITE_RADIUS_M = 900.0  # straight-line stand-in for the 15-minute walk when placing stations
GRIDS_PER_STATION = ((1500, 3.0), (800, 4.0), (450, 4.0), (0, 5.0))  # (households per km², grids)


def service_sites(
    layers: dict[str, list[dict]], metric: Metric, rng: np.random.Generator
) -> tuple[list[dict], list[str]]:
    """The "1+N" sites: per community a centre and N stations; one planted community gets only its centre.

    N is one station per 3-5 grids, fewer where households are sparse; the centre stands at the building
    nearest the community's household centroid, each station at the building reaching the most households
    not yet within ``SITE_RADIUS_M`` of a site. Returns the features and the centre-only community codes.
    """
    xy = np.asarray(metric.building_xy)
    props = [f["properties"] for f in layers["buildings"]]
    hh = np.array([p["households"] for p in props], dtype=float)
    community_of = np.array([p["microgrid_code"][:12] for p in props])
    micro_name = {f["properties"]["code"]: f["properties"]["name"] for f in layers["microgrids"]}
    grids_in = collections.Counter(f["properties"]["parent_code"] for f in layers["grids"])
    comms = [f["properties"] for f in layers["communities"]]
    area = {
        c["code"]: shapely.union_all(
            [metric.polys[m] for code, m in metric.micro_index.items() if code.startswith(c["code"])]
        ).area
        / 1e6
        for c in comms
    }
    density = {c["code"]: c["households"] / area[c["code"]] for c in comms}
    # too large for one centre's reach, and dense enough for the gap to matter
    big = [c["code"] for c in comms if density[c["code"]] >= 800 and area[c["code"]] >= 5.0]
    centre_only = [str(rng.choice(big))]
    sites: list[dict] = []
    for c in comms:
        mine = np.flatnonzero(community_of == c["code"])
        centroid = (xy[mine] * hh[mine, None]).sum(axis=0) / hh[mine].sum()
        chosen = [int(mine[np.argmin(np.hypot(*(xy[mine] - centroid).T))])]
        per = next(g for floor, g in GRIDS_PER_STATION if density[c["code"]] >= floor)
        n_stations = 0 if c["code"] in centre_only else max(1, round(grids_in[c["code"]] / per))
        apart = np.hypot(*(xy[mine, None, :] - xy[None, mine, :]).T)  # [candidate, building]
        near = apart <= SITE_RADIUS_M
        local = [int(np.searchsorted(mine, chosen[0]))]
        covered = near[local[0]].copy()
        for _ in range(n_stations):
            gain = (near & ~covered) @ hh[mine]
            # all within reach already: spread out instead, to the building farthest from every site
            best = int(np.argmax(gain)) if gain.max() > 0 else int(np.argmax(apart[local].min(axis=0)))
            local.append(best)
            chosen.append(int(mine[best]))
            covered |= near[best]
        for k, b in enumerate(chosen):
            if k == 0:
                name, kind, hours = f"{c['name']}党群服务中心", "centre", "08:30-17:30"
            else:
                name, kind = f"{micro_name[props[b]['microgrid_code']]}服务站", "station"
                hours = str(rng.choice(STATION_HOURS))
            sites.append({"name": name, "kind": kind, "hours": hours, "unit_code": c["code"], "b": b})
    used: set[str] = set()
    features = []
    for i, s in enumerate(sites, start=1):
        if s["name"] in used:  # two stations in one compound: name the building
            s["name"] = f"{props[s['b']]['name']}服务站"
        used.add(s["name"])
        geom = shapely.geometry.shape(layers["buildings"][s.pop("b")]["geometry"])
        features.append(feature({"id": f"S{i:03d}", **s}, geom))
    return features, centre_only


AS_OF, START = "2026-12-01", "2025-01-01"
WORKER_POST_ENDED = "2026-11-15"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶贺顾毛郝龚邵万武乔"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国志海波宁鹏飞斌燕琳晶慧婷雪丹亮辉俊峰文云龙春东晓利永福生荣凤翠萍亚新宇浩凯佳欣悦瑞嘉"
MONGOLIAN = (  # noqa: SIM905
    "巴特尔 乌云 其其格 苏日娜 额尔敦 那仁 宝音 乌力吉 萨仁 图雅 斯琴 格日勒 阿拉坦 孟和 朝鲁 哈斯 达来 乌兰 "
    "布和 吉雅 额尔德尼 萨其拉 阿古拉 呼和 巴雅尔 娜仁花 敖日格乐 特木尔 必力格 其木格 赛音 乌日娜"
).split()
MOBILE_PREFIXES = [*range(130, 140), 147, 150, 151, 152, 153, 155, 156, 157, 158, 159, 166, 173, 175]
MOBILE_PREFIXES += [176, 177, 178, *range(180, 190), 198, 199]
KIND_LABEL = {
    "leader": "网格长",
    "worker_fulltime": "专职网格员",
    "worker_parttime": "兼职网格员",
    "secretary": "社区书记",
    "street_staff": "街道干部",
    "liaison": "部门联络员",
    "building_head": "楼栋长",
    "party_household": "党员中心户",
}
ROLE_LABEL = {"worker": "网格员", **{k: v for k, v in KIND_LABEL.items() if not k.startswith("worker")}}
ROSTER_COLUMNS = {
    "person_id": "人员编号",
    "name": "姓名",
    "phone": "手机号",
    "kind": "人员类别",
    "role": "岗位",
    "unit_code": "单位编码",
    "valid_from": "起始日期",
    "valid_to": "结束日期",
    "buildings": "包保楼栋",
}


def day(rng: np.random.Generator, first: str, last: str) -> str:
    """A random date from first to last inclusive (ISO strings)."""
    a, b = (np.datetime64(first), np.datetime64(last))
    return str(a + int(rng.integers(0, int((b - a).astype(int)) + 1)))


class People:
    """Seeded people: unique ids P000001..., plausible names, unique mobile numbers."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.phones, self.count = rng, set(), 0
        weights = np.where(np.arange(len(SURNAMES)) < 20, 3.0, 1.0)
        self.surname_p = weights / weights.sum()

    def new(self, kind: str) -> dict:
        """A new person of ``kind``."""
        rng = self.rng
        if rng.random() < 0.06:  # Inner Mongolia: some Mongolian names, often with a Han-style surname
            name = str(rng.choice(["", "包", "白", "奇", "云"])) + str(rng.choice(MONGOLIAN))
        else:
            given = "".join(rng.choice(list(GIVEN), size=1 if rng.random() < 0.3 else 2))
            name = str(rng.choice(list(SURNAMES), p=self.surname_p)) + given
        while True:
            phone = f"{rng.choice(MOBILE_PREFIXES)}{int(rng.integers(0, 10**8)):08d}"
            if phone not in self.phones:
                self.phones.add(phone)
                break
        self.count += 1
        return {"person_id": f"P{self.count:06d}", "name": name, "phone": phone, "kind": kind}


def split_buildings(ids: list[str], hh: list[int], n: int) -> list[list[str]]:
    """Split a grid's buildings, in order, into n runs of about equal households ("1+X")."""
    cum = np.cumsum(hh)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n) / n, side="right")
    cuts = np.clip(np.maximum(cuts, np.arange(1, n)), 0, len(ids) - n + np.arange(1, n))
    cuts = np.maximum.accumulate(np.maximum(cuts, np.arange(1, n)))
    bounds = [0, *cuts.tolist(), len(ids)]
    return [ids[a:b] for a, b in itertools.pairwise(bounds)]


def roster(
    layers: dict[str, list[dict]], rng: np.random.Generator, avoid: list[str]
) -> tuple[list[dict], dict]:
    """The demo roster (one row per post) and its planted cases, as of ``AS_OF``.

    Per grid a leader and about one worker per 80 households (2-7), splitting the grid's buildings between
    them; a secretary per community, two street staff per street, a few liaisons, building heads on
    compounds of 150+ households, party-member households. Some posts end in 2025 and are taken over the
    same day by someone else (no gap). Planted: three grids with no leader, one grid whose only worker left
    on ``WORKER_POST_ENDED``, one worker on five grids, one community with no secretary (not in ``avoid``).
    """
    people = People(rng)
    streets = [f["properties"] for f in layers["streets"]]
    comms = [f["properties"] for f in layers["communities"]]
    grids = [f["properties"] for f in layers["grids"]]
    micros = [f["properties"] for f in layers["microgrids"]]
    buildings = collections.defaultdict(list)
    for f in layers["buildings"]:
        p = f["properties"]
        buildings[p["microgrid_code"]].append((p["id"], p["households"]))
    grids_of = collections.defaultdict(list)
    for g in grids:
        grids_of[g["parent_code"]].append(g["code"])
    micros_of = collections.defaultdict(list)
    for m in micros:
        micros_of[m["parent_code"]].append(m)

    no_secretary = str(rng.choice(sorted({c["code"] for c in comms} - set(avoid))))
    spread_comm = str(
        rng.choice([c for c in sorted(grids_of) if len(grids_of[c]) >= 5 and c != no_secretary])
    )
    first = int(rng.integers(0, len(grids_of[spread_comm]) - 4))
    spread_grids = grids_of[spread_comm][first : first + 5]
    rest = [g["code"] for g in grids if g["code"] not in spread_grids]
    picked = rng.choice(rest, size=4, replace=False).tolist()
    no_leader, no_worker = sorted(picked[:3]), picked[3]
    planted_grids = {*spread_grids, *no_leader, no_worker}

    rows: list[dict] = []

    def post(person: dict, role: str, unit: str, frm: str = START, to: str = "", bids=()) -> None:
        row = {
            "role": role,
            "unit_code": unit,
            "valid_from": frm,
            "valid_to": to,
            "buildings": ";".join(bids),
        }
        rows.append({**person, **row})

    def posts_with_history(kind: str, role: str, unit: str, frm: str, bids=(), p_replace=0.0) -> dict:
        """A post from ``frm``; with probability p_replace it passes to a new person during 2025."""
        person = people.new(kind)
        first = str(max(np.datetime64(frm) + 30, np.datetime64("2025-03-01")))
        if rng.random() < p_replace and first <= "2025-12-31":
            handover = day(rng, first, "2025-12-31")
            post(person, role, unit, frm, handover, bids)
            person, frm = people.new(kind), handover
        post(person, role, unit, frm, "", bids)
        return person

    spread_worker = None
    for s in streets:
        for _ in range(2):
            posts_with_history("street_staff", "street_staff", s["code"], START, p_replace=0.1)
        for _ in range(int(rng.integers(0, 2))):
            posts_with_history("liaison", "liaison", s["code"], day(rng, START, "2025-06-30"))
        for c in (c for c in comms if c["parent_code"] == s["code"]):
            secretary = None
            if c["code"] != no_secretary:
                secretary = posts_with_history("secretary", "secretary", c["code"], START, p_replace=0.05)
            for gi, g in enumerate(grids_of[c["code"]]):
                ids = [b for m in micros_of[g] for b in buildings[m["code"]]]
                bids, bhh = [b for b, _ in ids], [h for _, h in ids]
                quiet = 0.0 if g in planted_grids else 1.0  # planted grids keep a plain history
                if g not in no_leader:
                    if gi == 0 and secretary is not None and rng.random() < 0.4:  # a cadre leads a grid
                        post(secretary, "leader", g)
                    else:
                        posts_with_history("leader", "leader", g, START, p_replace=0.03 * quiet)
                hh = sum(bhh)
                n = 1 if g == no_worker else int(np.clip(round(hh / 80 + rng.normal(0, 0.5)), 2, 7))
                n = min(n, len(bids))
                for k, share in enumerate(split_buildings(bids, bhh, n)):
                    kind = "worker_fulltime" if rng.random() < 0.6 else "worker_parttime"
                    if g == no_worker:
                        post(people.new(kind), "worker", g, START, WORKER_POST_ENDED, share)
                    elif g in spread_grids and k == 0:
                        spread_worker = spread_worker or people.new("worker_fulltime")
                        post(spread_worker, "worker", g, START, "", share)
                    else:
                        late = k > 0 and rng.random() < 0.04 * quiet
                        frm = day(rng, "2025-02-01", "2026-09-30") if late else START
                        posts_with_history(kind, "worker", g, frm, share, p_replace=0.02 * quiet)
                if rng.random() < 0.5 and len(bids) >= 2:
                    mine = sorted(
                        rng.choice(bids, size=min(len(bids), int(rng.integers(2, 5))), replace=False)
                    )
                    since = day(rng, "2025-01-01", "2025-12-31")
                    post(
                        people.new("party_household"), "party_household", g, since, "", [str(b) for b in mine]
                    )
                for m in micros_of[g]:
                    if m["households"] >= 150:
                        mine = [b for b, _ in buildings[m["code"]]]
                        posts_with_history("building_head", "building_head", m["code"], "2025-03-01", mine)
    assert spread_worker is not None
    planted = {
        "as_of": AS_OF,
        "no_leader": no_leader,
        "no_worker": [no_worker],
        "worker_post_ended": WORKER_POST_ENDED,
        "spread_worker": {"person_id": spread_worker["person_id"], "grids": sorted(spread_grids)},
        "no_secretary": [no_secretary],
        "under_norm": sorted(g["code"] for g in grids if g["households"] < 300),
        "over_norm": sorted(g["code"] for g in grids if g["households"] > 500),
    }
    return rows, planted


def to_wgs84(geoms: list[shapely.Geometry]) -> list[shapely.Geometry]:
    """Metric geometries in WGS-84, rounded as the micro-grids are (so shared vertices stay shared)."""
    to_wgs = Transformer.from_crs(METRIC, 4326, always_xy=True)

    def lonlat(coords: np.ndarray) -> np.ndarray:
        return np.round(np.column_stack(to_wgs.transform(coords[:, 0], coords[:, 1])), DECIMALS)

    out = shapely.transform(np.array(geoms, dtype=object), lonlat)
    return out.tolist()


def build(seed: int = SEED) -> dict[str, Any]:
    """Every layer: units, buildings, roads and sites as GeoJSON-like features, roster rows, planted cases."""
    layers, metric = units(seed)
    network = road_network(metric)
    roads = [
        feature({"id": f"R{i:05d}", "kind": kind, "name": name}, line)
        for i, ((kind, name, _), line) in enumerate(
            zip(network, to_wgs84([r[2] for r in network]), strict=True), start=1
        )
    ]
    # the layers on top draw from rngs of their own, so the unit layers stay as they were
    sites, centre_only = service_sites(layers, metric, np.random.default_rng(seed + 2))
    rows, planted = roster(layers, np.random.default_rng(seed + 3), avoid=centre_only)
    planted = {**planted, "centre_only": centre_only}
    registry = addresses.registry(layers, network, metric.building_xy, np.random.default_rng(seed + 4))
    rest = {"roads": roads, "sites": sites, "roster": rows, "planted": planted, "addresses": registry}
    return {**layers, **rest}


def roster_csv(rows: list[dict]) -> str:
    """The roster as Excel writes it: UTF-8 with BOM, CRLF, Chinese headers, kinds and roles as labels."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ROSTER_COLUMNS.values())
    for row in rows:
        labels = {"kind": KIND_LABEL[row["kind"]], "role": ROLE_LABEL[row["role"]]}
        writer.writerow([labels.get(key, row[key]) for key in ROSTER_COLUMNS])
    return "\ufeff" + out.getvalue()


LAYER_FILES = {
    "county": "county.geojson",
    "streets": "streets.geojson",
    "communities": "communities.geojson",
    "grids": "grids.geojson",
    "microgrids": "microgrids.geojson",
    "buildings": "buildings.geojson",
    "grids_gcj02": "grids_gcj02.geojson",
    "roads": "roads.geojson",
    "sites": "sites.geojson",
    "roster": "roster.csv",
    "planted": "planted.json",
    "addresses": "addresses.csv",
}


def render(value: Any, filename: str) -> bytes:
    """The bytes of one output file."""
    if filename.endswith(".geojson"):
        return dumps(value, filename.removesuffix(".geojson")).encode()
    if filename == "addresses.csv":
        return addresses.registry_csv(value).encode()
    if filename.endswith(".csv"):
        return roster_csv(value).encode()
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the committed files instead of writing")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    layers = build()
    status = 0
    for key, filename in LAYER_FILES.items():
        data = render(layers[key], filename)
        path = args.out / filename
        if args.check:
            same = path.exists() and path.read_bytes() == data
            print(f"{filename}: {'identical' if same else 'DIFFERS'}")
            status |= not same
        else:
            path.write_bytes(data)
            print(
                f"{filename}: {len(layers[key])} {'features' if filename.endswith('.geojson') else 'items'}, "
                f"{len(data) / 1e6:.1f} MB"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
