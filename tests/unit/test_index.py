"""The point-in-grid index against the exact oracle (shapely covers + smallest code), and its rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geogrid import crs as crs_mod
from geogrid import index_kernels as K
from geogrid.errors import HierarchyViolation
from geogrid.index import GridIndex, OutsideValidity


def oracle(geoms: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of the unit with the smallest code covering each point (-1: none), and whether the point
    lies on that unit's boundary, by GEOS (geoms must be in code order)."""
    points = shapely.points(xs, ys)
    pt, unit = shapely.STRtree(geoms).query(points, predicate="covered_by")
    best = np.full(len(xs), len(geoms))
    np.minimum.at(best, pt, unit)
    best[best == len(geoms)] = -1
    on = np.zeros(len(xs), dtype=bool)
    hit = best >= 0
    on[hit] = shapely.touches(geoms[best[hit]], points[hit])
    return best, on


def probe_points(geoms: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points over the layer's box, plus every vertex and every edge midpoint."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    w, h = x1 - x0, y1 - y0
    coords = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geoms)))
    mid = (coords[:-1] + coords[1:]) / 2
    xs = np.concatenate([rng.uniform(x0 - 0.05 * w, x1 + 0.05 * w, n), coords[:, 0], mid[:, 0]])
    ys = np.concatenate([rng.uniform(y0 - 0.05 * h, y1 + 0.05 * h, n), coords[:, 1], mid[:, 1]])
    return xs, ys


@pytest.fixture(scope="module")
def micro(demo_layers) -> gpd.GeoDataFrame:
    return demo_layers["microgrids"]


@pytest.fixture(scope="module")
def micro_index(micro) -> GridIndex:
    return GridIndex.from_frame(micro)


def test_demo_county_agrees_with_the_oracle_everywhere(micro_index):
    xs, ys = probe_points(micro_index.geoms, 400_000, seed=1)
    result = micro_index.assign(xs, ys)
    expected, on = oracle(micro_index.geoms, xs, ys)
    assert np.array_equal(result.rank, expected)
    assert np.array_equal(result.on_boundary, on)
    assert result.on_boundary.sum() > 30_000  # the vertices and midpoints really were on boundaries
    assert set(result.code[expected < 0]) == {""}


def test_single_lookups_match_the_batch(micro_index):
    xs, ys = probe_points(micro_index.geoms, 2_000, seed=2)
    batch = micro_index.assign(xs, ys).code
    assert [micro_index.locate(x, y) for x, y in zip(xs.tolist(), ys.tolist(), strict=True)] == batch.tolist()


def tessellation(seed: int, n: int, holes: bool) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    sites = shapely.multipoints(rng.uniform(0, 1, (n, 2)) * [0.02, 0.015] + [111.1, 39.8])
    box = shapely.box(111.1, 39.8, 111.12, 39.815)
    cells = [shapely.intersection(c, box) for c in shapely.voronoi_polygons(sites, extend_to=box).geoms]
    cells = [c for c in cells if not c.is_empty and c.area > 0]
    codes = [f"{c:03d}" for c in rng.permutation(len(cells))]
    if holes and len(cells) > 2:  # punch one unit's centre out as a separate unit: a polygon with a hole
        inner = shapely.buffer(cells[0].centroid, 0.0003, quad_segs=3)
        if cells[0].contains(inner):
            cells[0] = cells[0].difference(inner)
            cells.append(inner)
            codes.append("999")
    return gpd.GeoDataFrame({"code": codes}, geometry=cells, crs=4326)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 60), holes=st.booleans(), angle=st.floats(0, 90))
def test_random_tessellations_agree_with_the_oracle(seed, n, holes, angle):
    frame = tessellation(seed, n, holes)
    frame = frame.set_geometry(frame.geometry.rotate(angle, origin=(111.11, 39.807)))
    index = GridIndex.from_frame(frame)
    xs, ys = probe_points(index.geoms, 3_000, seed)
    expected, on = oracle(index.geoms, xs, ys)
    result = index.assign(xs, ys)
    assert np.array_equal(result.rank, expected)
    assert np.array_equal(result.on_boundary, on)


def squares() -> gpd.GeoDataFrame:
    """Four unit squares meeting at (111.2, 39.8), codes deliberately out of spatial order."""
    d = 0.001
    boxes = {"D": (0, 0), "B": (-1, 0), "C": (-1, -1), "A": (0, -1)}
    geoms = [
        shapely.box(111.2 + i * d, 39.8 + j * d, 111.2 + (i + 1) * d, 39.8 + (j + 1) * d)
        for i, j in boxes.values()
    ]
    return gpd.GeoDataFrame(
        {"code": list(boxes), "name": [f"unit {c}" for c in boxes]}, geometry=geoms, crs=4326
    )


