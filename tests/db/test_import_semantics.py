"""What an import keeps, changes and refuses, on SpatiaLite and PostGIS (issue 10, items 2, 3, 8, 17, 22, 23).

A layer that lacks a column keeps the draft's values; the dry run says per unit what a commit changes,
and the commit writes exactly that; noise from reprojection is no change; a unit too large for the
database is refused before any work; a GCJ-02 file read as WGS-84 gets a hint; a file's ``level`` column
is data; islands do not block a publish; unknown households are not 0.
"""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from geogrid.cli import app
from geogrid.crs import transform_geometries
from geogrid.db import Store
from geogrid.errors import InvalidCode, InvalidGeometry, TooManyVertices, TopologyProblems
from geogrid.hierarchy import MAX_VERTICES
from geogrid.io import read_boundaries, write_layer

V1 = dt.date(2026, 1, 1)
STREET = "150622001"
runner = CliRunner()


@pytest.fixture
def one_street(demo_layers):
    """Street 001 of the demo county with its communities and grids."""
    return {
        name: demo_layers[name][demo_layers[name]["code"].str.startswith(STREET)].reset_index(drop=True)
        for name in ("streets", "communities", "grids")
    }


def load(store: Store, layers, set_name: str = "s", publish: bool = True) -> None:
    for name, level in (("streets", "street"), ("communities", "community"), ("grids", "grid")):
        store.import_units(set_name, layers[name], level, commit=True)
    if publish:
        store.publish(set_name, V1)


def draft_grids(store: Store, set_name: str = "s") -> gpd.GeoDataFrame:
    number = max(v.number for v in store.versions(set_name))
    return store.units(set_name, version=number, level="grid")


def test_a_kml_of_code_and_name_keeps_households(store, one_street, tmp_path):
    load(store, one_street)
    grids = store.units("s", level="grid")
    assert grids["households"].notna().all()
    write_layer(grids[["code", "name", "geometry"]], tmp_path / "grids.kml")
    frame = read_boundaries(tmp_path / "grids.kml")
    dry = store.import_units("s", frame, "grid")
    assert dry.changed == [] and dry.changes == [] and len(dry.unchanged) == len(grids)
    assert dry.kept == ["households", "population"] and dry.summary()["kept"] == dry.kept
    done = store.import_units("s", frame, "grid", commit=True)
    assert done.changed == dry.changed and done.committed
    after = draft_grids(store)
    assert after["households"].tolist() == grids["households"].tolist()
    assert after["population"].tolist() == grids["population"].tolist()
    stray = {"extrude", "id", "tessellate", "visibility", "altitudeMode", "drawOrder"}
    assert not any(stray & set(a) for a in after["attributes"]), after["attributes"].iloc[0]
    assert store.diff("s", 1, 2)["grid"]["changed"] == []


def test_the_dry_run_says_what_a_commit_changes_and_drops(store, one_street):
    load(store, one_street)
    grids = store.units("s", level="grid")
    frame = grids[["code", "name", "households", "geometry"]].copy()
    a, b, c = frame["code"].iloc[:3]
    frame["households"] = frame["households"].astype(object)
    frame.loc[0, "households"] = None  # a blank cell in a column the file has: dropped, and said so
    frame.loc[1, "households"] = int(grids["households"].iloc[1]) + 7
    frame.loc[2, "name"] = "新名字"
    frame["owner"] = "张三"  # a new attribute for every unit
    dry = store.import_units("s", frame, "grid")
    by_code = {change["code"]: change for change in dry.changes}
    assert dry.changed == [change["code"] for change in dry.changes] and len(dry.changed) == len(grids)
    old = {code: int(h) for code, h in zip(grids["code"], grids["households"], strict=True)}
    assert by_code[a]["attributes"]["households"] == {"old": old[a], "new": None}
    assert by_code[a]["dropped"] == ["households"]
    assert by_code[b]["attributes"]["households"] == {"old": old[b], "new": old[b] + 7}
    assert by_code[c]["name"] == {"old": grids["name"].iloc[2], "new": "新名字"}
    assert by_code[c]["attributes"] == {"owner": {"old": None, "new": "张三"}}
    assert all("geometry" not in change for change in dry.changes)
    assert dry.kept == ["population"] and dry.summary()["dropped"] == 1
    json.dumps(dry.summary(), ensure_ascii=False)  # the API returns it as it is
    done = store.import_units("s", frame, "grid", commit=True)
    assert done.changes == dry.changes
    after = draft_grids(store).set_index("code")
    assert pd.isna(after.loc[a, "households"]) and after.loc[b, "households"] == old[b] + 7
    assert after.loc[c, "name"] == "新名字" and after.loc[c, "attributes"] == {"owner": "张三"}
    assert after["population"].tolist() == grids["population"].tolist()
    detail = store.audit("s")[-1]["detail"]  # the audit log keeps counts, not every unit's detail
    assert "changes" not in detail and detail["changed"] == len(grids) and detail["dropped"] == 1


