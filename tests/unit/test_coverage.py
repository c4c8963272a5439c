"""Coverage report on a small synthetic county: staffing, norm, worker load, reach, gaps, masking, GeoPackage."""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geogrid.coverage import SPREAD_GRIDS, coverage, json_rows, parse_norm
from geogrid.crs import local_metric_crs
from geogrid.errors import InvalidParameter
from geogrid.people import POST_COLUMNS, mask_phone

AT = dt.date(2026, 12, 1)
X0, Y0, W = 111.20, 39.85, 0.01  # grids are 0.01° squares side by side (about 850 m x 1.1 km)
COUNTY, STREET = "150622", "150622001"
C1, C2 = "150622001001", "150622001002"
G1, G2, G3, G4 = "150622001001001", "150622001001002", "150622001002001", "150622001002002"
GRIDS = {G1: (0, C1, 400), G2: (1, C1, 100), G3: (2, C2, 600), G4: (3, C2, 300)}


def cell(i: int, lo: float = 0.0, hi: float = 1.0) -> shapely.Polygon:
    return shapely.box(X0 + (i + lo) * W, Y0, X0 + (i + hi) * W, Y0 + W)


def units() -> dict[str, gpd.GeoDataFrame]:
    """County and street over five cells, two communities, four grids: the fifth cell is in no grid."""

    def frame(rows):
        return gpd.GeoDataFrame(
            [{"code": c, "name": f"unit {c}", "parent_code": p, "households": h} for c, p, h, _ in rows],
            geometry=[g for *_, g in rows],
            crs=4326,
        )

    whole = shapely.box(X0, Y0, X0 + 5 * W, Y0 + W)
    micro = [(G1 + "001", G1, 200, cell(0, 0, 0.5)), (G1 + "002", G1, 200, cell(0, 0.5, 1))]
    micro += [(code + "001", code, h, cell(i)) for code, (i, _, h) in GRIDS.items() if code != G1]
    return {
        "county": frame([(COUNTY, None, 1400, whole)]),
        "street": frame([(STREET, COUNTY, 1400, whole)]),
        "community": frame(
            [
                (C1, STREET, 500, shapely.union(cell(0), cell(1))),
                (C2, STREET, 900, shapely.union(cell(2), cell(3))),
            ]
        ),
        "grid": frame([(code, parent, h, cell(i)) for code, (i, parent, h) in GRIDS.items()]),
        "microgrid": frame(micro),
    }


def post(n, person, role, unit, start=dt.date(2026, 1, 1), end=None, buildings=(), name=None):
    return {
        "post_id": n,
        "person_id": person,
        "name": name or f"name {person}",
        "phone": f"138{n:08d}",
        "kind": {"leader": "leader", "secretary": "secretary"}.get(role, "worker_fulltime"),
        "role": role,
        "unit_code": unit,
        "valid_from": start,
        "valid_to": end,
        "buildings": list(buildings),
    }


def posts(extra=()) -> pd.DataFrame:
    rows = [
        post(1, "p1", "leader", G1),
        post(2, "p2", "worker", G1 + "001", buildings=["b1"]),  # on a micro-grid of G1
        post(3, "p3", "worker", G1),
        post(4, "p3", "worker", G2),  # G2: a worker, no leader
        post(5, "p4", "leader", G3),
        post(6, "p5", "worker", G3, end=dt.date(2026, 11, 15)),  # G3's only worker left last month
        post(7, "p8", "worker", G4, start=dt.date(2027, 1, 1)),  # G4: nobody yet
        post(8, "p6", "secretary", C1),
        post(9, "p7", "secretary", C2, end=AT),  # valid_to is exclusive: gone on AT
        *extra,
    ]
    return pd.DataFrame(rows, columns=POST_COLUMNS)


def buildings() -> gpd.GeoDataFrame:
    rows = [
        ("b1", G1 + "001", 30, 0.25),
        ("b2", G2 + "001", 100, 1.5),
        ("b3", G3 + "001", 250, 2.5),
        ("b4", G3 + "001", 350, 2.6),
        ("b5", "unknown", 300, 3.5),  # not a known micro-grid: placed by where it lies (G4)
    ]
    return gpd.GeoDataFrame(
        [{"id": i, "microgrid_code": m, "households": h} for i, m, h, _ in rows],
        geometry=[shapely.Point(X0 + x * W, Y0 + W / 2) for *_, x in rows],
        crs=4326,
    )


