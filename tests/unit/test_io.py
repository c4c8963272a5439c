"""Reading and writing layers: every format round-trips the demo grids; every error names its place."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from geogrid import io
from geogrid.crs import gcj02_to_wgs84
from geogrid.errors import InvalidGeometry, MissingColumn, MissingCRS, UnreadableFile

FORMATS = ["geojson", "shp", "shp.zip", "gpkg", "kml", "csv"]


@pytest.fixture(scope="module")
def grids(demo_layers) -> gpd.GeoDataFrame:
    return demo_layers["grids"]


def same_geometries(a: np.ndarray, b: np.ndarray, tolerance: float = 1e-7) -> bool:
    """Equal vertex for vertex within ``tolerance`` degrees, whatever ring orientation or start."""
    return bool(np.all(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance)))


@pytest.mark.parametrize("suffix", FORMATS)
def test_each_format_round_trips_the_demo_grids(grids, tmp_path, suffix):
    path = io.write_layer(grids, tmp_path / f"grids.{suffix}")
    back = io.read_boundaries(path, crs="wgs84" if suffix == "csv" else None)
    assert back["code"].tolist() == grids["code"].tolist()
    assert back["name"].tolist() == grids["name"].tolist()
    assert set(back.geometry.geom_type) == {"MultiPolygon"}
    assert same_geometries(back.geometry.to_numpy(), grids.geometry.to_numpy())
    assert back.crs.to_epsg() == 4326


def test_export_in_gcj02_and_back(grids, tmp_path):
    path = io.write_layer(grids, tmp_path / "grids_gcj.gpkg", crs="gcj02")
    raw = pyogrio.read_dataframe(path)
    assert not same_geometries(raw.geometry.to_numpy(), grids.geometry.to_numpy(), 1e-5)  # really shifted
    back = io.read_boundaries(path, crs="gcj02")
    assert same_geometries(back.geometry.to_numpy(), grids.geometry.to_numpy(), 1e-9)


def test_gcj02_copy_of_the_demo_grids_lands_within_a_centimetre(demo_dir, grids):
    back = io.read_boundaries(demo_dir / "grids_gcj02.geojson", crs="gcj02")
    assert back["code"].tolist() == grids["code"].tolist()
    a = shapely.get_coordinates(back.geometry.to_numpy())
    b = shapely.get_coordinates(grids.geometry.to_numpy())
    assert a.shape == b.shape
    lat = np.radians(b[:, 1])
    dx = (a[:, 0] - b[:, 0]) * 111_320 * np.cos(lat)
    dy = (a[:, 1] - b[:, 1]) * 110_574
    assert np.hypot(dx, dy).max() < 0.01
    # ...and read without --crs, it would sit hundreds of metres away.
    raw = io.read_boundaries(demo_dir / "grids_gcj02.geojson")
    c = shapely.get_coordinates(raw.geometry.to_numpy())
    assert np.hypot((c[:, 0] - b[:, 0]) * 85_000, (c[:, 1] - b[:, 1]) * 110_574).min() > 100


def write_gbk_shapefile(tmp_path: Path) -> tuple[Path, list[str]]:
    names = ["薛家湾镇幸福社区第1网格", "沙圪堵镇和谐社区第2网格", "准格尔召镇龙凤社区"]
    frame = gpd.GeoDataFrame(
        {"code": ["150622001001001", "150622001001002", "150622001001003"], "name": names},
        geometry=[shapely.box(111.2 + i / 100, 39.85, 111.21 + i / 100, 39.86) for i in range(3)],
        crs=4326,
    )
    path = tmp_path / "gbk.shp"
    pyogrio.write_dataframe(frame, path, encoding="GBK")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    dbf = path.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    data[29] = 0  # no language driver id either: nothing in the file says GBK
    dbf.write_bytes(bytes(data))
    return path, names


def test_gbk_shapefile_without_cpg_keeps_chinese_names(tmp_path):
    path, names = write_gbk_shapefile(tmp_path)
    assert not path.with_suffix(".cpg").exists()
    naive = pyogrio.read_dataframe(path)
    assert naive["name"].tolist() != names  # what GDAL alone makes of it
    assert io.shapefile_encoding(path) == "GB18030"
    assert io.read_boundaries(path)["name"].tolist() == names


def test_zipped_gbk_shapefile_without_cpg(tmp_path):
    path, names = write_gbk_shapefile(tmp_path)
    archive = tmp_path / "gbk.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in tmp_path.glob("gbk.*"):
            if part.suffix != ".zip":
                z.write(part, part.name)
    assert io.read_boundaries(archive)["name"].tolist() == names


def test_utf8_shapefile_with_cpg_is_left_to_gdal(grids, tmp_path):
    path = io.write_layer(grids.head(3), tmp_path / "utf8.shp")
    assert path.with_suffix(".cpg").exists() and io.shapefile_encoding(path) is None
    assert io.read_boundaries(path)["name"].tolist() == grids["name"].head(3).tolist()


# ---- errors: each names the file, layer, row or field at fault ----------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableFile, match="no such file") as info:
        io.read_boundaries(tmp_path / "nope.geojson")
    assert info.value.where["file"].endswith("nope.geojson")


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_bytes(b"\x00\x01 this is not GeoJSON {{{")
    with pytest.raises(UnreadableFile, match=r"cannot (open|read) broken\.geojson") as info:
        io.read_boundaries(path)
    assert info.value.where["file"] == str(path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "grids.dwg"
    path.write_text("x")
    with pytest.raises(UnreadableFile, match=r"unsupported file type '\.dwg'"):
        io.read_boundaries(path)


def test_no_crs_and_none_given(grids, tmp_path):
    path = io.write_layer(grids.head(2), tmp_path / "noprj.shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(MissingCRS, match="noprj.shp declares no coordinate system; give one"):
        io.read_boundaries(path)
    assert len(io.read_boundaries(path, crs="wgs84")) == 2


def test_csv_needs_a_crs(grids, tmp_path):
    path = io.write_layer(grids.head(2), tmp_path / "grids.csv")
    with pytest.raises(MissingCRS, match="is a CSV and carries no coordinate system"):
        io.read_boundaries(path)


@pytest.mark.parametrize("column", ["code", "name"])
def test_missing_code_or_name_column(grids, tmp_path, column):
    path = io.write_layer(grids.head(2).drop(columns=[column]), tmp_path / "cols.geojson")
    with pytest.raises(MissingColumn, match=f"no '{column}' column in cols.geojson") as info:
        io.read_boundaries(path)
    assert info.value.where["field"] == column


def test_code_and_name_columns_can_be_named(grids, tmp_path):
    frame = grids.head(2).rename(columns={"code": "WGBM", "name": "WGMC"})
    path = io.write_layer(frame, tmp_path / "named.gpkg")
    back = io.read_boundaries(path, code="wgbm", name="wgmc")
    assert back["code"].tolist() == grids["code"].head(2).tolist()


def test_unparseable_wkt_names_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "code,name,wkt\n"
        '150622001001001,a,"POLYGON ((111.2 39.85, 111.21 39.85, 111.21 39.86, 111.2 39.85))"\n'
        '150622001001002,b,"POLYGON ((111.2 39.85, 111.21 oops))"\n'
    )
    with pytest.raises(InvalidGeometry, match="row 2: cannot parse 'wkt' as WKT") as info:
        io.read_boundaries(path, crs="wgs84")
    assert info.value.where["row"] == 2 and info.value.where["field"] == "wkt"


def test_missing_geometry_names_the_row(tmp_path):
    features = [
        {
            "type": "Feature",
            "properties": {"code": "150622001001001", "name": "a"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[111.2, 39.85], [111.21, 39.85], [111.21, 39.86], [111.2, 39.85]]],
            },
        },
        {"type": "Feature", "properties": {"code": "150622001001002", "name": "b"}, "geometry": None},
    ]
    path = tmp_path / "nogeom.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(InvalidGeometry, match="row 2 has no geometry") as info:
        io.read_boundaries(path)
    assert info.value.where["row"] == 2


def test_non_polygon_in_a_boundary_layer(grids, tmp_path):
    frame = grids.head(4).copy()
    frame.loc[frame.index[2], "geometry"] = shapely.Point(111.2, 39.85)
    path = io.write_layer(frame, tmp_path / "mixed.gpkg")
    with pytest.raises(
        InvalidGeometry, match="row 3 is a Point; a boundary layer needs Polygon or MultiPolygon"
    ):
        io.read_boundaries(path)


def test_several_layers_need_a_choice(grids, tmp_path):
    path = tmp_path / "two.gpkg"
    io.write_layer(grids.head(2), path, layer="grids")
    pyogrio.write_dataframe(grids.tail(2), path, layer="other", append=True)
    with pytest.raises(UnreadableFile, match="holds 2 layers"):
        io.read_boundaries(path)
    assert len(io.read_boundaries(path, layer="other")) == 2


def test_lonlat_csv_points_and_a_bad_row(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("id,lng,lat\n1,111.2,39.85\n2,111.3,north\n")
    with pytest.raises(InvalidGeometry, match="row 2: lat is not a number: 'north'") as info:
        io.read_layer(path, crs="gcj02", geometry="point")
    assert info.value.where == {"file": str(path), "row": 2, "field": "lat"}
    path.write_text("id,lng,lat\n1,111.2,39.85\n")
    points = io.read_layer(path, crs="gcj02", geometry="point")
    expected = gcj02_to_wgs84(111.2, 39.85)
    assert abs(points.geometry.x[0] - expected[0]) < 1e-12 and abs(points.geometry.y[0] - expected[1]) < 1e-12


def test_projected_file_is_normalised_to_wgs84(grids, tmp_path):
    path = io.write_layer(grids.head(5), tmp_path / "gk.shp", crs="EPSG:4546")
    assert pyogrio.read_info(path)["crs"] == "EPSG:4546"
    back = io.read_boundaries(path)
    assert back.attrs["source_crs"] == "EPSG:4546" and back.crs.to_epsg() == 4326
    assert same_geometries(back.geometry.to_numpy(), grids.head(5).geometry.to_numpy(), 1e-9)


# ---- columns a driver makes are no unit attributes (issue 10 item 2) ---------------------------------
def _feature_collection(features) -> str:
    box = shapely.geometry.mapping(shapely.box(111.2, 39.85, 111.201, 39.851))
    return json.dumps(
        {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", **f, "geometry": box} for f in features],
        }
    )


@pytest.mark.parametrize(
    ("features", "columns"),
    [
        ([{"id": "0", "properties": {"code": "150622001001001", "name": "a"}}], []),  # geopandas to_json
        ([{"id": "150622001001001", "properties": {"code": "150622001001001", "name": "a"}}], []),  # our API
        ([{"id": 7, "properties": {"code": "150622001001001", "name": "a"}}], []),  # an integer id: the FID
        ([{"properties": {"id": "mine", "code": "150622001001001", "name": "a"}}], ["id"]),  # data
        ([{"properties": {"code": "150622001001001", "name": "a", "id": "mine"}}], ["id"]),
        ([{"id": "x", "properties": {"code": "150622001001001", "name": "a", "id": "mine"}}], ["id"]),
    ],
)
def test_a_geojson_features_own_id_is_no_column_but_a_property_id_is(tmp_path, features, columns):
    path = tmp_path / "grids.geojson"
    path.write_text(_feature_collection(features))
    frame = io.read_boundaries(path)
    assert [c for c in frame.columns if c not in ("code", "name", "geometry")] == columns
    if columns:
        assert frame["id"].tolist() == ["mine"]


def test_a_geojson_features_id_is_kept_when_asked_for(tmp_path):
    path = tmp_path / "grids.geojson"
    path.write_text(_feature_collection([{"id": "150622001001001", "properties": {"name": "a"}}]))
    assert io.read_boundaries(path, code="id")["code"].tolist() == ["150622001001001"]


def test_kml_driver_fields_are_dropped_but_filled_ones_kept(grids, tmp_path):
    path = io.write_layer(grids[["code", "name", "geometry"]], tmp_path / "grids.kml")
    raw = pyogrio.read_dataframe(path)
    assert {"id", "extrude", "tessellate", "visibility", "altitudeMode", "drawOrder", "icon"} <= set(
        raw.columns
    )
    frame = io.read_boundaries(path)
    assert set(frame.columns) == {"code", "name", "geometry"}
    # a described, dated KML keeps its description and time; its Name is the name asked for
    dated = (
        grids[["code", "name", "geometry"]]
        .head(2)
        .assign(description=["东片", "西片"], begin=["2024-01-01", "2024-01-01"])
    )
    pyogrio.write_dataframe(dated.rename(columns={"name": "Name"}), tmp_path / "dated.kml", driver="LIBKML")
    back = io.read_boundaries(tmp_path / "dated.kml", name="Name")
    assert back["description"].tolist() == ["东片", "西片"] and "begin" in back.columns
    assert not {"id", "extrude", "tessellate", "timestamp", "end"} & set(back.columns)


# ---- errors name the file as the caller calls it, and cut what they echo (issue 10 item 16) ---------
def test_errors_name_the_label_not_the_path_and_cut_echoes(tmp_path):
    path = tmp_path / "upload.geojson"
    path.write_text("{not geojson")
    with pytest.raises(UnreadableFile) as e:
        io.read_boundaries(path, label="我的网格.geojson")
    assert str(tmp_path) not in str(e.value.to_problem()) and "upload.geojson" not in str(
        e.value.to_problem()
    )
    assert "我的网格.geojson" in e.value.detail and e.value.where["file"] == "我的网格.geojson"
    path.write_text(_feature_collection([{"properties": {"code": "150622001001001", "name": "a"}}]))
    with pytest.raises(MissingColumn) as e:
        io.read_boundaries(path, code="c" * 100_000, label="g.geojson")
    problem = json.dumps(e.value.to_problem())
    assert len(problem) < 1_500 and e.value.where["field"].endswith("…")


def test_a_zip_holding_a_dbf_without_its_shp_has_no_geometry(grids, tmp_path):
    """Found by tests/api/test_upload_fuzz.py: GDAL reads it as a plain table (it was a 500)."""
    io.write_layer(grids, tmp_path / "grids.shp")
    with zipfile.ZipFile(tmp_path / "grids.zip", "w") as z:
        z.write(tmp_path / "grids.dbf", "grids.dbf")
        z.write(tmp_path / "grids.prj", "grids.prj")
    with pytest.raises(InvalidGeometry, match="without geometry") as e:
        io.read_boundaries(tmp_path / "grids.zip", label="网格.zip")
    assert e.value.where["file"] == "网格.zip"
