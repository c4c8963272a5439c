"""The geogrid command's files on both databases: assign from every input to every output format, and
read-only commands that never create a database (and name the one they looked in)."""

from __future__ import annotations

import codecs
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from typer.testing import CliRunner

from geogrid import cli
from geogrid.cli import app

runner = CliRunner()
INPUTS = ("csv", "csv-bom", "csv-gbk", "geojson", "gpkg", "shp", "parquet", "geoparquet")
OUTPUTS = ("csv", "parquet", "gpkg", "geojson", "shp")
TYPED = ("gpkg", "parquet", "geoparquet")  # inputs whose column types a Parquet output must keep


def geogrid(database_url: str, *args: str):
    return runner.invoke(app, ["--database-url", database_url, *args])


@pytest.fixture
def points(demo_layers) -> tuple[pd.DataFrame, dict[int, str]]:
    """41 points: one inside each of 40 micro-grids, one far outside; with Chinese names and a null-y count."""
    micro = demo_layers["microgrids"].iloc[::70].head(40)
    inside = micro.geometry.representative_point()
    x = np.append(inside.x.to_numpy(), 100.0)
    y = np.append(inside.y.to_numpy(), 30.0)
    n = len(x)
    table = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "name": [f"事件{i}号" for i in range(1, n + 1)],
            "count": pd.array([None if i % 3 == 0 else i for i in range(1, n + 1)], dtype="Int64"),
            "lon": x,
            "lat": y,
        }
    )
    expected = dict(zip(table["id"].tolist(), [*micro["code"].tolist(), ""], strict=True))
    return table, expected


def write_input(kind: str, table: pd.DataFrame, folder: Path) -> Path:
    """The points as a file of ``kind``; CSVs carry one extra row whose longitude is missing."""
    geo = gpd.GeoDataFrame(
        table.drop(columns=["lon", "lat"]), geometry=shapely.points(table["lon"], table["lat"]), crs=4326
    )
    if kind.startswith("csv"):
        bad = pd.DataFrame({"id": [99], "name": ["坏行"], "count": [None], "lon": [""], "lat": ["39.9"]})
        frame = pd.concat([table.astype(object), bad], ignore_index=True)
        encoding = {"csv": "utf-8", "csv-bom": "utf-8-sig", "csv-gbk": "gbk"}[kind]
        if kind == "csv-gbk":  # what Excel's plain "CSV" writes on Chinese Windows
            frame = frame.rename(columns={"lon": "经度", "lat": "纬度"})
        path = folder / f"{kind}.csv"
        frame.to_csv(path, index=False, encoding=encoding)
        return path
    if kind == "parquet":
        path = folder / "plain.parquet"
        table.to_parquet(path)
        return path
    if kind == "geoparquet":
        path = folder / "geo.parquet"
        geo.to_parquet(path)
        return path
    path = folder / f"points.{kind}"
    pyogrio.write_dataframe(geo, path, **({"encoding": "UTF-8"} if kind == "shp" else {}))
    return path


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pyogrio.read_dataframe(path)


def test_assign_from_every_input_to_every_output(database_url, points, tmp_path):
    assert geogrid(database_url, "demo", "--valid-from", "2026-01-01").exit_code == 0
    table, expected = points
    for kind in INPUTS:
        source = write_input(kind, table, tmp_path)
        for fmt in OUTPUTS:
            out = tmp_path / "out" / f"{kind}.{fmt}"
            result = geogrid(
                database_url, "assign", str(source), "--set", "demo", "--out", str(out), "--chunk-rows", "16"
            )
            assert result.exit_code == 0, (kind, fmt, result.output, result.exception)
            bad = 1 if kind.startswith("csv") else 0
            assert f"{len(table) + bad} rows: {len(table)} written" in result.output, (kind, fmt)
            back = read_output(out)
            got = dict(zip(back["id"].astype(int), back["unit_code"].fillna(""), strict=True))
            assert got == expected, (kind, fmt)
            assert sorted(back["name"]) == sorted(table["name"]), (kind, fmt)
            if fmt == "csv":  # Excel's byte-order mark survives (and a GBK file comes back as UTF-8 with it)
                assert out.read_bytes().startswith(codecs.BOM_UTF8) == (kind in ("csv-bom", "csv-gbk"))
            if fmt == "parquet" and kind in TYPED:
                schema = pq.read_schema(out)
                assert str(schema.field("count").type) in ("int32", "int64"), (kind, schema)
                assert pq.read_table(out).column("count").null_count == int(table["count"].isna().sum())
                assert str(schema.field("on_boundary").type) == "bool"
            if fmt in ("gpkg", "geojson", "shp"):
                assert pyogrio.read_info(out)["geometry_type"] == "Point"
                xy = shapely.get_coordinates(back.geometry.to_numpy())
                order = back["id"].astype(int).to_numpy() - 1
                assert np.allclose(xy, table[["lon", "lat"]].to_numpy()[order])
            errors = out.with_name(out.stem + ".errors.csv")
            assert errors.exists() == bool(bad), (kind, fmt)
            if bad:
                assert pd.read_csv(errors, encoding="utf-8-sig")["row"].tolist() == [len(table) + 1]