def sites() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["s1"], "name": ["centre"], "kind": ["centre"], "hours": ["08:30-17:30"]},
        geometry=[shapely.Point(X0 + 0.5 * W, Y0 + W / 2)],
        crs=4326,
    )


@pytest.fixture(scope="module")
def report():
    return coverage(units(), posts(), buildings(), sites(), None, at=AT, set_name="t")


def row(report, code):
    return report.grids.set_index("code").loc[code]


def test_staffing_counts_micro_grid_posts_and_only_posts_in_force(report):
    assert report.codes("staffing", "staffed") == [G1]
    assert report.codes("staffing", "no_leader") == [G2]
    assert report.codes("staffing", "no_worker") == [G3]
    assert report.codes("staffing", "unstaffed") == [G4]
    g1 = row(report, G1)
    assert g1["leaders"] == ["name p1"] and g1["workers"] == 2
    assert sorted(g1["worker_names"]) == ["name p2", "name p3"]


def test_norm_bounds_are_within(report):
    assert [row(report, c)["norm"] for c in (G1, G2, G3, G4)] == ["within", "under", "over", "within"]
    tight = coverage(units(), posts(), buildings(), sites(), None, at=AT, norm="400-400")
    assert tight.codes("norm", "within") == [G1]


def test_households_per_worker_and_worker_load(report):
    assert row(report, G1)["households_per_worker"] == 200.0
    assert row(report, G2)["households_per_worker"] == 100.0
    assert pd.isna(row(report, G3)["households_per_worker"])  # NaN in the frame, null in JSON
    assert report.grid_rows()[2]["households_per_worker"] is None
    w = report.workers.set_index("person_id")
    assert list(w.index) == ["p2", "p3"]
    assert w.loc["p3", "grids"] == 2 and w.loc["p3", "grid_codes"] == [G1, G2]
    assert w.loc["p3", "households"] == 300.0  # half of G1's 400, all of G2's 100
    assert w.loc["p3", "households_per_grid"] == {G1: 200.0, G2: 100.0}
    assert w.loc["p2", "households"] == 200.0
    assert (w.loc["p2", "buildings_1x"], w.loc["p2", "households_1x"]) == (1, 30)


def test_contacts_are_the_1x_posts(report):
    assert row(report, G1)["contacts"] == [
        {
            "person_id": "p2",
            "name": "name p2",
            "role": "worker",
            "phone": "13800000002",
            "buildings": 1,
            "households": 30,
        }
    ]
    assert row(report, G2)["contacts"] == []


def test_secretaries_in_force(report):
    c = report.communities.set_index("code")
    assert c.loc[C1, "secretaries"] == ["name p6"] and not c.loc[C1, "no_secretary"]
    assert c.loc[C2, "no_secretary"] and c.loc[C2, "grids"] == 2


def test_households_outside_reach_per_grid(report):
    # straight line, 15 min at 5 km/h = 1,250 m from the site in the middle of G1's cell
    assert report.reach.method == "straight_line"
    assert [row(report, c)["households_outside_reach"] for c in (G1, G2, G3, G4)] == [0, 0, 600, 300]
    assert sorted(report.outside["id"]) == ["b3", "b4", "b5"]
    assert report.outside.set_index("id").loc["b5", "grid_code"] == G4
    faster = coverage(units(), posts(), buildings(), sites(), None, at=AT, speed_kmh=12.0)
    assert faster.outside.empty


def test_no_sites_leaves_every_household_outside():
    empty = sites().iloc[:0]
    report = coverage(units(), posts(), buildings(), empty, None, at=AT)
    assert report.grids["households_outside_reach"].sum() == 1030
    assert report.summary()["reach"]["sites"] == 0


def test_the_land_in_no_grid_is_the_gap(report):
    assert len(report.gaps) == 1 and report.gaps["kind"].iat[0] == "gap"
    metric = local_metric_crs(X0, Y0)
    expected = gpd.GeoSeries([cell(4)], crs=4326).to_crs(metric).area.iat[0]
    assert report.gaps["area_m2"].iat[0] == pytest.approx(expected, rel=1e-6)
    assert shapely.equals_exact(
        shapely.normalize(report.gaps.geometry.iat[0]), shapely.normalize(cell(4)), 1e-9
    )


