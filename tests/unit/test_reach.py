"""The 15-minute reach: known walks on small networks, the straight-line fallback, and a shortest-path oracle."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import LineString, Point

from geogrid import reach as reach_module
from geogrid.crs import local_metric_crs
from geogrid.errors import InvalidCoordinates, InvalidGeometry, InvalidParameter, MissingColumn
from geogrid.reach import BAND_M, reach
from tests.conftest import unavailable

DEMO = Path(__file__).resolve().parents[2] / "boundaries" / "demo"
METRIC = local_metric_crs(111.2, 39.85)
ORIGIN = gpd.GeoSeries([Point(111.2, 39.85)], crs=4326).to_crs(METRIC).iloc[0]
LIMIT = 1250.0  # 15 minutes at 5 km/h
CM = 0.02  # tolerance for distances drawn in metres: the WGS-84 round trip costs under a millimetre
EXACT = 1e-6  # the oracle and the implementation measure the same vertices: they agree to a micrometre


def layer(geoms, **columns) -> gpd.GeoDataFrame:
    """A WGS-84 layer from geometries drawn in metres around the demo county's centre."""
    moved = [shapely.affinity.translate(g, ORIGIN.x, ORIGIN.y) for g in geoms]
    return gpd.GeoDataFrame(
        columns, geometry=gpd.GeoSeries(moved, crs=METRIC).to_crs(4326).to_numpy(), crs=4326
    )


def sites_at(*xy) -> gpd.GeoDataFrame:
    return layer([Point(p) for p in xy], id=[f"s{i}" for i in range(len(xy))], kind=["centre"] * len(xy))


def buildings_at(*xy) -> gpd.GeoDataFrame:
    return layer([Point(p) for p in xy], id=[f"b{i}" for i in range(len(xy))], households=[10] * len(xy))


def roads_of(*lines) -> gpd.GeoDataFrame:
    return layer([LineString(c) for c in lines], id=[f"r{i}" for i in range(len(lines))])


def local(geom) -> shapely.Geometry:
    """A WGS-84 geometry back in the test's metres."""
    g = gpd.GeoSeries([geom], crs=4326).to_crs(METRIC).iloc[0]
    return shapely.affinity.translate(g, -ORIGIN.x, -ORIGIN.y)


# --- known answers on hand-made networks ---------------------------------------------------------------


def test_a_straight_road():
    road = roads_of([(0, 0), (2000, 0)])
    got = reach(sites_at((100, 20)), buildings_at((500, 30), (1300, 10), (1350, 10), (100, -40)), road)
    assert got.method == "network" and got.limit_m == pytest.approx(LIMIT)
    # site: 20 m to the road at x=100; building: along the road, then its own step off it
    assert got.distance_m[:2] == pytest.approx([20 + 400 + 30, 20 + 1200 + 10], abs=CM)
    assert got.inside.tolist() == [True, True, False, True]
    assert np.isinf(got.distance_m[2]) and got.nearest_site.tolist() == ["s0", "s0", None, "s0"]
    assert got.distance_m[3] == pytest.approx(60, abs=CM)  # across the road: the same foot point


def test_building_and_site_on_the_same_segment_walk_along_it():
    # One segment, no vertex between them: the split lets the walk go straight from foot to foot.
    got = reach(sites_at((1000, 10)), buildings_at((1100, -10), (900, 10)), roads_of([(0, 0), (2000, 0)]))
    assert got.distance_m == pytest.approx([120, 120], abs=CM)


def test_a_t_junction():
    roads = roads_of([(0, 0), (1000, 0)], [(1000, 0), (2000, 0)], [(1000, 0), (1000, 1000)])
    homes = buildings_at((1010, 300), (1200, -5), (1005, 230))
    got = reach(sites_at((0, 0)), homes, roads)
    assert got.inside.tolist() == [False, True, True]
    assert got.distance_m[1:] == pytest.approx([1200 + 5, 1000 + 230 + 5], abs=CM)
    faster = reach(sites_at((0, 0)), homes, roads, speed_kmh=6.0)  # 1,500 m
    assert faster.limit_m == pytest.approx(1500) and faster.inside.all()
    assert faster.distance_m[0] == pytest.approx(1000 + 300 + 10, abs=CM)