def test_on_edge_rule_smallest_code():
    index = GridIndex.from_frame(squares())
    assert index.locate(111.2, 39.8) == "A"  # the shared vertex of all four
    assert index.locate(111.2, 39.8005) == "B"  # edge between B (west) and D (east)
    assert index.locate(111.2005, 39.8) == "A"  # edge between A (south) and D (north)
    assert index.locate(111.2005, 39.8005) == "D"
    result = index.lookup(111.2, 39.8005)
    assert result.code == "B" and result.on_boundary and result.distance_to_boundary_m == 0.0
    inner = index.lookup(111.2005, 39.8005)
    assert not inner.on_boundary and inner.distance_to_boundary_m == pytest.approx(42.6, abs=0.5)


def test_overlapping_units_go_to_the_smallest_code():
    frame = gpd.GeoDataFrame(
        {"code": ["2", "1"]}, geometry=[shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)], crs=4326
    )
    index = GridIndex.from_frame(frame)
    assert index.locate(1.5, 1.5) == "1" and index.locate(0.5, 0.5) == "2" and index.locate(2.5, 2.5) == "1"


def test_outside_points_nearest_unit_and_snapping():
    index = GridIndex.from_frame(squares())
    east = 111.201 + 100 / (111_320 * np.cos(np.radians(39.8)))  # ~100 m east of D and A
    result = index.lookup(east, 39.8005)
    assert result.unit is None and result.nearest.code == "D"
    assert result.nearest_distance_m == pytest.approx(100, rel=0.01)
    snapped = index.lookup(east, 39.8005, snap_m=150)
    assert snapped.code == "D" and snapped.snapped
    batch = index.assign([east, east], [39.8005, 39.7995], snap_m=150)
    assert batch.code.tolist() == ["D", "A"] and batch.snapped.all()
    assert index.assign([east], [39.8005], snap_m=50).code.tolist() == [""]


def test_nan_and_far_away_points():
    index = GridIndex.from_frame(squares())
    result = index.assign([np.nan, 0.0, 111.2005, 1e300], [39.8, 0.0, np.nan, 39.8])
    assert result.code.tolist() == ["", "", "", ""]


def test_gcj02_and_bd09_input(micro_index):
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = shapely.total_bounds(micro_index.geoms)
    xs, ys = rng.uniform(x0, x1, 50_000), rng.uniform(y0, y1, 50_000)  # none within float noise of an edge
    wgs = micro_index.assign(xs, ys).code
    assert micro_index.assign(*crs_mod.wgs84_to_gcj02(xs, ys), crs="gcj02").code.tolist() == wgs.tolist()
    assert micro_index.assign(*crs_mod.wgs84_to_bd09(xs, ys), crs="bd09").code.tolist() == wgs.tolist()
    # read as WGS-84, the same GCJ-02 numbers land hundreds of metres off: many in another unit
    assert (micro_index.assign(*crs_mod.wgs84_to_gcj02(xs, ys)).code != wgs).mean() > 0.3


def test_hierarchy_is_checked_not_trusted(demo_layers):
    frames = [
        demo_layers[name].assign(level=level)
        for name, level in (("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid"))
    ]
    layer = gpd.GeoDataFrame(
        {c: np.concatenate([f[c].to_numpy() for f in frames]) for c in ("code", "name", "level")},
        geometry=np.concatenate([f.geometry.to_numpy() for f in frames]),
        crs=4326,
    )
    index = GridIndex.from_frame(layer)
    assert index.level == "microgrid" and index.corrections == []
    micro = demo_layers["microgrids"]
    x, y = micro.geometry.iloc[0].representative_point().coords[0]
    result = index.lookup(x, y)
    assert result.parents["grid"].code == result.code[:15]
    assert result.parents["community"].code == result.code[:12]
    assert result.parents["grid"].name == demo_layers["grids"].set_index("code").loc[result.code[:15], "name"]
    # Relabel a micro-grid into a grid it does not lie in: the index says so and follows the geometry.
    wrong = layer.copy()
    i = int(np.flatnonzero(wrong["code"] == micro["code"].iloc[0])[0])
    far_grid = demo_layers["grids"]["code"].iloc[-1]
    wrong.loc[i, "code"] = far_grid + "901"
    index = GridIndex.from_frame(wrong)
    assert [(c.code, c.code_says, c.geometry_says) for c in index.corrections] == [
        (far_grid + "901", far_grid, micro["parent_code"].iloc[0])
    ]
    assert index.lookup(x, y).parents["grid"].code == micro["parent_code"].iloc[0]
    with pytest.raises(HierarchyViolation, match="lie outside the parent their code names"):
        GridIndex.from_frame(wrong, strict=True)


def test_save_and_load(micro_index, tmp_path):
    path = micro_index.save(tmp_path / "index.npz")
    loaded = GridIndex.load(path)
    xs, ys = probe_points(micro_index.geoms, 50_000, seed=4)
    assert np.array_equal(loaded.assign(xs, ys).rank, micro_index.assign(xs, ys).rank)
    assert loaded.stats == micro_index.stats


