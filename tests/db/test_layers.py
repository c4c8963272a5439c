"""Buildings, service sites and roads beside a set, on both databases: round trips, replacement in one
audited transaction, dry runs, and errors that name the feature and field."""

from __future__ import annotations

import math

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from typer.testing import CliRunner

from geogrid.cli import app
from geogrid.db.layers import Layers
from geogrid.errors import (
    GeoGridError,
    InvalidCoordinates,
    InvalidGeometry,
    MissingColumn,
    NotFound,
    VersionConflict,
)
from tests.conftest import DEMO, empty_store


@pytest.fixture(scope="module")
def buildings() -> gpd.GeoDataFrame:
    """The demo's buildings of one street, shuffled (the store orders them by id)."""
    frame = gpd.read_file(DEMO / "buildings.geojson")
    street = frame[frame["microgrid_code"].str.startswith("150622001")]
    return street.sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.fixture
def layers(store, demo_layers) -> Layers:
    store.import_units("s", demo_layers["county"], "county", commit=True)
    return Layers(store.engine, actor="tester")


def sites() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": ["S2", "S1", "S3"],
            "name": ["站二", "中心一", "其他"],
            "kind": ["station", "centre", "other"],
            "hours": ["08:30-17:30", None, ""],
            "unit_code": ["150622001001", None, None],
        },
        geometry=[shapely.Point(111.21, 39.93), shapely.Point(111.2, 39.9), shapely.Point(111.3, 39.8)],
        crs=4326,
    )


def roads() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["r1", "r2"], "kind": ["arterial", "path"], "name": ["主街", None]},
        geometry=[
            shapely.LineString([(111.2, 39.9), (111.21, 39.91)]),
            shapely.MultiLineString([[(111.21, 39.91), (111.22, 39.9)]]),  # one part: stored as a line
        ],
        crs=4326,
    )


def test_buildings_round_trip_in_id_order(layers, buildings):
    report = layers.write("s", "buildings", buildings)
    assert report == {
        "set": "s",
        "kind": "buildings",
        "rows": len(buildings),
        "replaced": 0,
        "committed": True,
    }
    back = layers.read("s", "buildings")
    assert list(back.columns) == [
        "id",
        "microgrid_code",
        "name",
        "households",
        "population",
        "floors",
        "geometry",
    ]
    assert back.crs.to_epsg() == 4326 and list(back["id"]) == sorted(buildings["id"])
    want = buildings.set_index("id").loc[back["id"]]
    assert list(back["households"]) == list(want["households"]) and str(back["households"].dtype) == "Int64"
    assert list(back["name"]) == list(want["name"])
    assert shapely.equals_exact(back.geometry.to_numpy(), want.geometry.to_numpy(), tolerance=1e-9).all()


def test_sites_and_roads_round_trip(layers):
    layers.write("s", "sites", sites())
    back = layers.read("s", "sites")
    assert list(back.columns) == ["id", "name", "kind", "hours", "unit_code", "geometry"]
    assert list(back["id"]) == ["S1", "S2", "S3"]
    assert back["hours"].isna().tolist() == [True, False, True] and back["hours"][1] == "08:30-17:30"
    layers.write("s", "roads", roads())
    lines = layers.read("s", "roads")
    assert list(lines.columns) == ["id", "kind", "name", "geometry"]
    assert set(lines.geometry.geom_type) == {"LineString"} and lines["name"].isna().tolist() == [False, True]
    assert layers.counts("s") == {"buildings": 0, "sites": 3, "roads": 2}


def test_a_write_replaces_the_kind_bumps_the_revision_and_audits_counts(layers, buildings, store):
    layers.write("s", "buildings", buildings)
    layers.write("s", "sites", sites())
    revision = store.revision("s")
    report = layers.write("s", "buildings", buildings.head(5))
    assert report["replaced"] == len(buildings) and report["rows"] == 5
    assert len(layers.read("s", "buildings")) == 5 and len(layers.read("s", "sites")) == 3  # other kinds kept
    assert store.revision("s") == revision + 1
    line = store.audit("s")[-1]
    assert line["action"] == "write_layer" and line["actor"] == "tester"
    assert line["detail"] == {"kind": "buildings", "rows": 5, "replaced": len(buildings)}  # counts only


def test_a_dry_run_writes_nothing(layers, buildings, store):
    revision, lines = store.revision("s"), len(store.audit("s"))
    report = layers.write("s", "buildings", buildings, commit=False)
    assert report["committed"] is False and report["rows"] == len(buildings)
    assert layers.read("s", "buildings").empty and store.revision("s") == revision
    assert len(store.audit("s")) == lines


def test_a_stale_revision_is_refused(layers, store):
    with pytest.raises(VersionConflict):
        layers.write("s", "sites", sites(), expect_revision=store.revision("s") - 1)
    layers.write("s", "sites", sites(), expect_revision=store.revision("s"))


def broken(kind, frame, change):
    frame = frame.copy()
    change(frame)
    return kind, frame