def test_a_detour_keeps_a_near_building_out():
    # Two parallel roads 40 m apart, joined only at their far end: 60 m as the crow flies, 3.9 km on foot.
    roads = roads_of([(0, 0), (2000, 0)], [(0, 40), (2000, 40)], [(2000, 0), (2000, 40)])
    sites, homes = sites_at((100, -10)), buildings_at((100, 50), (600, -20))
    got = reach(sites, homes, roads)
    assert got.inside.tolist() == [False, True] and np.isinf(got.distance_m[0])
    walked = reach(sites, homes, roads, minutes=60)  # 5 km: now the detour fits
    assert walked.distance_m[0] == pytest.approx(10 + 1900 + 40 + 1900 + 10, abs=CM)
    crow = reach(sites, homes, None)
    assert crow.method == "straight_line" and crow.inside.all()
    assert crow.distance_m[0] == pytest.approx(60, abs=CM)


def test_a_disconnected_road_piece_is_unreachable():
    roads = roads_of([(0, 0), (1000, 0)], [(0, 100), (1000, 100)])
    got = reach(sites_at((500, -5)), buildings_at((500, 105), (510, 10)), roads, minutes=600)
    assert got.inside.tolist() == [False, True] and np.isinf(got.distance_m[0])
    assert got.nearest_site.tolist() == [None, "s0"]
    area = local(got.areas.geometry.iloc[0])
    assert area.covers(Point(900, 0)) and not area.covers(Point(900, 100))


def test_the_nearest_of_several_sites():
    roads = roads_of([(0, 0), (3000, 0)])
    got = reach(sites_at((0, 0), (3000, 0)), buildings_at((1000, 0), (2200, 0), (1500, 0)), roads)
    assert got.nearest_site.tolist() == ["s0", "s1", None]
    assert got.distance_m[:2] == pytest.approx([1000, 800], abs=CM)


def test_shared_end_points_meet_and_crossings_without_a_vertex_do_not():
    # Both pieces of the first road end at (1000, 0); the second road crosses it with no vertex there.
    roads = roads_of([(0, 0), (1000, 0)], [(1000, 0), (1200, 0)], [(1100, -500), (1100, 500)])
    got = reach(sites_at((0, 0)), buildings_at((1150, 5), (1105, 400)), roads)
    assert got.distance_m[0] == pytest.approx(1155, abs=CM)
    assert not got.inside[1]


def test_multilinestrings_and_repeated_vertices():
    lines = [shapely.MultiLineString([[(0, 0), (500, 0), (500, 0)], [(500, 0), (500, 500)]])]
    got = reach(sites_at((0, 0)), buildings_at((510, 300)), layer(lines))
    assert got.distance_m == pytest.approx([500 + 300 + 10], abs=CM)


def test_reach_polygons():
    roads = roads_of([(-3000, 0), (3000, 0)])
    got = reach(sites_at((0, 50)), buildings_at((0, 0)), roads)
    (area,) = got.areas.geometry
    assert list(got.areas.columns) == ["id", "kind", "geometry"] and got.areas.crs.to_epsg() == 4326
    area = local(area)
    # 1,200 m each way along the road after 50 m to it, a band of 60 m around it, and the walk to it
    assert area.covers(Point(1200 + BAND_M - 1, 0)) and not area.covers(Point(1200 + BAND_M + 1, 0))
    assert area.covers(Point(0, 50 + BAND_M - 1)) and not area.covers(Point(0, -BAND_M - 1))
    assert area.area == pytest.approx(2400 * 2 * BAND_M + 50 * 2 * BAND_M + math.pi * BAND_M**2, rel=0.01)


def test_areas_are_drawn_when_first_asked_and_kept(monkeypatch):
    drawn = []
    real = reach_module._areas
    monkeypatch.setattr(reach_module, "_areas", lambda *a: drawn.append(1) or real(*a))
    got = reach(sites_at((0, 0), (500, 0)), buildings_at((100, 0)), roads_of([(0, 0), (1000, 0)]))
    assert got.inside.tolist() == [True] and drawn == []
    assert got.areas is got.areas and len(got.areas) == 2 and drawn == [1]