def test_summary_is_json_and_names_the_codes(report):
    s = json.loads(json.dumps(report.summary()))
    assert s["staffing"]["unstaffed"] == {"count": 1, "codes": [G4]}
    assert s["no_secretary"] == {"count": 1, "codes": [C2]}
    assert s["norm"]["under"]["codes"] == [G2] and s["norm"]["over"]["codes"] == [G3]
    assert s["workers"]["households_per_worker"] == {"mean": 250.0, "median": 250.0, "max": 300.0}
    assert s["workers"]["max_grids"] == {"person_id": "p3", "name": "name p3", "grids": 2}
    assert s["workers"]["spread"] == []
    assert s["reach"]["households_outside"] == 900
    assert s["reach"]["top"][0] == {"code": G3, "name": f"unit {G3}", "households_outside": 600}
    assert s["gaps"]["count"] == 1 and s["problems"]["by_kind"] == {"gap": 1}
    assert json.dumps(report.grid_rows()) and json.dumps(json_rows(report.workers))


def test_a_worker_in_four_grids_is_spread():
    extra = [post(20 + i, "p9", "worker", code) for i, code in enumerate(GRIDS)]
    report = coverage(units(), posts(extra), buildings(), sites(), None, at=AT)
    spread = report.summary()["workers"]["spread"]
    assert spread == [{"person_id": "p9", "name": "name p9", "grids": SPREAD_GRIDS, "codes": sorted(GRIDS)}]


def test_mask_reaches_every_phone():
    report = coverage(units(), posts(), buildings(), sites(), None, at=AT, mask=mask_phone)
    text = json.dumps([report.grid_rows(), json_rows(report.workers), json_rows(report.communities)])
    assert "138****0002" in text and "13800000002" not in text
    assert not any(f"1380000000{n}" in text for n in range(10))


def test_gpkg_holds_every_layer(report, tmp_path):
    path = report.to_gpkg(tmp_path / "coverage.gpkg")
    layers = dict(pyogrio.list_layers(path).tolist())
    assert set(layers) == {"grids", "communities", "gaps", "problems", "outside", "sites", "reach"}
    grids = gpd.read_file(path, layer="grids")
    assert len(grids) == 4 and json.loads(grids.set_index("code").loc[G1, "leaders"]) == ["name p1"]
    assert len(gpd.read_file(path, layer="outside")) == 3


def test_an_empty_layer_still_writes(tmp_path):
    county = units()
    county["grid"] = county["grid"].iloc[:0]
    report = coverage(county, posts().iloc[:0], buildings(), sites(), None, at=AT)
    assert report.grids.empty and report.gaps["area_m2"].sum() > 0
    path = report.to_gpkg(tmp_path / "empty.gpkg")
    assert len(gpd.read_file(path, layer="grids")) == 0
    nothing = coverage({}, posts().iloc[:0], None, None, None, at=AT)
    assert nothing.grids.empty and nothing.gaps.empty and nothing.summary()["workers"]["count"] == 0


@pytest.mark.parametrize("bad", ["300", "500-300", "a-b", "-1-5", (1,)])
def test_a_bad_norm_is_refused(bad):
    with pytest.raises(InvalidParameter):
        parse_norm(bad)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["w1", "w2", "w3"]), st.sampled_from(sorted(GRIDS))), max_size=10))
def test_worker_loads_share_out_the_staffed_grids(assignments):
    """However workers are spread, their loads add up to the households of the grids that have workers."""
    extra = [post(30 + i, person, "worker", code) for i, (person, code) in enumerate(assignments)]
    rows = [p for p in posts().to_dict("records") if p["role"] != "worker"] + extra
    report = coverage(units(), pd.DataFrame(rows, columns=POST_COLUMNS), buildings(), sites(), None, at=AT)
    g = report.grids
    staffed = g.loc[g["workers"] > 0, "households"].sum()
    assert report.workers["households"].sum() == pytest.approx(staffed, abs=0.05)
    assert set(g["staffing"]) <= {"staffed", "no_leader", "no_worker", "unstaffed"}
    assert (g["workers"] == g["code"].map(lambda c: len({p for p, k in assignments if k == c}))).all()
