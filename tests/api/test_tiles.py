"""GET /tiles/{set}/{level}/{z}/{x}/{y}.mvt on both databases: read back by GDAL's MVT driver, revalidated
by ETag, empty and impossible tiles answered as such."""

from __future__ import annotations

import pyogrio
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geogrid.crs import GCJ02, WGS84, transform_geometries
from geogrid.settings import Settings
from geogrid.tiles import MEDIA_TYPE, tiles_over
from tests.conftest import BACKENDS, migrated_engine, problem, published_demo

ZOOM = 14


@pytest.fixture(scope="module", params=BACKENDS)
def client(request, demo_layers, tmp_path_factory):
    with migrated_engine(request.param, tmp_path_factory) as engine:
        published_demo(engine, demo_layers)
        settings = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            cache_dir=str(tmp_path_factory.mktemp("cache")),
            default_set="demo",
            environment="test",
            rate_limit_per_minute=0,
        )
        with TestClient(create_app(settings)) as test_client:
            yield test_client


def test_gdal_reads_a_served_tile_and_gets_the_unit_codes(client, demo_layers, tmp_path):
    micro = demo_layers["microgrids"]
    x, y = tiles_over(micro.total_bounds, ZOOM)[len(tiles_over(micro.total_bounds, ZOOM)) // 2]
    got = client.get(f"/tiles/demo/microgrid/{ZOOM}/{x}/{y}.mvt")
    assert got.status_code == 200 and got.headers["content-type"] == MEDIA_TYPE
    path = tmp_path / str(ZOOM) / str(x) / f"{y}.pbf"  # GDAL takes the tile's z/x/y from its path
    path.parent.mkdir(parents=True)
    path.write_bytes(got.content)
    frame = pyogrio.read_dataframe(path, layer="microgrid")
    assert len(frame) > 5 and set(frame["code"]) <= set(micro["code"])
    assert frame.crs.to_epsg() == 3857
    stored = micro.set_index("code").loc[frame["code"]].geometry.to_crs(3857)
    inside = frame.geometry.representative_point().within(stored.buffer(20), align=False)  # metres
    assert inside.all()  # each drawn where the store has it (orientation, y axis and scale right)


def test_a_tile_in_gcj02_lines_up_with_a_gcj02_base_map(client, demo_layers, tmp_path):
    """?crs=gcj02 (the dashboard over Amap-style tiles): every unit drawn where GCJ-02 puts it, hundreds of
    metres from its WGS-84 place, with a tag of its own."""
    micro = demo_layers["microgrids"]
    shifted = micro.set_geometry(transform_geometries(micro.geometry, WGS84, GCJ02), crs=4326)
    x, y = tiles_over(shifted.total_bounds, ZOOM)[len(tiles_over(shifted.total_bounds, ZOOM)) // 2]
    got = client.get(f"/tiles/demo/microgrid/{ZOOM}/{x}/{y}.mvt?crs=gcj02")
    assert got.status_code == 200 and got.headers["etag"].startswith('"v1.microgrid.gcj02.')
    plain = client.get(f"/tiles/demo/microgrid/{ZOOM}/{x}/{y}.mvt")
    assert plain.headers["etag"] != got.headers["etag"]
    path = tmp_path / str(ZOOM) / str(x) / f"{y}.pbf"
    path.parent.mkdir(parents=True)
    path.write_bytes(got.content)
    frame = pyogrio.read_dataframe(path, layer="microgrid")
    assert len(frame) > 5
    drawn = frame.geometry.representative_point()
    there = shifted.set_index("code").loc[frame["code"]].geometry.to_crs(3857)
    assert drawn.within(there.buffer(20), align=False).all()  # where GCJ-02 puts each unit
    wgs = micro.set_index("code").loc[frame["code"]].geometry.to_crs(3857)
    assert (
        drawn.distance(wgs.centroid, align=False) - drawn.distance(there.centroid, align=False)
    ).mean() > 100
    problem(client.get(f"/tiles/demo/microgrid/{ZOOM}/{x}/{y}.mvt?crs=bd09"), 422)


def test_a_tile_is_revalidated_by_its_etag(client, demo_layers):
    x, y = tiles_over(demo_layers["grids"].total_bounds, 12)[0]
    first = client.get(f"/tiles/demo/grid/12/{x}/{y}.mvt")
    assert first.status_code in (200, 204) and first.headers["etag"].startswith('"v1.grid.12.')
    again = client.get(f"/tiles/demo/grid/12/{x}/{y}.mvt", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content


def test_empty_and_impossible_tiles(client):
    assert client.get("/tiles/demo/microgrid/10/0/0.mvt").status_code == 204  # the county is not there
    problem(client.get("/tiles/demo/microgrid/3/8/0.mvt"), 400, "no tile 3/8/0")
    problem(client.get("/tiles/demo/parish/10/0/0.mvt"), 400, "unknown level")
    problem(client.get("/tiles/nowhere/microgrid/10/0/0.mvt"), 404)