def test_a_site_further_from_the_road_than_the_limit():
    got = reach(sites_at((0, 2000)), buildings_at((0, 10), (0, 1990)), roads_of([(-100, 0), (100, 0)]))
    assert not got.inside.any()
    assert local(got.areas.geometry.iloc[0]).covers(Point(0, 2000 - LIMIT + 1))


# --- the straight-line fallback ------------------------------------------------------------------------


@pytest.mark.parametrize("roads", [None, roads_of()], ids=["none", "empty"])
def test_straight_line_fallback(roads):
    homes = buildings_at((1000, 0), (0, 1249), (900, 900), (3000, 3000))
    got = reach(sites_at((0, 0), (3000, 3100)), homes, roads)
    assert got.method == "straight_line"
    assert got.inside.tolist() == [True, True, False, True]
    assert got.distance_m[[0, 1, 3]] == pytest.approx([1000, 1249, 100], abs=CM)
    assert got.nearest_site.tolist() == ["s0", "s0", None, "s1"]
    circle = local(got.areas.geometry.iloc[0])
    assert circle.area == pytest.approx(math.pi * LIMIT**2, rel=0.002)
    assert circle.covers(Point(0, LIMIT - 2)) and not circle.covers(Point(0, LIMIT + 2))


# --- edges of the input --------------------------------------------------------------------------------


@pytest.mark.parametrize("roads", [None, roads_of([(0, 0), (100, 0)])], ids=["straight", "network"])
def test_no_sites_or_no_buildings(roads):
    nobody = reach(sites_at()[:0], buildings_at((0, 0), (10, 0)), roads)
    assert not nobody.inside.any() and np.isinf(nobody.distance_m).all()
    assert nobody.nearest_site.tolist() == [None, None] and len(nobody.areas) == 0
    empty = reach(sites_at((0, 0)), buildings_at()[:0], roads)
    assert empty.inside.shape == empty.distance_m.shape == empty.nearest_site.shape == (0,)
    assert len(empty.areas) == 1


def test_answers_follow_the_buildings_row_order_not_their_index():
    homes = buildings_at((100, 0), (2000, 0), (50, 0)).set_index(np.array([7, 3, 5]))
    got = reach(sites_at((0, 0)), homes, roads_of([(0, 0), (3000, 0)]))
    assert got.inside.tolist() == [True, False, True]
    assert got.distance_m[[0, 2]] == pytest.approx([100, 50], abs=CM)


def test_a_projected_input_is_transformed_and_no_crs_means_wgs84():
    sites, homes, roads = sites_at((0, 0)), buildings_at((300, 10)), roads_of([(0, 0), (3000, 0)])
    base = reach(sites, homes, roads)
    moved = reach(sites.to_crs(METRIC), homes.set_crs(None, allow_override=True), roads.to_crs(3857))
    assert moved.distance_m == pytest.approx(base.distance_m, abs=CM)


@pytest.mark.parametrize(
    ("minutes", "speed"),
    [(0, 5), (-1, 5), (15, 0), (15, -5), (math.nan, 5), (15, math.inf), ("x", 5), (True, 5)],
)
def test_refuses_a_time_or_speed_that_is_not_positive(minutes, speed):
    with pytest.raises(InvalidParameter) as caught:
        reach(sites_at((0, 0)), buildings_at((1, 1)), None, minutes=minutes, speed_kmh=speed)
    assert caught.value.where["field"] == ("minutes" if minutes != 15 else "speed_kmh")


def test_refuses_what_is_not_a_point_or_a_line():
    square = shapely.box(0, 0, 10, 10)
    with pytest.raises(InvalidGeometry, match="row 1 is Polygon") as caught:
        reach(layer([Point(0, 0), square], id=["a", "b"]), buildings_at((1, 1)), None)
    assert caught.value.where == {"layer": "sites", "row": 1}
    with pytest.raises(InvalidGeometry, match="buildings.*no geometry"):
        reach(sites_at((0, 0)), gpd.GeoDataFrame(geometry=[Point(0, 0).buffer(0).centroid], crs=4326), None)
    with pytest.raises(InvalidGeometry, match="roads"):
        reach(sites_at((0, 0)), buildings_at((1, 1)), layer([Point(0, 0)]))
    with pytest.raises(MissingColumn):
        reach(layer([Point(0, 0)]), buildings_at((1, 1)), None)
    with pytest.raises(InvalidCoordinates):
        bad = gpd.GeoDataFrame({"id": ["s"]}, geometry=[Point(200, 95)], crs=4326)
        reach(bad, buildings_at((1, 1)), None)