def test_validity_of_the_version():
    import datetime as dt

    index = GridIndex.from_frame(squares())
    index.meta.update(set="s", version=2, valid_from="2026-01-01", valid_to="2026-07-01")
    assert index.lookup(111.2005, 39.8005, at=dt.date(2026, 3, 1)).code == "D"
    with pytest.raises(OutsideValidity, match="holds v2 of 's'"):
        index.lookup(111.2005, 39.8005, at=dt.date(2026, 7, 1))


@pytest.mark.parametrize(
    "points",
    [
        # nearly collinear triples where the rounded determinant's sign is wrong or zero
        ((0.5, 0.5), (12.0, 12.0), (24.0, 24.0)),
        ((0.50000000000001, 0.5), (12.0, 12.0), (24.0, 24.0)),
        ((111.20000000000002, 39.85), (111.2, 39.85000000000001), (111.19999999999999, 39.85000000000002)),
        ((0.1, 0.1), (0.2, 0.2), (0.30000000000000004, 0.30000000000000004)),
    ],
)
def test_orientation_is_exact(points):
    (ax, ay), (bx, by), (cx, cy) = points
    exact = (Fraction(bx) - Fraction(ax)) * (Fraction(cy) - Fraction(ay)) - (Fraction(by) - Fraction(ay)) * (
        Fraction(cx) - Fraction(ax)
    )
    expected = (exact > 0) - (exact < 0)
    assert K.orient(ax, ay, bx, by, cx, cy) == expected
    assert K._orient_exact(ax, ay, bx, by, cx, cy) == expected


def test_pure_python_kernels_agree_with_compiled(tmp_path):
    frame = tessellation(7, 25, holes=True)
    frame.to_file(tmp_path / "t.geojson")
    xs, ys = probe_points(frame.geometry.to_numpy(), 300, seed=7)
    np.save(tmp_path / "xs.npy", xs)
    np.save(tmp_path / "ys.npy", ys)
    script = (
        "import numpy as np, geopandas as gpd, json, sys; from geogrid.index import GridIndex;"
        f"f = gpd.read_file({str(tmp_path / 't.geojson')!r}); i = GridIndex.from_frame(f);"
        f"r = i.assign(np.load({str(tmp_path / 'xs.npy')!r}), np.load({str(tmp_path / 'ys.npy')!r}));"
        "print(json.dumps(r.code.tolist()))"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    compiled = GridIndex.from_frame(frame).assign(xs, ys).code.tolist()
    assert json.loads(out.stdout) == compiled


def _outside_points(index, rng, box, n):
    """Random points in ``box`` and just beside every vertex of the units, those outside every unit."""
    x0, y0, x1, y1 = box
    pts = list(zip(rng.uniform(x0, x1, n), rng.uniform(y0, y1, n), strict=True))
    for x, y in shapely.get_coordinates(index.geoms)[::3]:
        pts += [(x + dx, y + dy) for dx, dy in ((2e-6, 0), (0, -2e-6), (-2e-6, 2e-6), (1e-5, 1e-5))]
    return [(x, y) for x, y in pts if index.locate(x, y) == ""]


def _assert_single_nearest_matches_geos(index, points):
    for x, y in points:
        near, dist = index._nearest(np.array([x]), np.array([y]))  # GEOS polygon distances
        rank, metres = index._nearest_one(x, y)  # the scan of the coverage's edges
        # Within a micrometre: a point a hair outside in degrees can land a hair inside once projected,
        # where GEOS says 0 and the edge scan the (sub-micrometre) distance to the edge.
        assert rank == near[0] and metres == pytest.approx(dist[0], rel=1e-9, abs=1e-6), (x, y)


def test_nearest_unit_of_one_point_matches_geos_on_the_demo_county(micro_index):
    rng = np.random.default_rng(7)
    points = _outside_points(micro_index, rng, (110.9, 39.6, 111.5, 40.1), 4000)
    assert len(points) > 3000
    _assert_single_nearest_matches_geos(micro_index, points)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 40), holes=st.booleans(), drop=st.integers(0, 3))
def test_nearest_unit_of_one_point_matches_geos_around_gaps(seed, n, holes, drop):
    frame = tessellation(seed, n, holes)
    frame = frame.drop(index=frame.index[1 : 1 + drop]).reset_index(drop=True)  # gaps and bays
    index = GridIndex.from_frame(frame)
    points = _outside_points(index, np.random.default_rng(seed), (111.098, 39.798, 111.122, 39.817), 300)
    _assert_single_nearest_matches_geos(index, points)


def test_nearest_unit_falls_back_to_the_tree_for_long_coverage_boundaries(micro_index, monkeypatch):
    monkeypatch.setattr("geogrid.index.MAX_EDGE_SCAN", 0)  # as if the coverage had too many edges to scan
    points = _outside_points(micro_index, np.random.default_rng(3), (110.9, 39.6, 111.5, 40.1), 300)[:400]
    _assert_single_nearest_matches_geos(micro_index, points)
    assert micro_index.lookup(60.0, 60.0).unit is None  # still no error far away
