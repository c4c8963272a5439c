"""Upload errors over HTTP on both databases: they name the file as the client sent it, never a server
temp path, cut what they echo, and follow the configured archive limits (issue 10 item 16, and the
GEOGRID_MAX_UNPACKED_MB / GEOGRID_MAX_COMPRESSION_RATIO settings)."""

from __future__ import annotations

import io as stdio
import json
import tempfile
import zipfile

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geogrid.io import write_layer
from geogrid.settings import DEMO_ADMIN_KEY, Settings
from tests.unit.test_formats import make_bomb

ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}
TEMP = tempfile.gettempdir()


def settings_for(store, tmp_path, **overrides):
    return Settings(
        database_url=store.engine.url.render_as_string(hide_password=False),
        cache_dir=str(tmp_path / "cache"),
        environment="local",
        rate_limit_per_minute=0,
        **overrides,
    )


@pytest.fixture
def client(store, demo_layers, tmp_path):
    store.import_units("s", demo_layers["streets"], "street", commit=True)
    with TestClient(create_app(settings_for(store, tmp_path))) as client:
        yield client


def post(client, name, body, level="street", **params):
    files = {"file": (name, body, "application/octet-stream")}
    return client.post(f"/v1/sets/s/draft/{level}", files=files, headers=ADMIN, params=params)


def assert_names_the_upload(response, name, status=400):
    """A problem+json that names ``name`` and no server path or temp file name."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert name in problem["detail"], problem
    assert TEMP not in response.text and "geogrid-upload-" not in response.text, problem
    assert "upload." not in response.text.replace(name, ""), problem
    if "file" in problem:
        assert problem["file"] == name
    return problem


def zipped(members: dict[str, bytes]) -> bytes:
    """A zip of ``members``, the same bytes every time: the bytes are in the test's id, and each xdist
    worker collects the ids itself (a member stamped with the clock made them differ across a second)."""
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for member, data in members.items():
            z.writestr(zipfile.ZipInfo(member, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("网格草稿.geojson", b"{not geojson"),  # malformed GeoJSON
        ("streets.zip", b"PK\x03\x04 not really a zip"),  # a bad zip
        ("streets.shp.zip", zipped({"readme.txt": b"no shapefile in here"})),  # a zip with no layer
        ("streets.gpkg", b"SQLite format 3\x00" + bytes(200)),  # an unreadable GeoPackage
        ("streets.kml", b"<kml><Document><Placemark>"),  # truncated KML
        ("streets.geojson", b""),  # an empty file
        ("streets.dwg", b"AC1027"),  # a format GeoGrid does not read
    ],
)
def test_an_unreadable_upload_is_named_as_sent(client, name, body):
    assert_names_the_upload(post(client, name, body), name)


def test_a_shapefile_without_its_sidecars_is_named_as_sent(client, demo_layers, tmp_path):
    write_layer(demo_layers["streets"], tmp_path / "streets.shp")
    response = post(client, "街道.shp", (tmp_path / "streets.shp").read_bytes())
    assert_names_the_upload(response, "街道.shp")


def test_a_missing_column_names_the_file_and_cuts_the_echo(client, demo_layers):
    body = demo_layers["streets"].to_json(drop_id=True).encode()
    response = post(client, "streets.geojson", body, code_field="x" * 20_000)
    problem = assert_names_the_upload(response, "streets.geojson")
    assert len(response.content) < 3_000 and problem["field"].endswith("…")


def test_a_long_bad_value_is_echoed_cut_once(client, demo_layers):
    frame = demo_layers["streets"].copy()
    frame.loc[0, "code"] = "1" * 100_000  # 100 kB of code
    response = post(client, "streets.geojson", frame.to_json(drop_id=True).encode())
    assert response.status_code == 400 and len(response.content) < 3_000, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["row"] == 1
    frame = demo_layers["streets"].copy()
    frame["households"] = frame["households"].astype(object)
    frame.loc[0, "households"] = "多" * 100_000
    response = post(client, "streets.geojson", frame.to_json(drop_id=True).encode())
    assert response.status_code == 400 and len(response.content) < 3_000, response.text[:500]


def test_a_long_file_name_is_cut(client):
    name = "网" * 600 + ".geojson"
    response = post(client, name, b"{not geojson")
    assert response.status_code == 400 and len(response.content) < 3_000
    assert TEMP not in response.text and response.json()["file"].endswith("…")


# ---- the configured archive limits reach uploads ---------------------------------------------------
def test_an_upload_over_the_configured_unpacked_limit_is_413(store, demo_layers, tmp_path):
    store.import_units("s", demo_layers["streets"], "street", commit=True)
    path = write_layer(demo_layers["streets"], tmp_path / "streets.shp.zip")
    unpacked = sum(m.file_size for m in zipfile.ZipFile(path).infolist())
    assert unpacked > 20_000  # over the limit below, far under the built-in 1000 MB
    with TestClient(create_app(settings_for(store, tmp_path, max_unpacked_mb=0.02))) as client:
        response = post(client, "my streets.shp.zip", path.read_bytes())
    problem = assert_names_the_upload(response, "my streets.shp.zip", status=413)
    assert problem["type"].endswith("/archive-too-large") and "GEOGRID_MAX_UNPACKED_MB" in problem["detail"]
    assert store.versions("s")[-1].number == 1 and len(store.audit("s")) == 2  # nothing written


def test_an_upload_over_the_configured_ratio_is_413(store, demo_layers, tmp_path):
    store.import_units("s", demo_layers["streets"], "street", commit=True)
    bomb = make_bomb(tmp_path / "bomb.zip", 2 << 20)  # 2 MB of zeros: ~1000:1, over a ratio of 5
    with TestClient(create_app(settings_for(store, tmp_path, max_compression_ratio=5))) as client:
        response = post(client, "streets.zip", bomb.read_bytes())
    problem = assert_names_the_upload(response, "streets.zip", status=413)
    assert "GEOGRID_MAX_COMPRESSION_RATIO" in problem["detail"] and problem["field"] == "bomb.dbf"


def test_under_the_configured_limits_an_upload_is_read(store, demo_layers, tmp_path):
    store.import_units("s", demo_layers["streets"], "street", commit=True)
    path = write_layer(demo_layers["streets"], tmp_path / "streets.shp.zip")
    with TestClient(create_app(settings_for(store, tmp_path, max_unpacked_mb=5))) as client:
        response = post(client, "streets.shp.zip", path.read_bytes())
    assert response.status_code == 200, response.text
    assert json.loads(response.text)["rows"] == len(demo_layers["streets"])


def test_a_long_set_name_or_if_match_is_echoed_cut(client, demo_layers):
    body = demo_layers["streets"].to_json(drop_id=True).encode()
    long_set = "s" * 5_000
    files = {"file": ("streets.geojson", body, "application/geo+json")}
    missing = client.post(
        f"/v1/sets/{long_set}/draft/street", files=files, headers=ADMIN, params={"commit": True}
    )
    assert missing.status_code == 428 and len(missing.content) < 2_000, missing.text[:300]
    files = {"file": ("streets.geojson", body, "application/geo+json")}
    stale = client.post(
        "/v1/sets/s/draft/street",
        files=files,
        headers={**ADMIN, "If-Match": "x" * 5_000},
        params={"commit": True},
    )
    assert stale.status_code == 409 and len(stale.content) < 2_000, stale.text[:300]
    unknown = client.get(f"/v1/sets/{long_set}")
    assert unknown.status_code == 404 and len(unknown.content) < 2_000, unknown.text[:300]
