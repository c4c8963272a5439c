"""The index built from a published version (both databases), the PostGIS SQL path, and geogrid assign."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import shapely
from typer.testing import CliRunner

from geogrid.cli import app
from geogrid.index import GridIndex
from tests.conftest import empty_store

V1 = dt.date(2026, 1, 1)


def publish_demo(store, demo_layers, levels=("grids", "microgrids")):
    names = {
        "county": "county",
        "streets": "street",
        "communities": "community",
        "grids": "grid",
        "microgrids": "microgrid",
    }
    for name in levels:
        store.import_units("demo", demo_layers[name], names[name], commit=True)
    return store.publish("demo", V1)


def test_index_from_a_version_and_its_cache(store, demo_layers, tmp_path):
    publish_demo(store, demo_layers)
    index = GridIndex.from_version(store, "demo", dt.date(2026, 5, 1), cache_dir=tmp_path)
    assert index.meta["version"] == 1 and index.level == "microgrid" and list(index.parents) == ["grid"]
    cached = list(tmp_path.glob("demo-v1-*.npz"))
    assert len(cached) == 1
    again = GridIndex.from_version(store, "demo", cache_dir=tmp_path)
    x, y = demo_layers["microgrids"].geometry.iloc[5].representative_point().coords[0]
    assert again.lookup(x, y).code == index.lookup(x, y).code == demo_layers["microgrids"]["code"].iloc[5]
    assert again.lookup(x, y).parents["grid"].code == demo_layers["microgrids"]["parent_code"].iloc[5]


def test_postgis_function_agrees_with_the_index_on_a_million_points(postgis_engine, demo_layers):
    store = empty_store(postgis_engine)
    publish_demo(store, demo_layers, levels=("microgrids",))
    index = GridIndex.from_version(store, "demo")
    geoms = index.geoms
    vertices = shapely.get_coordinates(geoms)
    rng = np.random.default_rng(11)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    n = 1_000_000 - len(vertices)
    xs = np.concatenate([rng.uniform(x0 - 0.01, x1 + 0.01, n), vertices[:, 0]])
    ys = np.concatenate([rng.uniform(y0 - 0.01, y1 + 0.01, n), vertices[:, 1]])
    expected = index.assign(xs, ys).code
    raw = postgis_engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("CREATE TEMP TABLE pts (id int, lon float8, lat float8)")
        with cur.copy("COPY pts (id, lon, lat) FROM STDIN") as copy:
            for row in zip(range(len(xs)), xs.tolist(), ys.tolist(), strict=True):
                copy.write_row(row)
        cur.execute(
            "SELECT coalesce(geogrid_locate('demo', lon, lat, '2026-06-01'), '') FROM pts ORDER BY id"
        )
        got = np.array([r[0] for r in cur.fetchall()], dtype=object)
    finally:
        raw.close()
    assert len(got) == 1_000_000
    disagree = np.flatnonzero(got != expected)
    assert disagree.size == 0, list(
        zip(xs[disagree][:5], ys[disagree][:5], got[disagree][:5], expected[disagree][:5], strict=False)
    )
    assert (expected[n:] != "").all()  # every vertex is covered, and PostGIS chose the same unit


def test_assign_command_writes_good_rows_and_sets_bad_ones_aside(store, database_url, demo_layers, tmp_path):
    publish_demo(store, demo_layers)
    rng = np.random.default_rng(5)
    micro = demo_layers["microgrids"]
    x0, y0, x1, y1 = micro.total_bounds
    n = 30_000
    lon = rng.uniform(x0, x1, n).astype(object)
    lat = rng.uniform(y0, y1, n).astype(object)
    planted = {
        7: ("lng", "east", "lng is not a number: 'east'"),
        123: ("lat", "", "lat is missing"),
        4567: ("lng", "181.5", "lng 181.5 is outside -180..180"),
        20000: ("lat", "nan", "lat is not a finite number: 'nan'"),
    }
    table = pd.DataFrame({"id": np.arange(n), "lng": lon, "lat": lat})
    for row, (column, value, _reason) in planted.items():
        table.loc[row - 1, column] = value
    src = tmp_path / "reports.csv"
    table.to_csv(src, index=False)
    out = tmp_path / "placed.csv"
    result = CliRunner().invoke(
        app,
        [
            "--database-url",
            database_url,
            "assign",
            str(src),
            "--set",
            "demo",
            "--out",
            str(out),
            "--chunk-rows",
            "7000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "30,000 rows: 29,996 written" in result.output
    placed = pd.read_csv(out, dtype=str, keep_default_na=False)
    errors = pd.read_csv(tmp_path / "placed.errors.csv", dtype=str, keep_default_na=False)
    assert errors["row"].astype(int).tolist() == sorted(planted)
    for row, reason in zip(errors["row"].astype(int), errors["reason"], strict=True):
        assert reason.startswith(planted[row][2])
    good = table.drop(index=[r - 1 for r in planted])
    assert placed["id"].astype(int).tolist() == good["id"].tolist()
    index = GridIndex.from_frame(micro)
    expected = index.assign(good["lng"].astype(float).to_numpy(), good["lat"].astype(float).to_numpy()).code
    assert placed["unit_code"].tolist() == expected.tolist()
    assert (placed["grid_code"] == placed["unit_code"].str[:15]).all()
