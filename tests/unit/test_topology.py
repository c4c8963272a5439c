"""Topology: planted defects are all found, with their codes and areas; the clean demo county has none."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geogrid.crs import local_metric_crs
from geogrid.reconcile import compare
from geogrid.topology import check, repair

METRIC = local_metric_crs(111.2, 39.85)


def metric(geom):
    return gpd.GeoSeries([geom], crs=4326).to_crs(METRIC).iloc[0]


def wgs(geom):
    return gpd.GeoSeries([geom], crs=METRIC).to_crs(4326).iloc[0]


@pytest.mark.parametrize(
    ("child", "parent"),
    [("streets", "county"), ("communities", "streets"), ("grids", "communities"), ("microgrids", "grids")],
)
def test_the_clean_demo_county_has_no_problems(demo_layers, child, parent):
    report = check(demo_layers[child], demo_layers[parent])
    assert report.ok, report.problems[["kind", "codes", "area_m2"]].head().to_dict("records")
    assert report.summary["covered_share"] == pytest.approx(1.0, abs=1e-9)
    assert check(demo_layers[child]).ok  # and without a parent


@pytest.fixture(scope="module")
def planted(demo_layers):
    """The demo grids with one defect of each kind, at known places; returns the layer and expectations."""
    grids = demo_layers["grids"].copy().reset_index(drop=True)
    communities = demo_layers["communities"]
    by_comm = {c: grids.index[grids["parent_code"] == c].tolist() for c in communities["code"]}
    pick = [by_comm[c] for c in sorted(by_comm) if len(by_comm[c]) >= 4]
    m = {i: metric(g) for i, g in enumerate(grids.geometry)}
    expect = {}

    # 1. a gap: a grid deleted
    gone = pick[1][0]
    expect["gap"] = (grids.loc[gone, "code"], m[gone].area)
    # 2. an overlap: a 30 m square of one grid's neighbour added to it
    a = pick[4][0]
    neighbours = [j for j in pick[4][1:] if m[a].touches(m[j]) or m[a].intersects(m[j])]
    b = max(neighbours, key=lambda j: m[j].buffer(-40).area)
    centre = m[b].buffer(-40).representative_point()
    square = shapely.box(centre.x - 15, centre.y - 15, centre.x + 15, centre.y + 15)
    grids.loc[a, "geometry"] = wgs(shapely.union(m[a], square))
    expect["overlap"] = ({grids.loc[a, "code"], grids.loc[b, "code"]}, 900.0)
    # 3. a sliver: a grid shrunk by 0.3 m all round
    s = pick[8][0]
    shrunk = m[s].buffer(-0.3, join_style="mitre")
    grids.loc[s, "geometry"] = wgs(shrunk)
    expect["sliver"] = (grids.loc[s, "code"], m[s].area - shrunk.area)
    # 4. a bow-tie: a self-crossing ring in place of a grid
    t = pick[12][0]
    x0, y0, x1, y1 = shapely.bounds(m[t].buffer(-30))
    grids.loc[t, "geometry"] = wgs(shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)]))
    expect["invalid"] = grids.loc[t, "code"]
    # 5. a grid pushed 600 m east, out of its community
    p = pick[20][0]
    moved = shapely.affinity.translate(m[p], xoff=600)
    grids.loc[p, "geometry"] = wgs(moved)
    own = metric(communities.set_index("code").loc[grids.loc[p, "parent_code"], "geometry"])
    county = metric(demo_layers["county"].geometry.iloc[0])
    expect["wrong_parent"] = (grids.loc[p, "code"], moved.difference(own).intersection(county).area)
    # 6. a duplicate code
    d1, d2 = pick[25][0], pick[25][1]
    expect["duplicate_code"] = grids.loc[d1, "code"]
    grids.loc[d2, "code"] = grids.loc[d1, "code"]
    # 7. a two-part unit: one grid takes over another, not adjacent to it
    j = pick[30][0]
    far = max(pick[30][1:], key=lambda k: m[j].distance(m[k]))
    grids.loc[j, "geometry"] = wgs(shapely.union(m[j], m[far]))
    expect["multipart"] = (grids.loc[j, "code"], min(m[j].area, m[far].area))
    grids = grids.drop(index=[gone, far]).reset_index(drop=True)
    return grids, expect


@pytest.fixture(scope="module")
def planted_report(planted, demo_layers):
    grids, _ = planted
    return check(grids, demo_layers["communities"])


def rows(report, kind):
    return report.problems[report.problems["kind"] == kind]


def test_gap_found_with_area(planted, planted_report):
    _, expect = planted
    code, area = expect["gap"]
    gaps = rows(planted_report, "gap")
    match = gaps[gaps["area_m2"].between(area * 0.99, area * 1.01)]
    assert len(match) == 1
    assert code[:12] in {c[:12] for c in match["codes"].iloc[0]}  # its neighbours, in its community


def test_overlap_found_per_pair(planted, planted_report):
    _, expect = planted
    pair, area = expect["overlap"]
    overlaps = rows(planted_report, "overlap")
    match = overlaps[overlaps["codes"].map(set) == pair]
    assert len(match) == 1 and match["area_m2"].iloc[0] == pytest.approx(area, rel=0.01)


def test_sliver_reported_apart(planted, planted_report):
    _, expect = planted
    code, area = expect["sliver"]
    slivers = rows(planted_report, "sliver")
    mine = slivers[slivers["codes"].map(lambda c: code in c) & (slivers["detail"] == "gap")]
    assert mine["area_m2"].sum() == pytest.approx(area, rel=0.01)
    assert not rows(planted_report, "gap")["codes"].map(lambda c: c == [code]).any()


def test_bow_tie_is_invalid(planted, planted_report):
    _, expect = planted
    invalid = rows(planted_report, "invalid")
    assert invalid["codes"].tolist() == [[expect["invalid"]]]
    assert "Self-intersection" in invalid["detail"].iloc[0]


def test_unit_pushed_out_of_its_community(planted, planted_report):
    _, expect = planted
    code, area = expect["wrong_parent"]
    wrong = rows(planted_report, "wrong_parent")
    mine = wrong[wrong["codes"].map(lambda c: code in c)]
    assert mine["area_m2"].sum() == pytest.approx(area, rel=0.01)
    assert code[:12] in mine["detail"].iloc[0]


def test_duplicate_code_and_two_part_unit(planted, planted_report):
    _, expect = planted
    assert rows(planted_report, "duplicate_code")["codes"].tolist() == [[expect["duplicate_code"]]]
    code, area = expect["multipart"]
    multi = rows(planted_report, "multipart")
    mine = multi[multi["codes"].map(lambda c: c == [code])]
    assert len(mine) == 1 and mine["area_m2"].iloc[0] == pytest.approx(area, rel=0.01)


def test_summary_and_layer(planted_report, tmp_path):
    summary = planted_report.summary
    for kind in ("gap", "overlap", "sliver", "invalid", "wrong_parent", "duplicate_code", "multipart"):
        assert summary["count"][kind] >= 1, kind
    assert 0.99 < summary["covered_share"] < 1.0
    path = planted_report.to_file(tmp_path / "problems.gpkg")
    back = gpd.read_file(path)
    assert len(back) == len(planted_report.problems) and "kind" in back.columns


def voronoi_units(seed: int, n: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    box = shapely.box(111.1, 39.8, 111.12, 39.815)
    sites = shapely.multipoints(rng.uniform(0, 1, (n, 2)) * [0.02, 0.015] + [111.1, 39.8])
    cells = [shapely.intersection(c, box) for c in shapely.voronoi_polygons(sites, extend_to=box).geoms]
    cells = [c for c in cells if c.area > 0]
    return gpd.GeoDataFrame({"code": [f"{i:03d}" for i in range(len(cells))]}, geometry=cells, crs=4326), box


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n=st.integers(3, 40), size=st.floats(20, 60), which=st.integers(0, 1000))
def test_random_tessellations_are_clean_and_planted_problems_are_found(seed, n, size, which):
    units, box = voronoi_units(seed, n)
    parent = gpd.GeoDataFrame({"code": ["p"]}, geometry=[box], crs=4326)
    assert check(units, parent).ok
    i = which % len(units)
    m = metric(units.geometry.iloc[i])
    hole = (
        m.buffer(-size).representative_point().buffer(size / 3, quad_segs=2)
        if m.buffer(-size).area > 0
        else None
    )
    if hole is None or not m.contains(hole):
        return
    gapped = units.copy()
    gapped.loc[gapped.index[i], "geometry"] = wgs(m.difference(hole))
    found = check(gapped, parent)
    gaps = rows(found, "gap")
    assert gaps["area_m2"].sum() == pytest.approx(hole.area, rel=0.01)
    overlapping = units.copy()
    j = (i + 1) % len(units)
    overlapping.loc[overlapping.index[j], "geometry"] = wgs(
        shapely.union(metric(units.geometry.iloc[j]), hole)
    )
    overlaps = rows(check(overlapping, parent), "overlap")
    assert overlaps["area_m2"].sum() == pytest.approx(hole.area, rel=0.01)


def test_repair_leaves_only_the_gaps_it_hands_to_the_planner(planted, demo_layers):
    grids, _ = planted
    communities = demo_layers["communities"]
    result = repair(grids, communities)
    after = check(result.units, communities)
    assert set(after.faults["kind"]) <= {"gap"}, after.faults[["kind", "codes", "area_m2"]].to_dict("records")
    assert after.faults["area_m2"].sum() == pytest.approx(result.unassigned["area_m2"].sum(), rel=0.01)
    # the two-part grid keeps both parts: a unit in several parts is legitimate (issue 10 item 23)
    code, area = planted[1]["multipart"]
    assert after.problems.loc[after.problems["kind"] == "multipart", "codes"].tolist() == [[code]]
    assert len(result.unassigned) >= 2  # the deleted grid and the hole the pushed grid left
    c = result.changes
    gained = c.loc[c["action"].isin(["kept_overlap", "took_part", "filled_gap"]), "area_m2"].sum()
    ceded = -c.loc[c["action"] == "ceded_overlap", "area_m2"].sum()
    parts = -c.loc[(c["action"] == "gave_part") & (c["other"] == "neighbour"), "area_m2"].sum()
    filled = c.loc[c["action"] == "filled_gap", "area_m2"].sum()
    assert gained == pytest.approx(ceded + parts + filled, rel=1e-9)
    assert filled > 0 and ceded > 0
    # the 0.3 m sliver around the shrunk grid went back (mostly to that grid's neighbours or itself)
    assert c.loc[c["action"] == "filled_gap", "area_m2"].sum() >= 0.99 * planted[1]["sliver"][1]
    assert (result.units["code"].value_counts() == 1).all()
    balance = result.balance()
    assert set(balance.columns) == {"gained_m2", "lost_m2"}


def test_repair_of_a_clean_layer_changes_nothing(demo_layers):
    result = repair(demo_layers["grids"], demo_layers["communities"])
    assert result.changes.empty and result.unassigned.empty
    assert shapely.equals(result.units.geometry.to_numpy(), demo_layers["grids"].geometry.to_numpy()).all()


def test_compare_two_layers_against_an_independent_overlay(demo_layers):
    grids = demo_layers["grids"]
    micro = demo_layers["microgrids"]
    # layer b: the same county cut differently — each grid gives its first micro-grid to the next grid
    moved = micro.groupby("parent_code").head(1)
    reassigned = micro.copy()
    order = sorted(grids["code"])
    nxt = {c: order[(k + 1) % len(order)] for k, c in enumerate(order)}
    reassigned.loc[moved.index, "parent_code"] = moved["parent_code"].map(nxt)
    b = reassigned[["parent_code", "geometry"]].dissolve("parent_code").reset_index()
    b = b.rename(columns={"parent_code": "code"})
    result = compare(grids, b, threshold=0.05)
    metric = local_metric_crs(111.2, 39.85)
    independent = gpd.overlay(
        grids[["code", "geometry"]].to_crs(metric),
        b.rename(columns={"code": "code_b"}).to_crs(metric),
        how="intersection",
    )
    independent = independent[independent.area > 0.01]
    expected = (
        independent.assign(area_m2=independent.area).set_index(["code", "code_b"])["area_m2"].sort_index()
    )
    got = result.pairs.set_index(["code_a", "code_b"])["area_m2"].sort_index()
    assert got.index.equals(expected.index)
    assert np.allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6)
    disagree = result.disagreements[result.disagreements["layer"] == "a"]
    shares = got.groupby(level=0).max() / grids.set_index("code").to_crs(metric).area
    assert set(disagree["code"]) == set(shares[shares < 0.95].index)
    assert len(result.merged) >= len(grids)


def test_repair_snaps_near_coincident_edges():
    d = 0.001
    gap = 0.2 / 85_000  # a 0.2 m digitising gap between two neighbours
    units = gpd.GeoDataFrame(
        {"code": ["A", "B"]},
        geometry=[
            shapely.box(111.2, 39.85, 111.2 + d, 39.85 + d),
            shapely.box(111.2 + d + gap, 39.85, 111.2 + 2 * d, 39.85 + d),
        ],
        crs=4326,
    )
    assert rows(check(units), "sliver").empty  # without a parent, an open notch is not an enclosed gap
    parent = gpd.GeoDataFrame(
        {"code": ["P"]}, geometry=[shapely.box(111.2, 39.85, 111.2 + 2 * d, 39.85 + d)], crs=4326
    )
    before = check(units, parent)
    assert rows(before, "sliver")["detail"].tolist() == ["gap"]
    result = repair(units, parent)
    assert check(result.units, parent).ok
    assert "snapped" in set(result.changes["action"])
    assert result.unassigned.empty


def test_repair_filling_every_gap_passes_check(planted, demo_layers):
    grids, _ = planted
    communities = demo_layers["communities"]
    result = repair(grids, communities, max_fill_m2=float("inf"))
    after = check(result.units, communities)
    assert after.faults.empty, after.faults[["kind", "codes", "area_m2"]].to_dict("records")
    assert set(after.problems["kind"]) == {"multipart"}  # the planted two-part grid keeps its parts
    assert result.unassigned.empty
    c = result.changes
    gained = c.loc[c["action"].isin(["kept_overlap", "took_part", "filled_gap"]), "area_m2"].sum()
    lost = -c.loc[c["action"].isin(["ceded_overlap", "gave_part"]), "area_m2"].sum()
    filled = c.loc[c["action"] == "filled_gap", "area_m2"].sum()
    assert gained == pytest.approx(lost + filled, rel=1e-9)


def _island_layer():
    """A unit with an exclave (an island in its neighbour's land), the neighbour, and their parent."""
    x, y, d = 111.2, 39.85, 0.001
    island = shapely.box(x + 2.2 * d, y, x + 2.5 * d, y + 0.3 * d)  # on the parent's edge: B has a notch
    a = shapely.MultiPolygon([shapely.box(x, y, x + d, y + d), island])
    b = shapely.difference(shapely.box(x + d, y, x + 3 * d, y + d), island)
    units = gpd.GeoDataFrame({"code": ["A", "B"]}, geometry=[a, b], crs=4326)
    parent = gpd.GeoDataFrame({"code": ["P"]}, geometry=[shapely.box(x, y, x + 3 * d, y + d)], crs=4326)
    return units, parent, island


def test_repair_keeps_a_units_island():
    """Issue 10 item 23: an island is legitimate; repair reports nothing to do and gives nothing away."""
    units, parent, island = _island_layer()
    found = check(units, parent)
    assert found.faults.empty and found.summary["count"]["multipart"] == 1
    result = repair(units, parent)
    assert result.changes.empty and result.unassigned.empty
    assert shapely.equals(result.units.geometry.to_numpy(), units.geometry.to_numpy()).all()


def test_repair_gives_away_a_sliver_part_but_keeps_the_island():
    units, parent, island = _island_layer()
    x, y, d = 111.2, 39.85, 0.001
    strip = shapely.box(x + 1.5 * d, y + 0.7 * d, x + 1.9 * d, y + 0.7 * d + 0.3 / 111_000)  # 0.3 m wide
    a = units.geometry.iloc[0]
    units.loc[0, "geometry"] = shapely.MultiPolygon([*a.geoms, strip])  # a stray sliver inside B
    result = repair(units, parent)
    repaired = result.units.set_index("code").geometry
    assert shapely.get_num_geometries(repaired["A"]) == 2
    assert shapely.equals(repaired["A"], a)  # its main part and its island, as they were
    assert repaired["B"].covers(shapely.buffer(strip, -1e-12))
    assert "gave_part" not in set(result.changes["action"]) or set(
        result.changes.loc[result.changes["action"] == "gave_part", "other"]
    ) == {"neighbour"}
    assert check(result.units, parent).faults.empty
