"""The import's change report, the cheap parent check and the importer's reading rules (issue 10)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geogrid import changes, hierarchy
from geogrid.changes import NOISE_M, carry_over, compare
from geogrid.cli import _describe_change, _total
from geogrid.errors import TooManyVertices
from geogrid.hierarchy import check_parents, prepare_units
from geogrid.io import read_boundaries, write_layer
from geogrid.topology import INFO_KINDS, check

BOX = shapely.box(111.2, 39.85, 111.201, 39.851)


def units(**columns) -> gpd.GeoDataFrame:
    base = {"code": ["1"], "name": ["a"], "households": [5], "population": [None], "attributes": [{}]}
    base.update(columns)
    geometry = base.pop("geometry", [shapely.MultiPolygon([BOX])])
    frame = gpd.GeoDataFrame(base, geometry=geometry, crs=4326)
    frame["households"] = frame["households"].astype("Int64")
    frame["population"] = frame["population"].astype("Int64")
    return frame


def shifted(dx_m: float) -> shapely.MultiPolygon:
    xy = shapely.get_coordinates(BOX.exterior)
    xy[[0, -1]] += (dx_m / 85_400, 0.0)  # one corner (the ring's first and last vertex) moved east
    return shapely.MultiPolygon([shapely.Polygon(xy)])


@pytest.mark.parametrize("dx_m, changed", [(0.0004, False), (0.0009, False), (0.002, True), (3.0, True)])
def test_sub_millimetre_moves_are_noise(dx_m, changed):
    result = compare(units(), units(geometry=[shifted(dx_m)]))
    assert (result.changed == ["1"]) is changed
    if changed:
        geometry = result.changes[0]["geometry"]
        assert geometry["shift_m"] == pytest.approx(dx_m, rel=0.05, abs=0.001)
        assert geometry["area_m2"] > 0
    else:  # the old geometry stands, bit for bit
        assert result.geometry[0].equals_exact(units().geometry.iloc[0], 0.0)


def test_names_counts_and_attributes_are_reported_old_to_new():
    before = units(attributes=[{"owner": "张三", "kind": "x"}])
    after = units(name=["b"], households=[None], attributes=[{"owner": "李四", "kind": "x"}])
    (change,) = compare(before, after).changes
    assert change == {
        "code": "1",
        "name": {"old": "a", "new": "b"},
        "attributes": {"households": {"old": 5, "new": None}, "owner": {"old": "张三", "new": "李四"}},
        "dropped": ["households"],
    }


def test_added_and_removed_by_code():
    result = compare(units(code=["1"]), units(code=["2"]))
    assert result.added == ["2"] and result.removed == ["1"] and result.changed == []


def test_carry_over_keeps_what_the_file_lacks():
    before = units(attributes=[{"owner": "张三", "area": 3}], population=[40])
    after = units(households=[None], attributes=[{"owner": None}])
    merged, kept = carry_over(before, after, columns=["code", "name", "owner", "geometry"])
    assert kept == ["households", "population"]
    assert merged["households"].tolist() == [5] and merged["population"].tolist() == [40]
    assert merged["attributes"].tolist() == [{"owner": None, "area": 3}]  # the file's blank owner wins
    merged, kept = carry_over(before, after, columns=["code", "name", "Households", "geometry"])
    assert kept == ["population"] and pd.isna(merged["households"].iloc[0])


def test_large_units_measure_the_shift_without_quadratic_hausdorff(monkeypatch):
    t = np.linspace(0, 2 * np.pi, 5000, endpoint=False)
    ring = np.c_[111.2 + 0.001 * np.cos(t), 39.85 + 0.001 * np.sin(t)]
    a = shapely.MultiPolygon([shapely.Polygon(ring)])
    ring2 = ring.copy()
    ring2[10] += (2 / 85_400, 0.0)
    b = shapely.MultiPolygon([shapely.Polygon(ring2)])
    small = compare(units(geometry=[a]), units(geometry=[b])).changes[0]["geometry"]
    monkeypatch.setattr(changes, "_HAUSDORFF_MAX_PAIRS", 0)
    monkeypatch.setattr(shapely, "hausdorff_distance", None)  # the index path must not call it
    large = compare(units(geometry=[a]), units(geometry=[b])).changes[0]["geometry"]
    assert large["shift_m"] == pytest.approx(small["shift_m"], abs=0.01) and large["shift_m"] > 1.0


def test_noise_threshold_is_a_millimetre():
    assert NOISE_M == 0.001


def test_check_parents_cuts_only_the_units_that_stick_out(monkeypatch):
    t = np.linspace(0, 2 * np.pi, 50_000, endpoint=False)
    big = shapely.Polygon(np.c_[111.2 + 0.001 * np.cos(t), 39.85 + 0.001 * np.sin(t)])
    parent = gpd.GeoDataFrame(
        {"code": ["150622001001"]}, geometry=[shapely.box(111.19, 39.84, 111.21, 39.86)], crs=4326
    )
    children = gpd.GeoDataFrame(
        {"code": ["150622001001001", "150622001001002"]},
        geometry=[big, shapely.box(111.205, 39.855, 111.215, 39.857)],
        crs=4326,
    )
    cut = []
    real = shapely.difference
    monkeypatch.setattr(hierarchy.shapely, "difference", lambda a, b: cut.append(len(a)) or real(a, b))
    (violation,) = check_parents(children, parent)
    assert violation.code == "150622001001002" and violation.outside_m2 > 1000
    assert cut == [1]  # the 50,000-vertex child inside its parent was never cut
    assert check_parents(children.iloc[:1], parent) == [] and cut == [1]


def test_prepare_units_refuses_too_many_vertices_before_anything_else():
    t = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    poly = shapely.Polygon(np.c_[111.2 + 0.001 * np.cos(t), 39.85 + 0.001 * np.sin(t)])
    frame = gpd.GeoDataFrame({"code": ["bad code", "x"], "name": ["a", "b"]}, geometry=[BOX, poly], crs=4326)
    with pytest.raises(TooManyVertices, match="row 2: unit x has 31 vertices; at most 20") as e:
        prepare_units(frame, "grid", max_vertices=20)  # before the codes are even looked at
    assert e.value.status == 422 and e.value.where["field"] == "geometry"


def test_kml_style_fields_never_reach_the_attributes(tmp_path):
    frame = gpd.GeoDataFrame({"code": ["150622001001001"], "name": ["a"]}, geometry=[BOX], crs=4326)
    write_layer(frame, tmp_path / "g.kml")
    back = read_boundaries(tmp_path / "g.kml")
    assert sorted(back.columns) == ["code", "geometry", "name"]
    assert prepare_units(back, "grid")["attributes"].tolist() == [{}]


def test_multipart_is_information():
    two = shapely.MultiPolygon([BOX, shapely.box(111.202, 39.85, 111.203, 39.851)])
    report = check(gpd.GeoDataFrame({"code": ["1"]}, geometry=[two], crs=4326))
    assert report.summary["count"]["multipart"] == 1 and "multipart" in INFO_KINDS
    assert report.summary["information"] == ["multipart"] and report.faults.empty and not report.ok


def test_the_cli_describes_a_change_and_unknown_totals():
    change = {
        "code": "1",
        "name": {"old": "a", "new": "b"},
        "attributes": {"households": {"old": 5, "new": None}},
        "geometry": {"area_m2": 12.5, "shift_m": 0.8},
    }
    line = _describe_change(change)
    assert line == "name 'a' → 'b'; households 5 → —; geometry: 12.5 m² moved, largest shift 0.800 m"
    assert _total(pd.Series([None, None], dtype="Int64")) == "—"
    assert _total(pd.Series([3, None], dtype="Int64")) == "≥ 3"
    assert _total(pd.Series([3, 4], dtype="Int64")) == "7"


def test_the_same_vertices_joined_in_another_order_are_a_change():
    """Issue 10 item 3: a notch moved to the other side with no vertex moved is a redraw, not noise."""
    x, y, d = 111.2, 39.85, 0.001
    top = [(x, y), (x + d, y), (x + d, y + d), (x + d / 2, y + d / 2), (x, y + d)]  # notched from the top
    bottom = [(x, y), (x + d / 2, y + d / 2), (x + d, y), (x + d, y + d), (x, y + d)]  # from the bottom
    old = units(geometry=[shapely.MultiPolygon([shapely.Polygon(top)])])
    new = units(geometry=[shapely.MultiPolygon([shapely.Polygon(bottom)])])
    result = compare(old, new)
    assert result.changed == ["1"], result.changes
    geometry = result.changes[0]["geometry"]
    assert geometry["shift_m"] == 0.0 and geometry["area_m2"] > 1_000
    assert result.geometry[0].equals(new.geometry.iloc[0])  # the file's geometry is what gets written


def test_upper_case_count_columns_are_counts_and_are_not_carried_over():
    """An ArcGIS shapefile's HOUSEHOLDS is the households column: read, not kept from the draft."""
    file = gpd.GeoDataFrame(
        {"code": ["150622001"], "name": ["a"], "HOUSEHOLDS": [7], "Population": [20]},
        geometry=[BOX],
        crs=4326,
    )
    prepared = prepare_units(file, "street")
    assert prepared["households"].tolist() == [7] and prepared["population"].tolist() == [20]
    assert prepared["attributes"].tolist() == [{}]
    draft = units(code=["150622001"], households=[5], population=[10])
    filled, kept = carry_over(draft, prepared, file.columns)
    assert kept == [] and filled["households"].tolist() == [7] and filled["population"].tolist() == [20]
    both = file.assign(households=[8])  # spelt exactly, it wins; the other spelling stays an attribute
    prepared = prepare_units(both, "street")
    assert prepared["households"].tolist() == [8] and prepared["attributes"].iloc[0] == {"HOUSEHOLDS": 7}


def test_a_flag_that_becomes_a_number_is_a_change():
    """True == 1 in Python, not in the JSON a commit writes: the report says what is written."""
    result = compare(units(attributes=[{"flag": True, "n": 1}]), units(attributes=[{"flag": 1, "n": 1.0}]))
    assert result.changes[0]["attributes"] == {"flag": {"old": True, "new": 1}}