def test_assign_names_a_bad_encoding_and_takes_an_explicit_one(database_url, points, tmp_path):
    assert geogrid(database_url, "demo", "--valid-from", "2026-01-01").exit_code == 0
    source = write_input("csv-gbk", points[0], tmp_path)
    out = tmp_path / "o.csv"
    result = geogrid(
        database_url, "assign", str(source), "--set", "demo", "--out", str(out), "--encoding", "gbk"
    )
    assert result.exit_code == 0, result.output
    assert "经度 is missing" in pd.read_csv(out.with_name("o.errors.csv"), encoding="utf-8-sig")["reason"][0]


def run_main(monkeypatch, capsys, *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["geogrid", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    return capsys.readouterr().err


READ_ONLY = [
    ["info"],
    ["info", "--set", "demo"],
    ["versions", "--set", "demo"],
    ["export", "out.geojson", "--set", "demo"],
    ["validate", "--set", "demo"],
    ["assign", "{points}", "--set", "demo", "--out", "placed.csv"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:2]))
def test_read_only_commands_from_another_folder_create_no_database(args, tmp_path, monkeypatch, capsys):
    points = tmp_path / "points.csv"
    points.write_text("lon,lat\n111.2,39.85\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEOGRID_DATABASE_URL", raising=False)
    printed = run_main(monkeypatch, capsys, *[a.replace("{points}", str(points)) for a in args])
    where = tmp_path.resolve() / "var" / "geogrid.sqlite"
    assert printed.startswith("error: ") and f"no GeoGrid database at {where}" in printed
    assert "geogrid demo" in printed and "--database-url" in printed and "current folder" in printed
    assert not (tmp_path / "var").exists()
    # a file left empty by an earlier version is not mistaken for a database, and stays as it was
    (tmp_path / "var").mkdir()
    where.write_bytes(b"")
    printed = run_main(monkeypatch, capsys, *[a.replace("{points}", str(points)) for a in args])
    assert "holds no GeoGrid schema" in printed and str(where) in printed
    assert where.stat().st_size == 0


def test_a_missing_set_names_the_database(database_url, monkeypatch, capsys):
    printed = run_main(monkeypatch, capsys, "--database-url", database_url, "versions", "--set", "demo")
    shown = database_url.split("@")[-1] if "@" in database_url else database_url
    assert "no boundary set named 'demo' in " in printed and shown in printed


def test_validate_out_gpkg_with_no_problems_writes_a_geopackage(demo_dir, tmp_path):
    out = tmp_path / "problems.gpkg"
    result = runner.invoke(app, ["validate", str(demo_dir / "streets.geojson"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output
    assert out.read_bytes().startswith(b"SQLite format 3\x00")
    assert len(pyogrio.read_dataframe(out)) == 0


def test_repair_of_an_excel_csv_keeps_its_bom_and_db11_codes(demo_layers, tmp_path):
    grids = demo_layers["grids"].head(4).copy()
    grids.loc[grids.index[3], "code"] = grids["code"].iloc[0]  # a repeated code
    source = tmp_path / "grids.csv"
    table = pd.DataFrame({"wkt": grids.geometry.to_wkt(), "code": grids["code"], "name": grids["name"]})
    table.to_csv(source, index=False, encoding="utf-8-sig")
    out = tmp_path / "fixed.csv"
    result = runner.invoke(app, ["repair", str(source), "--out", str(out), "--crs", "wgs84"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(codecs.BOM_UTF8)
    codes = pd.read_csv(out, dtype=str, encoding="utf-8-sig")["code"].tolist()
    assert len(set(codes)) == 4 and all(c.isdigit() and len(c) == 15 for c in codes)
    changes = pd.read_csv(tmp_path / "fixed.changes.csv", dtype=str, encoding="utf-8-sig")
    renamed = changes[changes["action"] == "renamed_duplicate"]
    assert renamed["other"].tolist() == [grids["code"].iloc[0]] and renamed["code"].tolist() == [codes[3]]