def test_a_moved_vertex_is_reported_in_metres(store, one_street):
    load(store, one_street)
    grids = store.units("s", level="grid")
    code = grids["code"].iloc[0]
    poly = shapely.get_geometry(grids.geometry.iloc[0], 0)
    xy = shapely.get_coordinates(poly.exterior)
    xy[0] += (5 / 85_000, 0)  # ~5 m east at 39.85°N (the ring closes on the same vertex)
    xy[-1] = xy[0]
    moved = shapely.MultiPolygon([shapely.Polygon(xy, list(poly.interiors))])
    frame = grids.drop(columns="attributes").copy()
    frame.loc[0, "geometry"] = moved
    dry = store.import_units("s", frame, "grid")
    assert dry.changed == [code]
    geometry = dry.changes[0]["geometry"]
    assert 4.0 < geometry["shift_m"] < 6.0 and geometry["area_m2"] > 0


def test_export_through_epsg_4546_and_back_is_no_change(store, one_street, tmp_path):
    load(store, one_street)
    grids = store.units("s", level="grid")
    url = store.engine.url.render_as_string(hide_password=False)
    out = tmp_path / "grids_4546.geojson"
    args = ["--database-url", url, "export", str(out), "--set", "s", "--level", "grid", "--crs", "EPSG:4546"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = read_boundaries(out)
    differs = ~shapely.equals_exact(frame.geometry.to_numpy(), grids.geometry.to_numpy(), 0.0)
    assert differs.any()  # the round trip does move vertices, by floating-point noise
    dry = store.import_units("s", frame, "grid")
    assert dry.changed == [] and len(dry.unchanged) == len(grids), dry.changes[:3]
    store.import_units("s", frame, "grid", commit=True)
    after = draft_grids(store)  # noise keeps the draft's geometry bit for bit
    assert shapely.equals_exact(after.geometry.to_numpy(), grids.geometry.to_numpy(), 0.0).all()


def test_the_shipped_gcj02_grids_with_crs_gcj02_are_no_change(store, one_street, demo_dir):
    load(store, one_street)
    frame = read_boundaries(demo_dir / "grids_gcj02.geojson", crs="gcj02")
    frame = frame[frame["code"].str.startswith(STREET)]
    dry = store.import_units("s", frame, "grid")
    assert dry.changed == [] and len(dry.unchanged) == len(one_street["grids"])
    assert not any("--crs" in w for w in dry.warnings)


@pytest.mark.parametrize("datum", ["gcj02", "bd09"])
def test_a_layer_that_fits_only_after_the_datum_correction_gets_a_hint(store, one_street, demo_dir, datum):
    load(store, one_street)
    grids = one_street["grids"]
    if datum == "gcj02":
        frame = read_boundaries(demo_dir / "grids_gcj02.geojson")  # GCJ-02, labelled WGS-84
        frame = frame[frame["code"].str.startswith(STREET)]
    else:
        shifted = transform_geometries(grids.geometry.to_numpy(), "wgs84", "bd09")
        frame = grids.set_geometry(shifted, crs=4326)
        frame.attrs["source_crs"] = "wgs84"
    dry = store.import_units("s", frame, "grid")
    outside = [w for w in dry.warnings if "lies outside its parent" in w]
    assert len(outside) > len(grids) / 2
    assert f"import it again with --crs {datum}" in dry.warnings[0], dry.warnings[:2]
    # read as what it is, it fits, and no hint is given
    fixed = grids if datum == "bd09" else read_boundaries(demo_dir / "grids_gcj02.geojson", crs="gcj02")
    fixed = fixed[fixed["code"].str.startswith(STREET)]
    assert not [w for w in store.import_units("s", fixed, "grid").warnings if "--crs" in w]


def test_a_layer_said_to_be_gcj02_gets_no_hint(store, one_street):
    load(store, one_street)
    frame = one_street["grids"].copy()
    frame["geometry"] = [shapely.affinity.translate(g, 0.003, 0.0) for g in frame.geometry]
    frame.attrs["source_crs"] = "gcj02"  # the user said what it is: a hint would be noise
    assert not [w for w in store.import_units("s", frame, "grid").warnings if "--crs" in w]


def ring(n: int, lon: float = 111.2, lat: float = 39.85, r: float = 0.001) -> shapely.Polygon:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return shapely.Polygon(np.c_[lon + r * np.cos(t), lat + r * np.sin(t)])


@pytest.mark.parametrize("commit", [False, True])
def test_a_unit_over_the_vertex_limit_is_refused_naming_row_and_code(store, commit):
    frame = gpd.GeoDataFrame(
        {"code": ["150622001001001", "150622001001002"], "name": ["a", "b"]},
        geometry=[ring(10), ring(MAX_VERTICES, lon=111.21)],  # a ring of n points has n + 1 vertices
        crs=4326,
    )
    with pytest.raises(TooManyVertices, match=r"row 2: unit 150622001001002 has 100,001 vertices") as e:
        store.import_units("big", frame, "grid", commit=commit)
    assert e.value.status == 422 and e.value.where["row"] == 2 and e.value.where["code"] == "150622001001002"
    assert store.sets() == []


def test_a_unit_at_the_vertex_limit_is_stored_whole(store):
    """At the limit the geometry still reaches the database (SpatiaLite's parser fails near 400,000)."""
    big = ring(MAX_VERTICES - 1)
    assert shapely.get_num_coordinates(big) == MAX_VERTICES
    frame = gpd.GeoDataFrame({"code": ["150622001001001"], "name": ["a"]}, geometry=[big], crs=4326)
    store.import_units("big", frame, "grid", commit=True)
    back = store.units("big", version=1)
    assert shapely.get_num_coordinates(back.geometry.iloc[0]) == MAX_VERTICES
    assert shapely.equals_exact(back.geometry.iloc[0], shapely.MultiPolygon([big]), 0.0)


def test_a_files_level_column_is_data_and_the_option_wins(store, tmp_path):
    county = shapely.box(121.4, 31.1, 121.6, 31.3)
    path = tmp_path / "districts.geojson"
    gpd.GeoDataFrame(
        {"adcode": ["310115"], "district": ["浦东新区"], "level": ["区县"]}, geometry=[county], crs=4326
    ).to_file(path)
    url = store.engine.url.render_as_string(hide_password=False)
    args = ["--database-url", url, "import", str(path), "--set", "sh", "--level", "county"]
    result = runner.invoke(app, [*args, "--code-col", "adcode", "--name-col", "district", "--commit"])
    assert result.exit_code == 0, result.output
    units = store.units("sh", version=1)
    assert units["level"].tolist() == ["county"] and units["name"].tolist() == ["浦东新区"]
    assert units["attributes"].iloc[0] == {"level": "区县"}


def test_a_files_level_column_naming_the_level_is_not_an_attribute(store, one_street):
    streets = one_street["streets"].assign(level="street")
    store.import_units("s", streets, "street", commit=True)
    assert store.units("s", version=1)["attributes"].tolist() == [{}]


def test_islands_are_reported_but_do_not_block_a_publish(store):
    county = shapely.MultiPolygon(
        [shapely.box(111.2, 39.85, 111.22, 39.86), shapely.box(111.23, 39.85, 111.24, 39.86)]
    )
    streets = [
        shapely.MultiPolygon(
            [shapely.box(111.2, 39.85, 111.21, 39.86), shapely.box(111.23, 39.85, 111.24, 39.86)]
        ),
        shapely.box(111.21, 39.85, 111.22, 39.86),
    ]
    store.import_units(
        "isl",
        gpd.GeoDataFrame({"code": ["150622"], "name": ["县"]}, geometry=[county], crs=4326),
        "county",
        commit=True,
    )
    frame = gpd.GeoDataFrame(
        {"code": ["150622001", "150622002"], "name": ["岛", "陆"]}, geometry=streets, crs=4326
    )
    store.import_units("isl", frame, "street", commit=True)
    with pytest.raises(TopologyProblems, match="multipart"):
        store.publish("isl", V1, allow_multipart=False)
    version = store.publish("isl", V1)
    assert version.status == "published"
    topology = store.audit("isl")[-1]["detail"]["topology"]
    assert topology["county"]["multipart"] == 1 and topology["street"]["multipart"] == 1
    assert store.audit("isl")[-1]["detail"]["forced"] is None


def test_info_shows_unknown_households_as_unknown_not_zero(store):
    frame = gpd.GeoDataFrame(
        {"code": ["150622"], "name": ["县"]}, geometry=[shapely.box(111.2, 39.85, 111.22, 39.86)], crs=4326
    )
    store.import_units("nh", frame, "county", commit=True)
    store.publish("nh", V1)
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["--database-url", url, "info", "--set", "nh", "--at", "2026-02-01"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "county" in line)
    assert "—" in row and " 0 " not in row, result.output


def test_the_cli_prints_what_changed(store, one_street, tmp_path):
    load(store, one_street)
    grids = store.units("s", level="grid")
    frame = grids[["code", "name", "households", "geometry"]].copy()
    frame.loc[0, "households"] = int(grids["households"].iloc[0]) + 1
    url = store.engine.url.render_as_string(hide_password=False)
    path = tmp_path / "g.geojson"
    frame.to_file(path)
    result = runner.invoke(app, ["--database-url", url, "import", str(path), "--set", "s", "--level", "grid"])
    assert result.exit_code == 0, result.output
    old = int(grids["households"].iloc[0])
    assert f"~ {grids['code'].iloc[0]} households {old} → {old + 1}" in result.output
    assert "kept from the draft" in result.output and "population" in result.output


def test_the_upload_route_returns_the_detail_and_refuses_too_many_vertices(store, one_street, tmp_path):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from geogrid.settings import Settings

    load(store, one_street)
    settings = Settings(
        database_url=store.engine.url.render_as_string(hide_password=False),
        cache_dir=str(tmp_path / "cache"),
        default_set="s",
        environment="test",
        admin_key="test-admin-key-0123456789abcdef",
        rate_limit_per_minute=0,
    )
    headers = {"Authorization": "Bearer test-admin-key-0123456789abcdef"}
    grids = store.units("s", level="grid")[["code", "name", "geometry"]]
    with TestClient(create_app(settings)) as client:
        files = {"file": ("grids.geojson", grids.to_json(drop_id=True).encode(), "application/geo+json")}
        body = client.post("/v1/sets/s/draft/grid", files=files, headers=headers).json()
        assert (
            body["changes"][:1] == []
            and body["changed"] == []
            and body["kept"] == ["households", "population"]
        )
        big = grids.copy()
        big.loc[1, "geometry"] = shapely.MultiPolygon([ring(MAX_VERTICES, lon=111.2, lat=39.85)])
        files = {"file": ("grids.geojson", big.to_json(drop_id=True).encode(), "application/geo+json")}
        headers["If-Match"] = client.get("/v1/sets/s").headers["ETag"]
        refused = client.post(
            "/v1/sets/s/draft/grid", files=files, headers=headers, params={"commit": "true"}
        )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["row"] == 2 and refused.json()["code"] == grids["code"].iloc[1]


def test_an_arcgis_shapefile_with_upper_case_counts_changes_nothing(store, one_street, tmp_path):
    """HOUSEHOLDS and POPULATION are the unit's counts: read, neither dropped nor kept as attributes."""
    load(store, one_street)
    grids = store.units("s", level="grid")
    upper = grids[["code", "name", "households", "population", "geometry"]].rename(
        columns={"code": "CODE", "name": "NAME", "households": "HOUSEHOLDS", "population": "POPULATION"}
    )
    write_layer(upper, tmp_path / "grids.shp")
    frame = read_boundaries(tmp_path / "grids.shp")
    dry = store.import_units("s", frame, "grid")
    assert dry.changed == [] and dry.kept == [] and len(dry.unchanged) == len(grids), dry.changes[:2]
    store.import_units("s", frame, "grid", commit=True)
    after = draft_grids(store)
    assert after["households"].tolist() == grids["households"].tolist()
    assert not any(a for a in after["attributes"]), after["attributes"].iloc[0]


def test_a_geojson_with_feature_ids_reimports_as_no_change(store, one_street, tmp_path):
    """Issue 10 item 2: the ids GeoGrid's own /units GeoJSON gives its features are no attribute."""
    from api.boundaries import to_geojson

    load(store, one_street)
    grids = store.units("s", level="grid")
    path = tmp_path / "grids.geojson"
    path.write_text(to_geojson(grids))  # every feature's "id" is its code
    dry = store.import_units("s", read_boundaries(path), "grid")
    assert dry.changed == [] and len(dry.unchanged) == len(grids), dry.changes[:2]
    path.write_text(grids.drop(columns="attributes").to_json())  # geopandas: "id": "0", "1" ...
    done = store.import_units("s", read_boundaries(path), "grid", commit=True)
    assert done.changed == [] and not any("id" in a for a in draft_grids(store)["attributes"])


def test_a_redrawn_outline_on_the_same_vertices_is_written(store):
    """A notch moved to the other side, no vertex moved: the dry run calls it a change (issue 10 item 3),
    and the commit writes the file's outline, not the draft's."""
    x, y, d = 111.2, 39.85, 0.001
    top = shapely.Polygon([(x, y), (x + d, y), (x + d, y + d), (x + d / 2, y + d / 2), (x, y + d)])
    bottom = shapely.Polygon([(x, y), (x + d / 2, y + d / 2), (x + d, y), (x + d, y + d), (x, y + d)])

    def street(geom):
        return gpd.GeoDataFrame({"code": ["150622001"], "name": ["街"]}, geometry=[geom], crs=4326)

    store.import_units("n", street(top), "street", commit=True)
    dry = store.import_units("n", street(bottom), "street")
    assert dry.changed == ["150622001"] and dry.changes[0]["geometry"]["area_m2"] > 1_000
    store.import_units("n", street(bottom), "street", commit=True)
    assert shapely.equals(store.units("n", version=1).geometry.iloc[0], bottom)


@pytest.mark.parametrize(
    ("wkt", "fault"),
    [
        ("POLYGON((111.2 39.85, 111.21 39.85, 111.2 39.85))", "fewer than four positions"),
        ("POLYGON((111.2 39.85, Infinity 39.85, 111.21 39.86, 111.2 39.85))", "no longitude/latitude"),
        ("POLYGON((111.2 39.85, NaN 39.85, 111.21 39.86, 111.2 39.85))", "no longitude/latitude"),
        ("POLYGON((111.2 39.85, 1e300 39.85, 111.21 39.86, 111.2 39.85))", "no longitude/latitude"),
    ],
)
@pytest.mark.parametrize("commit", [False, True])
def test_a_geometry_no_database_stores_is_refused_in_the_dry_run_too(store, wkt, fault, commit):
    """Found by tests/api/test_upload_fuzz.py: SpatiaLite wrote these as NULL, failing the commit only."""
    geom = shapely.from_wkt(wkt.replace("Infinity", "inf").replace("NaN", "nan"))
    ok = shapely.box(111.3, 39.85, 111.31, 39.86)
    frame = gpd.GeoDataFrame(
        {"code": ["150622001", "150622002"], "name": ["a", "b"]}, geometry=[ok, geom], crs=4326
    )
    with pytest.raises(InvalidGeometry, match=fault) as e:
        store.import_units("bad", frame, "street", commit=commit)
    assert e.value.where["row"] == 2 and e.value.where["code"] == "150622002" and store.sets() == []


def test_the_cli_import_honours_the_configured_archive_limit(store, one_street, tmp_path):
    """GEOGRID_MAX_UNPACKED_MB holds for `geogrid import` as for an upload."""
    path = write_layer(one_street["grids"], tmp_path / "grids.shp.zip")
    url = store.engine.url.render_as_string(hide_password=False)
    args = ["--database-url", url, "import", str(path), "--set", "s", "--level", "grid"]
    refused = runner.invoke(app, args, env={"GEOGRID_MAX_UNPACKED_MB": "0.001"})
    assert refused.exit_code != 0 and "GEOGRID_MAX_UNPACKED_MB" in str(refused.exception)
    assert runner.invoke(app, args, env={"GEOGRID_MAX_UNPACKED_MB": "50"}).exit_code == 0


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("name", "a\x00b", "NUL character"),
        ("name", "网" * 201, "201 characters"),
        ("households", 2**31, "from 0 to 2,147,483,647"),
        ("population", 10**20, "from 0 to 2,147,483,647"),
    ],
)
@pytest.mark.parametrize("commit", [False, True])
def test_what_postgresql_cannot_store_is_refused_on_both_databases(store, column, value, message, commit):
    """A dry run that passes is a commit that passes: PostgreSQL refused these with a 500 on commit."""
    frame = gpd.GeoDataFrame(
        {"code": ["150622001", "150622002"], "name": ["a", "b"], "households": [1, 2], "population": [3, 4]},
        geometry=[shapely.box(111.2, 39.85, 111.21, 39.86), shapely.box(111.21, 39.85, 111.22, 39.86)],
        crs=4326,
    ).astype({column: object})
    frame.loc[1, column] = value
    with pytest.raises(InvalidCode, match=message) as e:
        store.import_units("pg", frame, "street", commit=commit)
    assert e.value.where["row"] == 2 and e.value.where["field"] == column and store.sets() == []


def test_the_longest_name_and_largest_count_are_stored(store):
    frame = gpd.GeoDataFrame(
        {"code": ["150622001"], "name": ["网" * 200], "households": [2**31 - 1], "note": ["x\x00y"]},
        geometry=[shapely.box(111.2, 39.85, 111.21, 39.86)],
        crs=4326,
    )
    store.import_units("pg", frame, "street", commit=True)
    back = store.units("pg", version=1).iloc[0]
    assert back["name"] == "网" * 200 and back["households"] == 2**31 - 1
    assert back["attributes"] == {"note": "x\x00y"}  # JSON keeps a NUL (escaped) on both databases


def test_a_frame_from_store_units_reimports_as_no_change(store, one_street):
    """Python callers hand back what Store.units gave them: its attributes are not nested as text."""
    load(store, one_street)
    grids = store.units("s", level="grid")
    grids["attributes"] = [{"owner": f"员{i}"} for i in range(len(grids))]
    store.import_units("s", grids, "grid", commit=True)
    again = draft_grids(store)
    assert again["attributes"].tolist() == grids["attributes"].tolist()
    dry = store.import_units("s", again, "grid")
    assert dry.changed == [] and len(dry.unchanged) == len(grids), dry.changes[:2]
