"""The versioned store, on SpatiaLite and on PostGIS: imports, publishing, as-of reads, audit, atomicity."""

from __future__ import annotations

import datetime as dt

import pytest
import shapely
from shapely import affinity

from geogrid.db import Store
from geogrid.db.migrate import current_revision, downgrade, head_revision, upgrade
from geogrid.errors import (
    HierarchyViolation,
    InvalidCode,
    InvalidGeometry,
    NotFound,
    TopologyProblems,
    VersionConflict,
)

V1, V2 = dt.date(2026, 1, 1), dt.date(2026, 7, 1)


@pytest.fixture
def one_street(demo_layers):
    """Street 001 of the demo county with all its communities, grids and micro-grids."""
    layers = {}
    for name in ("streets", "communities", "grids", "microgrids"):
        frame = demo_layers[name]
        layers[name] = frame[frame["code"].str.startswith("150622001")].reset_index(drop=True)
    return layers


def load(store: Store, layers, set_name="s") -> None:
    for name, level in (
        ("streets", "street"),
        ("communities", "community"),
        ("grids", "grid"),
        ("microgrids", "microgrid"),
    ):
        store.import_units(set_name, layers[name], level, commit=True)


def test_dry_run_writes_nothing(store, one_street):
    report = store.import_units("s", one_street["grids"], "grid")
    assert not report.committed and len(report.added) == len(one_street["grids"])
    assert store.sets() == [] and store.audit() == []


def test_import_publish_and_read_back_exactly(store, one_street):
    load(store, one_street)
    version = store.publish("s", V1, note="first")
    assert version.number == 1 and version.valid_from == V1 and version.valid_to is None
    assert version.units == {
        "street": 1,
        "community": len(one_street["communities"]),
        "grid": len(one_street["grids"]),
        "microgrid": len(one_street["microgrids"]),
    }
    units = store.units("s", at=V1, level="microgrid")
    expected = one_street["microgrids"].sort_values("code")
    assert units["code"].tolist() == expected["code"].tolist()
    assert shapely.equals_exact(units.geometry.to_numpy(), expected.geometry.to_numpy(), 0).all()
    assert units["households"].tolist() == expected["households"].tolist()
    assert units["parent_code"].tolist() == expected["parent_code"].tolist()


def test_publishing_v2_keeps_v1(store, one_street):
    load(store, one_street)
    store.publish("s", V1)
    grids = one_street["grids"].copy()
    target = grids["code"].iloc[0]
    # v2 renames one grid and corrects its households; the geometry stays
    grids.loc[0, "households"] = 999
    grids.loc[0, "name"] = "重新划分的网格"
    report = store.import_units("s", grids, "grid", commit=True)
    assert report.changed == [target] and report.draft_number == 2 and report.base_number == 1
    v2 = store.publish("s", V2, note="redrawn")
    versions = store.versions("s")
    assert [(v.number, v.valid_from, v.valid_to) for v in versions] == [(1, V1, V2), (2, V2, None)]
    before = store.units("s", at=V2 - dt.timedelta(days=1), level="grid").set_index("code")
    after = store.units("s", at=V2, level="grid").set_index("code")
    assert before.loc[target, "name"] == one_street["grids"]["name"].iloc[0]
    assert after.loc[target, "name"] == "重新划分的网格" and after.loc[target, "households"] == 999
    assert shapely.equals_exact(before.geometry.to_numpy(), after.geometry.to_numpy(), 0).all()
    assert len(store.units("s", at=V2, level="microgrid")) == len(one_street["microgrids"])  # copied forward
    publishes = [a for a in store.audit("s") if a["action"] == "publish"]
    assert [(a["version_number"], a["actor"], a["detail"]["valid_from"]) for a in publishes] == [
        (1, "tester", "2026-01-01"),
        (2, "tester", "2026-07-01"),
    ]
    assert v2.number == 2 and versions[0].in_force(V1) and not versions[0].in_force(V2)


def test_as_of_reads_old_geometry(store, one_street):
    load(store, one_street)
    store.publish("s", V1)
    micro = one_street["microgrids"]
    grids = one_street["grids"]
    # v2 moves one micro-grid into a different shape (shrinks it inside its grid)
    code = micro["code"].iloc[0]
    shrunk = micro.copy()
    shrunk.loc[0, "geometry"] = shapely.MultiPolygon(
        [affinity.scale(micro.geometry.iloc[0].geoms[0], 0.5, 0.5)]
    )
    store.import_units("s", shrunk, "microgrid", commit=True)
    store.publish("s", V2, force="test: a micro-grid shrunk on purpose")
    old = store.units("s", at=dt.date(2026, 3, 1), level="microgrid").set_index("code").geometry[code]
    new = store.units("s", at=dt.date(2026, 8, 1), level="microgrid").set_index("code").geometry[code]
    assert old.equals_exact(micro.geometry.iloc[0], 0) and new.area < old.area
    assert len(grids) == len(store.units("s", version=1, level="grid"))