# --- a shortest-path oracle, separate from the implementation ------------------------------------------


def oracle(sites, buildings, roads, limit):
    """Each building's walk to every site by its own road graph and its own access legs: (n_b, n_s)."""
    frames = [sites, buildings, roads]
    x0, y0 = np.min([f.total_bounds[:2] for f in frames], axis=0)
    x1, y1 = np.max([f.total_bounds[2:] for f in frames], axis=0)
    crs = local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2)
    lines = roads.to_crs(crs).geometry.explode(index_parts=False).reset_index(drop=True)
    graph = nx.Graph()

    def key(x, y):
        return (round(x / 0.01), round(y / 0.01))

    vertices = []  # per line: node keys and cumulative length along the line
    for line in lines:
        xy = list(line.coords)
        keys = [key(x, y) for x, y in xy]
        cum = [0.0]
        for a, b, p, q in zip(keys, keys[1:], xy, xy[1:], strict=False):
            cum.append(cum[-1] + math.dist(p, q))
            if a != b:
                graph.add_edge(a, b, weight=math.dist(p, q))
        vertices.append((keys, cum))

    def feet(points):
        """Per point: access walk, segment (end keys, length), offset along it from its first end, foot."""
        pts = gpd.GeoDataFrame(geometry=points.to_crs(crs).geometry.to_numpy(), crs=crs)
        near = gpd.sjoin_nearest(pts, gpd.GeoDataFrame(geometry=lines, crs=crs), distance_col="d")
        near = near[~near.index.duplicated()].sort_index()
        out = []
        for pt, li, d in zip(pts.geometry, near["index_right"], near["d"], strict=True):
            pos = lines[li].project(pt)
            keys, cum = vertices[li]
            i = min(int(np.searchsorted(cum, pos, side="right")) - 1, len(keys) - 2)
            while keys[i] == keys[i + 1] and i > 0:  # a repeated vertex: the segment before it
                i -= 1
            seg = (keys[i], keys[i + 1], cum[i + 1] - cum[i])
            out.append((d, seg, pos - cum[i], lines[li].interpolate(pos)))
        return out

    site_feet, home_feet = feet(sites), feet(buildings)
    walks = np.full((len(buildings), len(sites)), np.inf)
    for j, (sd, (sa, sb, slen), soff, _) in enumerate(site_feet):
        graph.add_edge("site", sa, weight=sd + soff)
        graph.add_edge("site", sb, weight=sd + slen - soff)
        dist = nx.single_source_dijkstra_path_length(graph, "site", cutoff=limit)
        graph.remove_node("site")
        for i, (hd, (ha, hb, hlen), hoff, _) in enumerate(home_feet):
            best = min(dist.get(ha, math.inf) + hoff, dist.get(hb, math.inf) + hlen - hoff)
            if {ha, hb} == {sa, sb}:  # the same segment: straight along it, foot to foot
                direct = abs(hoff - soff) if ha == sa else abs(hlen - hoff - soff)
                best = min(best, sd + direct)
            walks[i, j] = best + hd
    foot_points = gpd.GeoSeries([f[3] for f in home_feet], crs=crs).to_crs(4326)
    return walks, foot_points


def check_against_oracle(sites, buildings, roads, minutes=15.0, sample=None):
    """Run both (the oracle on ``sample``, row numbers, or every building); assert 100% agreement on
    inside/outside but within 5 cm of the limit, on the walks, on the site named, and that its polygon
    covers the building's foot on the road. Returns the reach, the sample, and the oracle's walks."""
    got = reach(sites, buildings, roads, minutes=minutes)
    sample = np.arange(len(buildings)) if sample is None else sample
    walks, feet = oracle(sites, buildings.iloc[sample], roads, got.limit_m)
    best = walks.min(axis=1) if walks.shape[1] else np.full(len(sample), np.inf)
    inside, distance, nearest = got.inside[sample], got.distance_m[sample], got.nearest_site[sample]
    clear = np.abs(best - got.limit_m) > 0.05
    wrong = np.flatnonzero(clear & (inside != (best <= got.limit_m)))
    assert not len(wrong), f"disagree on rows {sample[wrong][:20]}"
    both = inside & (best <= got.limit_m)
    np.testing.assert_allclose(distance[both], best[both], rtol=0, atol=EXACT)
    where = {sid: j for j, sid in enumerate(sites["id"])}
    named = np.array([where[s] for s in nearest[both]], dtype=int)
    np.testing.assert_allclose(walks[np.flatnonzero(both), named], best[both], rtol=0, atol=EXACT)
    assert shapely.covers(got.areas.geometry.to_numpy()[named], feet.to_numpy()[both]).all()
    return got, sample, best


