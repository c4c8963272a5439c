"""Plans over the demo county: grids as unions of micro-grids, edits that keep the tessellation exact, the
norm, contiguity and compactness measured, and a diff that gives back exactly the moves planted —
households recounted from the buildings, independently of the plan."""

from __future__ import annotations

import math

import geopandas as gpd
import pytest
import shapely

from geogrid.errors import InvalidPlan
from geogrid.planning import Norm, Plan
from tests.conftest import DEMO


@pytest.fixture(scope="module")
def plan(demo_layers) -> Plan:
    return Plan.from_layers(demo_layers["grids"], demo_layers["microgrids"])


@pytest.fixture(scope="module")
def buildings() -> gpd.GeoDataFrame:
    return gpd.read_file(DEMO / "buildings.geojson")


def recount(layer: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame) -> dict[str, int]:
    """Households per grid of ``layer``, from the buildings standing in it (not from the plan's sums)."""
    joined = gpd.sjoin(buildings[["households", "geometry"]], layer[["code", "geometry"]], predicate="within")
    return {str(k): int(v) for k, v in joined.groupby("code")["households"].sum().items()}


def neighbours_across(plan: Plan, grid: str) -> tuple[list[str], str]:
    """Micro-grids of ``grid`` that share an edge with another grid of its community, and that grid."""
    community = plan.community_of(grid)
    adjacency = plan.neighbours.adjacency
    for (mine, other), weight in adjacency.items():
        if not weight or plan.assignment[mine] != grid:
            continue
        there = plan.assignment[other]
        if there != grid and plan.community_of(there) == community:
            return [mine], there
    raise AssertionError(f"{grid} has no neighbour in its community")


def test_the_plan_of_a_version_is_its_grids(plan, demo_layers):
    layer = plan.grid_layer().set_index("code")
    grids = demo_layers["grids"].set_index("code")
    assert sorted(layer.index) == sorted(grids.index)
    assert (layer["households"] == grids.loc[layer.index, "households"]).all()
    moved = shapely.symmetric_difference(layer.geometry.values, grids.loc[layer.index].geometry.values)
    assert shapely.area(moved).max() < 1e-12  # the unions of the micro-grids are the grids, exactly
    metrics = plan.metrics(Norm(300, 500))
    assert metrics["contiguous"].all() and set(metrics["norm"]) == {"low", "ok", "high"}
    assert ((metrics["households"] < 300) == (metrics["norm"] == "low")).all()
    assert metrics["polsby_popper"].between(0, 1).all()


def test_moves_are_given_back_exactly_and_households_recount_from_the_buildings(plan, buildings):
    grids = sorted(plan.grids.index)
    planted: dict[str, tuple[str, str]] = {}
    edited = plan
    for grid in (grids[3], grids[40], grids[200]):
        moving, there = neighbours_across(edited, grid)
        planted |= {m: (grid, there) for m in moving}
        edited = edited.move(moving, there)
    diff = edited.diff(plan)
    assert {r.microgrid: (r.from_grid, r.to_grid) for r in diff.moved.itertuples()} == planted
    assert (
        diff.added == []
        and diff.removed == []
        and set(diff.changed) == {g for p in planted.values() for g in p}
    )
    before, after = recount(plan.grid_layer(), buildings), recount(edited.grid_layer(), buildings)
    shifted = sum(abs(after.get(g, 0) - before.get(g, 0)) for g in set(before) | set(after)) // 2
    assert diff.households_moved == shifted > 0  # each moved household leaves one grid and joins another
    sums = edited.metrics().set_index("code")["households"]
    assert {g: int(sums[g]) for g in after} == after  # the plan's figures are the buildings' count
    assert list(diff.layer()["microgrid"]) == list(diff.moved["microgrid"])


def test_merge_then_split_back_is_the_same_partition(plan):
    grid = sorted(plan.grids.index)[10]
    _, other = neighbours_across(plan, grid)
    merged = plan.merge([grid, other])
    assert other not in merged.grids.index and merged.diff(plan).removed == [other]
    parts = [list(plan.assignment.index[plan.assignment == g]) for g in (grid, other)]
    split = merged.split(grid, parts, names=["新网格"])
    (new,) = set(split.grids.index) - set(merged.grids.index)
    assert new.startswith(plan.community_of(grid)) and split.grids.at[new, "name"] == "新网格"
    assert new != other and new not in plan.grids.index  # a retired code is never given to another area
    assert (split.assignment.replace({new: other}) == plan.assignment).all()
    diff = split.diff(plan)
    assert (diff.added, diff.removed) == ([new], [other])


def test_an_exclave_is_not_contiguous_and_compactness_is_measured_in_metres(plan):
    grids = sorted(plan.grids.index)
    community = plan.community_of(grids[0])
    far = [g for g in grids if plan.community_of(g) == community]
    home, away = far[0], far[-1]
    layer = plan.grid_layer().set_index("code")
    lone = next(
        m
        for m in plan.assignment.index[plan.assignment == away]
        if not shapely.intersects(plan.microgrids.geometry[m], layer.geometry[home])
    )
    moved = plan.move([lone], home)
    metrics = moved.metrics().set_index("code")
    assert not metrics.at[home, "contiguous"] and moved.pieces()[home] == 2
    box = shapely.box(111, 39, 111.01, 39.01)
    one = gpd.GeoDataFrame({"households": [1], "population": [1]}, geometry=[box], index=["m1"], crs=4326)
    square = Plan(plan.grids.iloc[:1], one, {"m1": plan.grids.index[0]})
    ratio = math.cos(math.radians(39.005))  # a degree of longitude is shorter than one of latitude
    rectangle = math.pi * ratio / (1 + ratio) ** 2  # 4πA/P² of a rectangle: measured in metres, not degrees
    assert square.metrics()["polsby_popper"].iloc[0] == pytest.approx(rectangle, rel=0.002)


def test_edits_that_would_break_the_plan_are_refused(plan):
    grids = sorted(plan.grids.index)
    first, last = grids[0], grids[-1]
    assert plan.community_of(first) != plan.community_of(last)
    one = list(plan.assignment.index[plan.assignment == first])[:1]
    with pytest.raises(InvalidPlan, match="another community"):
        plan.move(one, last)
    with pytest.raises(InvalidPlan, match="each of its"):
        plan.split(first, [one, ["150622999999999999"]])
    with pytest.raises(InvalidPlan, match="no grid"):
        plan.move(one, "150622001001999")
    with pytest.raises(InvalidPlan, match="different communities"):
        plan.merge([first, last])
    with pytest.raises(InvalidPlan, match="floor"):
        Norm(500, 300)
    with pytest.raises(InvalidPlan, match="two grids"):
        plan.merge([first])
    fewer = Plan(plan.grids, plan.microgrids.iloc[1:], plan.assignment.iloc[1:])
    with pytest.raises(InvalidPlan, match="different micro-grids"):
        fewer.diff(plan)