def test_nothing_in_force_before_the_first_version(store, one_street):
    load(store, one_street)
    store.publish("s", V1)
    with pytest.raises(NotFound, match="no published version of 's' is in force on 2025-12-31"):
        store.units("s", at=dt.date(2025, 12, 31))


def test_valid_from_must_move_forward(store, one_street):
    load(store, one_street)
    store.publish("s", V2)
    store.import_units("s", one_street["grids"], "grid", commit=True)
    with pytest.raises(VersionConflict, match="must be after v1's valid_from 2026-07-01"):
        store.publish("s", V1)
    assert store.versions("s")[0].valid_to is None  # the refused publish changed nothing


def test_publish_refuses_a_unit_outside_its_parent(store, one_street):
    micro = one_street["microgrids"].copy()
    code = micro["code"].iloc[3]
    micro.loc[3, "geometry"] = affinity.translate(micro.geometry.iloc[3], xoff=0.05)
    load(store, {**one_street, "microgrids": micro})
    with pytest.raises(HierarchyViolation, match=f"{code}: .* m² lies outside its parent {code[:15]}"):
        store.publish("s", V1)
    assert all(v.status == "draft" for v in store.versions("s"))


def test_dry_run_warns_of_wrong_parents_and_orphans(store, one_street):
    load(store, one_street)
    micro = one_street["microgrids"].copy()
    micro.loc[0, "geometry"] = affinity.translate(micro.geometry.iloc[0], yoff=0.05)
    report = store.import_units("s", micro, "microgrid")
    assert any(micro["code"].iloc[0] in w and "outside its parent" in w for w in report.warnings)
    report = store.import_units("s", one_street["grids"].iloc[1:], "grid")
    assert report.removed == [one_street["grids"]["code"].iloc[0]]
    assert any("would lose their parent" in w for w in report.warnings)


def test_a_failed_import_leaves_nothing(store, one_street):
    def explode(done, total):
        raise RuntimeError("disk full")

    micro = one_street["microgrids"]
    with pytest.raises(RuntimeError, match="disk full"):
        store.import_units("s", micro, "microgrid", commit=True, progress=explode)
    assert store.sets() == [] and store.audit() == []


def test_bad_rows_are_refused_whole(store, one_street):
    grids = one_street["grids"].copy()
    grids.loc[2, "code"] = "1506220010010"
    with pytest.raises(InvalidCode, match="row 3"):
        store.import_units("s", grids, "grid", commit=True)
    assert store.sets() == []


def test_publish_refuses_a_layer_with_gaps_unless_forced(store, one_street):
    micro = one_street["microgrids"]
    load(store, {**one_street, "microgrids": micro.iloc[1:]})  # one micro-grid missing: a gap in its grid
    with pytest.raises(TopologyProblems, match=r"microgrid: 1 gap"):
        store.publish("s", V1)
    assert all(v.status == "draft" for v in store.versions("s"))
    store.publish("s", V1, force="the missing compound is being surveyed")
    entry = [a for a in store.audit("s") if a["action"] == "publish"][-1]
    assert entry["detail"]["forced"] == "the missing compound is being surveyed"
    assert entry["detail"]["topology"] == {"microgrid": {"gap": 1}}


def test_discard_draft(store, one_street):
    load(store, one_street)
    assert store.discard_draft("s") == 1
    assert store.versions("s") == []
    with pytest.raises(NotFound, match="has no draft to publish"):
        store.publish("s", V1)


def test_full_demo_county(store, demo_layers):
    for name, level in (
        ("county", "county"),
        ("streets", "street"),
        ("communities", "community"),
        ("grids", "grid"),
        ("microgrids", "microgrid"),
    ):
        store.import_units("demo", demo_layers[name], level, commit=True)
    version = store.publish("demo", V1)
    assert version.units == {
        "county": 1,
        "street": 13,
        "community": 42,
        "grid": 522,
        "microgrid": len(demo_layers["microgrids"]),
    }
    grids = store.units("demo", level="grid", at=V1)
    assert int(grids["households"].sum()) == int(demo_layers["grids"]["households"].sum())


def test_migrations_go_down_and_up(engine):
    assert current_revision(engine) == head_revision()
    downgrade(engine)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_polygons_are_stored_as_multipolygons_and_other_shapes_refused(store, one_street):
    grids = one_street["grids"].copy()
    grids["geometry"] = [
        shapely.get_geometry(g, 0) for g in grids.geometry
    ]  # plain Polygons, as Python makes them
    store.import_units("s", grids, "grid", commit=True)
    assert set(store.units("s", version=1, level="grid").geometry.geom_type) == {"MultiPolygon"}
    grids.loc[1, "geometry"] = shapely.Point(111.2, 39.85)
    with pytest.raises(InvalidGeometry, match="row 2: unit .* has a Point; units are polygons"):
        store.import_units("s", grids, "grid", commit=True)