def town(seed: int, n_blocks: int = 10, n_homes: int = 300, n_sites: int = 4):
    """A jittered street grid with bent streets, missing links, dead ends and a loose piece, noded."""
    rng = np.random.default_rng(seed)
    step = 180.0
    corner = {
        (i, j): (i * step + rng.uniform(-30, 30), j * step + rng.uniform(-30, 30))
        for i in range(n_blocks + 1)
        for j in range(n_blocks + 1)
    }
    lines = []
    for (i, j), p in corner.items():
        for q in ((i + 1, j), (i, j + 1)):
            if q in corner and rng.random() > 0.2:
                mid = (np.add(p, corner[q]) / 2 + rng.uniform(-20, 20, 2)).tolist()
                lines.append([p, *([mid] if rng.random() < 0.5 else []), corner[q]])
    lines.append([(-400, -400), (-100, -300)])  # a piece joined to nothing
    span = n_blocks * step
    homes = rng.uniform(-200, span + 100, (n_homes, 2))
    sites = rng.uniform(0, span, (n_sites, 2))
    return sites_at(*map(tuple, sites)), buildings_at(*map(tuple, homes)), roads_of(*lines)


def test_a_synthetic_town_agrees_with_the_oracle():
    sites, homes, roads = town(7)
    got, _, best = check_against_oracle(sites, homes, roads, minutes=10)
    assert 0.2 < got.inside.mean() < 0.8  # both answers occur
    assert np.isinf(best).any()  # and the loose piece or a far corner is out of reach


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), minutes=st.floats(1, 20), n_sites=st.integers(1, 5))
def test_random_towns_agree_with_the_oracle(seed, minutes, n_sites):
    sites, homes, roads = town(seed, n_blocks=5, n_homes=60, n_sites=n_sites)
    check_against_oracle(sites, homes, roads, minutes=minutes)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), minutes=st.floats(1, 20))
def test_walks_are_never_shorter_than_the_crow_flies_and_more_time_reaches_more(seed, minutes):
    sites, homes, roads = town(seed, n_blocks=4, n_homes=40, n_sites=2)
    walk = reach(sites, homes, roads, minutes=minutes)
    crow = reach(sites, homes, None, minutes=minutes)
    assert (walk.distance_m[walk.inside] >= crow.distance_m[walk.inside] - CM).all()
    assert not (walk.inside & ~crow.inside).any()
    more = reach(sites, homes, roads, minutes=minutes * 1.5)
    assert not (walk.inside & ~more.inside).any()
    np.testing.assert_allclose(more.distance_m[walk.inside], walk.distance_m[walk.inside])
    fewer = reach(sites[:1], homes, roads, minutes=minutes)
    assert not (fewer.inside & ~walk.inside).any()


# --- the done-when: the demo county ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_county_agrees_with_the_oracle_on_1000_buildings():
    missing = [n for n in ("roads", "sites", "buildings") if not (DEMO / f"{n}.geojson").exists()]
    if missing:
        unavailable(f"demo layers not generated: {missing}")  # skipped here, a failure under CI
    sites, homes, roads = (gpd.read_file(DEMO / f"{n}.geojson") for n in ("sites", "buildings", "roads"))
    sample = np.sort(np.random.default_rng(20261122).choice(len(homes), 1000, replace=False))
    got, _, best = check_against_oracle(sites, homes, roads, sample=sample)
    assert got.method == "network" and len(got.areas) == len(sites)
    assert (np.abs(best - got.limit_m) > 0.05).sum() >= 995  # "within 5 cm of the limit" stays rare
    assert 0.05 < got.inside[sample].mean() < 0.995  # the sample sees both answers
