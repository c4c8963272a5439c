"""Uploads of zipped shapefiles over HTTP on both databases: a zip bomb gets 413 before anything unpacks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geogrid.io import write_layer
from geogrid.settings import DEMO_ADMIN_KEY, Settings
from tests.unit.test_formats import make_bomb

ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}


@pytest.fixture
def client(store, demo_layers, tmp_path):
    store.import_units("s", demo_layers["streets"], "street", commit=True)
    settings = Settings(
        database_url=store.engine.url.render_as_string(hide_password=False),
        cache_dir=str(tmp_path / "cache"),
        environment="local",
        rate_limit_per_minute=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def post(client, path, name):
    with open(path, "rb") as body:
        files = {"file": (name, body, "application/zip")}
        return client.post("/v1/sets/s/draft/street", files=files, headers=ADMIN)


def test_a_zip_bomb_upload_is_413_problem_json(client, tmp_path):
    bomb = make_bomb(tmp_path / "bomb.zip", 300 << 20)  # 300 MB of .dbf in about 300 kB
    response = post(client, bomb, "streets.zip")
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/archive-too-large")
    assert "times its packed size" in problem["detail"] and problem["field"] == "bomb.dbf"
    assert str(tmp_path) not in response.text


def test_an_ordinary_zipped_shapefile_upload_is_read(client, demo_layers, tmp_path):
    path = write_layer(demo_layers["streets"], tmp_path / "streets.shp.zip")
    response = post(client, path, "streets.shp.zip")
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == len(demo_layers["streets"])
