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
   and buildings.

Run ``python boundaries/demo/generate.py`` to rewrite the files beside this script byte for byte;
``--check`` verifies that the committed files are what the generator makes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely import ops

from geogrid.crs import wgs84_to_gcj02

SEED = 20261122
HERE = Path(__file__).resolve().parent
COUNTY_CODE = "150622"  # Jungar Banner's administrative code
COUNTY_NAME = "准格尔旗(演示)"
CENTER = (111.2, 39.85)
METRIC = "EPSG:4546"  # CGCS2000 / 3-degree Gauss-Kruger CM 111E
GRID_M = 0.05  # noding precision of the road network, metres
MIN_AREA_M2 = 2500.0  # smaller pieces are slivers between roads, merged into a neighbour
N_STREETS, N_COMMUNITIES, N_GRIDS = 13, 42, 522
DECIMALS, GCJ_DECIMALS = 7, 8

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


def arterials(rng: np.random.Generator, cx: float, cy: float) -> list[shapely.LineString]:
    """Two rotated families of wobbly arterials about 1.6 km apart, plus a river and a highway."""
    lines = []
    angle = np.deg2rad(rng.uniform(8, 16))
    u = np.array([np.cos(angle), np.sin(angle)])
    v = np.array([-u[1], u[0]])
    c = np.array([cx, cy])
    for direction, normal in ((u, v), (v, u)):
        offset = -15000.0
        while offset < 15000:
            offset += rng.uniform(1300, 2000)
            p0 = c + normal * offset - direction * 16000
            p1 = c + normal * offset + direction * 16000
            lines.append(wobbly(p0, p1, 450, 90, rng))
    t = np.linspace(-16000, 16000, 200)
    river = np.column_stack([cx + t, cy + 2500 * np.sin(t / 5200 + 0.7) - 0.25 * t])
    lines.append(shapely.LineString(river))
    lines.append(wobbly(c + np.array([-15000, 9000]), c + np.array([14000, -11000]), 600, 200, rng))
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


def micro_grids(rng: np.random.Generator) -> tuple[list[shapely.Polygon], np.ndarray]:
    """The tessellation of compounds in metres, with exactly shared vertices, and their superblocks."""
    to_metric = Transformer.from_crs(4326, METRIC, always_xy=True)
    cx, cy = to_metric.transform(*CENTER)
    county = outline(rng, cx, cy)
    roads = [county.exterior, *(shapely.intersection(line, county) for line in arterials(rng, cx, cy))]
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
    return polys, np.unique(superblock_of, return_inverse=True)[1]


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


def build(seed: int = SEED) -> dict[str, list[dict]]:
    """Generate every layer as lists of GeoJSON-like features (geometry in WGS-84, rounded)."""
    rng = np.random.default_rng(seed)
    polys_m, superblock_of = micro_grids(rng)
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
                    m_name = compound_name(rng, used_names)
                    n_b = max(1, round(int(hh) / rng.uniform(14, 36)))
                    b_hh = rng.multinomial(int(hh), np.full(n_b, 1.0 / n_b))
                    m_pop = 0
                    for bn, (pt, bhh) in enumerate(
                        zip(points_in(polys_m[m], n_b, rng), b_hh, strict=True), start=1
                    ):
                        pop = round(int(bhh) * rng.uniform(2.3, 3.0))
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
    return layers


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


LAYER_FILES = {
    "county": "county.geojson",
    "streets": "streets.geojson",
    "communities": "communities.geojson",
    "grids": "grids.geojson",
    "microgrids": "microgrids.geojson",
    "buildings": "buildings.geojson",
    "grids_gcj02": "grids_gcj02.geojson",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the committed files instead of writing")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    layers = build()
    status = 0
    for key, filename in LAYER_FILES.items():
        text = dumps(layers[key], filename.removesuffix(".geojson"))
        path = args.out / filename
        if args.check:
            same = path.exists() and path.read_text(encoding="utf-8") == text
            print(f"{filename}: {'identical' if same else 'DIFFERS'}")
            status |= not same
        else:
            path.write_text(text, encoding="utf-8")
            print(f"{filename}: {len(layers[key])} features, {len(text.encode()) / 1e6:.1f} MB")
    return status


if __name__ == "__main__":
    sys.exit(main())