@pytest.mark.parametrize(
    ("case", "error", "row", "field"),
    [
        ("line among buildings", InvalidGeometry, 2, "geometry"),
        ("empty geometry", InvalidGeometry, 1, "geometry"),
        ("infinite coordinate", InvalidCoordinates, 3, "geometry"),
        ("latitude out of range", InvalidCoordinates, 2, "geometry"),
        ("repeated id", GeoGridError, 3, "id"),
        ("blank id", MissingColumn, 2, "id"),
        ("households not a number", GeoGridError, 1, "households"),
        ("negative households", GeoGridError, 2, "households"),
        ("unknown site kind", GeoGridError, 2, "kind"),
        ("point among roads", InvalidGeometry, 1, "geometry"),
    ],
)
def test_bad_rows_name_feature_and_field(layers, buildings, case, error, row, field):
    b = buildings.head(4).reset_index(drop=True)
    kind, frame = {
        "line among buildings": lambda: broken(
            "buildings",
            b,
            lambda f: f.__setitem__(
                "geometry", [*f.geometry[:1], shapely.LineString([(0, 0), (1, 1)]), *f.geometry[2:]]
            ),
        ),
        "empty geometry": lambda: broken(
            "buildings", b, lambda f: f.__setitem__("geometry", [shapely.Point(), *f.geometry[1:]])
        ),
        "infinite coordinate": lambda: broken(
            "buildings",
            b,
            lambda f: f.__setitem__("geometry", [*f.geometry[:2], shapely.Point(math.inf, 1), f.geometry[3]]),
        ),
        "latitude out of range": lambda: broken(
            "buildings",
            b,
            lambda f: f.__setitem__("geometry", [f.geometry[0], shapely.Point(111, 95), *f.geometry[2:]]),
        ),
        "repeated id": lambda: broken(
            "buildings", b, lambda f: f.__setitem__("id", [*f["id"][:2], f["id"][0], f["id"][3]])
        ),
        "blank id": lambda: broken(
            "buildings", b, lambda f: f.__setitem__("id", [f["id"][0], " ", *f["id"][2:]])
        ),
        "households not a number": lambda: broken(
            "buildings",
            b,
            lambda f: f.__setitem__("households", ["many", *f["households"][1:].astype(object)]),
        ),
        "negative households": lambda: broken(
            "buildings", b, lambda f: f.__setitem__("households", [1, -3, 2, 2])
        ),
        "unknown site kind": lambda: broken(
            "sites", sites(), lambda f: f.__setitem__("kind", ["centre", "mall", "other"])
        ),
        "point among roads": lambda: broken(
            "roads", roads(), lambda f: f.__setitem__("geometry", [shapely.Point(111, 39), f.geometry[1]])
        ),
    }[case]()
    with pytest.raises(error) as caught:
        layers.write("s", kind, frame)
    assert caught.value.where["row"] == row and caught.value.where["field"] == field
    assert f"feature {row}" in caught.value.detail
    assert layers.counts("s")[kind] == 0  # nothing written


def test_missing_column_unknown_kind_and_unknown_set(layers, buildings):
    with pytest.raises(MissingColumn, match="households"):
        layers.write("s", "buildings", buildings.drop(columns="households"))
    with pytest.raises(NotFound, match="buildings, sites, roads"):
        layers.write("s", "parks", buildings)
    with pytest.raises(NotFound):
        layers.write("nowhere", "buildings", buildings)
    with pytest.raises(NotFound):
        layers.read("nowhere", "sites")


def test_a_frame_in_another_crs_is_stored_in_wgs84(layers):
    projected = sites().to_crs(32649)
    layers.write("s", "sites", projected)
    back = layers.read("s", "sites")
    assert back.geometry.iloc[0].distance(shapely.Point(111.2, 39.9)) < 1e-9


def test_deleting_the_set_removes_its_layers(layers, buildings, store):
    layers.write("s", "buildings", buildings.head(3))
    empty_store(store.engine)  # deletes the boundary sets: layers go with them (ON DELETE CASCADE)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM building")).scalar() == 0


def test_cli_layers_import_is_a_dry_run_until_commit_and_list_counts(layers, buildings, tmp_path):
    runner = CliRunner()
    url = layers.engine.url.render_as_string(hide_password=False)

    def geogrid(*args: str):
        return runner.invoke(
            app, ["--database-url", url, "--actor", "planner-li", *args], env={"COLUMNS": "200"}
        )

    path = tmp_path / "buildings.geojson"
    buildings.head(50).to_file(path)
    dry = geogrid("layers", "import", "buildings", str(path), "--set", "s")
    assert (
        dry.exit_code == 0
        and "Would write 50 buildings" in dry.output
        and "Nothing was written" in dry.output
    )
    assert layers.counts("s")["buildings"] == 0
    done = geogrid("layers", "import", "buildings", str(path), "--set", "s", "--commit")
    assert done.exit_code == 0 and "Wrote 50 buildings to 's' (replacing 0)" in done.output
    roads().to_file(tmp_path / "roads.gpkg")
    assert (
        geogrid("layers", "import", "roads", str(tmp_path / "roads.gpkg"), "--set", "s", "--commit").exit_code
        == 0
    )
    listed = geogrid("layers", "list", "--set", "s")
    assert (
        listed.exit_code == 0
        and "buildings │       50" in listed.output
        and "roads     │        2" in listed.output
    )
    assert geogrid("layers", "import", "parks", str(path), "--set", "s").exit_code == 2
    assert layers.read("s", "buildings")["id"].tolist() == sorted(buildings.head(50)["id"])
