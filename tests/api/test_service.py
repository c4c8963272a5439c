"""The HTTP service on both databases: lookups, boundaries, OGC API Features, operations, errors."""

from __future__ import annotations

import contextlib
import csv as csv_module
import inspect
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from unittest import mock

import openapi_spec_validator
import pyogrio
import pytest
import shapely
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from uvicorn.importer import import_from_string

from api import transport
from api.main import create_app
from geogrid.cli import app as cli
from geogrid.crs import wgs84_to_gcj02
from geogrid.settings import Settings
from tests.conftest import BACKENDS, migrated_engine, problem, published_demo, stop

LEVELS = (
    ("county", "county"),
    ("streets", "street"),
    ("communities", "community"),
    ("grids", "grid"),
    ("microgrids", "microgrid"),
)


@pytest.fixture(scope="module", params=BACKENDS)
def published(request, demo_layers, tmp_path_factory):
    """The demo county, published from 2026-01-01, in a database of its own on each backend."""
    with migrated_engine(request.param, tmp_path_factory) as engine:
        yield _publish(engine, demo_layers)


def _publish(engine, demo_layers):
    published_demo(engine, demo_layers, LEVELS)
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def client(published, tmp_path_factory):
    settings = Settings(database_url=published, cache_dir=str(tmp_path_factory.mktemp("cache")))
    with TestClient(create_app(settings)) as c:
        yield c


def test_lookup_one_point(client, demo_layers):
    micro = demo_layers["microgrids"].iloc[100]
    x, y = micro.geometry.representative_point().coords[0]
    body = client.get("/v1/lookup", params={"lon": x, "lat": y}).json()
    assert body["unit"]["code"] == micro["code"] and body["version"] == 1
    assert body["parents"]["grid"]["code"] == micro["parent_code"]
    assert body["parents"]["street"]["code"] == micro["code"][:9]
    gx, gy = wgs84_to_gcj02(x, y)
    assert (
        client.get("/v1/lookup", params={"lon": gx, "lat": gy, "crs": "gcj02"}).json()["unit"]["code"]
        == micro["code"]
    )
    outside = client.get("/v1/lookup", params={"lon": 112.5, "lat": 39.85}).json()
    assert outside["unit"] is None and outside["nearest"] and outside["nearest_distance_m"] > 50_000


def test_hot_path_and_route_answer_alike(client, demo_layers):
    """GET /v1/lookup is answered by api.hotpath unless a parameter needs FastAPI; the bytes are the same."""
    micro = demo_layers["microgrids"].iloc[7]
    x, y = micro.geometry.representative_point().coords[0]
    for params in (
        {"lon": x, "lat": y},
        {"lon": x, "lat": y, "crs": "gcj02", "at": "2026-02-01", "set": "demo"},
        {"lon": 111.0, "lat": 39.7, "snap_m": 1000},
        {"lon": micro.geometry.exterior.coords[0][0] if hasattr(micro.geometry, "exterior") else x, "lat": y},
    ):
        hot = client.get("/v1/lookup", params=params)
        routed = client.get("/v1/lookup", params={**params, "_": "1"})  # an unknown parameter: FastAPI
        assert hot.status_code == routed.status_code == 200
        assert hot.content == routed.content and hot.headers["content-type"] == "application/json"
    assert client.get("/v1/lookup", params={"lon": "east", "lat": y}).status_code == 422  # route's error
    for odd in (
        {"lon": f"{x:e}", "lat": y},
        {"lon": x, "lat": y, "at": "20260201"},
        {"lon": f" {x}", "lat": y},
        {"lon": "١١١.٢", "lat": y},  # Arabic-Indic digits: float() reads them, FastAPI does not
        {"lon": f"{x}", "lat": f"{y}", "snap_m": "٥"},
    ):
        hot = client.get("/v1/lookup", params=odd)  # forms only FastAPI reads: the route answers both
        routed = client.get("/v1/lookup", params={**odd, "_": "1"})
        assert (hot.status_code, hot.content) == (routed.status_code, routed.content), odd


def test_lookup_errors_name_the_parameter(client):
    problem(client.get("/v1/lookup", params={"lon": 500, "lat": 39.8}), 422, "lon")
    problem(client.get("/v1/lookup", params={"lon": 111.2}), 422, "lat")
    problem(client.get("/v1/lookup", params={"lon": 111.2, "lat": 39.85, "crs": "mercator"}), 422, "crs")
    problem(client.get("/v1/lookup", params={"lon": 111.2, "lat": 39.85, "set": "nope"}), 404, "nope")
    problem(
        client.get("/v1/lookup", params={"lon": 111.2, "lat": 39.85, "at": "2025-06-01"}), 404, "2025-06-01"
    )


def test_batch_lookup_in_each_format(client, demo_layers):
    micro = demo_layers["microgrids"].iloc[:50]
    pts = [g.representative_point() for g in micro.geometry]
    body = client.post(
        "/v1/lookup", json=[{"lon": p.x, "lat": p.y} for p in pts] + [{"lon": "east", "lat": 1}]
    ).json()
    assert [r["unit_code"] for r in body["results"][:50]] == micro["code"].tolist()
    last = body["results"][50]  # the 51st point: rows and errors count from 1, index is its array position
    assert (last["index"], last["row"], last["error"]) == (50, 51, "point 51: lon is not a number: 'east'")
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": i},
                "geometry": {"type": "Point", "coordinates": [p.x, p.y]},
            }
            for i, p in enumerate(pts)
        ],
    }
    back = client.post("/v1/lookup", json=collection).json()
    assert [f["properties"]["unit_code"] for f in back["features"]] == micro["code"].tolist()
    csv = "id,lon,lat\n" + "".join(f"{i},{p.x},{p.y}\n" for i, p in enumerate(pts[:3])) + "9,,39.8\n"
    text = client.post("/v1/lookup", content=csv, headers={"content-type": "text/csv"}).text
    assert text.splitlines()[0] == "id,lon,lat,unit_code,on_boundary,error"
    rows = list(csv_module.reader(io.StringIO(text)))
    assert [row[3] for row in rows[1:4]] == micro["code"].tolist()[:3]
    assert rows[4][:3] == ["9", "", "39.8"] and rows[4][5] == "row 4: lon is missing"  # sent values kept
    problem(
        client.post("/v1/lookup", content="{not json", headers={"content-type": "application/json"}),
        400,
        "JSON",
    )


def test_large_batch_goes_out_in_slices_from_a_thread_that_stands_back(client, demo_layers):
    import api.lookup

    micro = demo_layers["microgrids"]
    pts = [g.representative_point() for g in micro.geometry] * 12  # 35,688 rows: 2 MB of answer
    csv = "lon,lat\n" + "".join(f"{p.x},{p.y}\n" for p in pts) + "111.5,40.5\n"
    response = client.post("/v1/lookup", content=csv, headers={"content-type": "text/csv"})
    assert len(response.content) > api.lookup.SLICE
    assert int(response.headers["content-length"]) == len(response.content)  # sliced, not chunked
    rows = response.text.splitlines()
    assert [r.split(",")[2] for r in rows[1:-1]] == micro["code"].tolist() * 12
    assert rows[-1] == "111.5,40.5,,false,"  # outside every unit: an empty code
    if sys.platform == "linux":  # batch threads stand back from the event loop for the CPU
        nice = api.lookup.BATCHES.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert nice.result() == os.getpriority(os.PRIO_PROCESS, 0) + api.lookup.BATCH_NICE


def test_boundaries(client, demo_layers):
    sets = client.get("/v1/sets").json()
    assert sets[0]["name"] == "demo" and sets[0]["versions"][0]["units"]["grid"] == 522
    grids = client.get("/v1/sets/demo/units", params={"level": "grid"}).json()
    assert len(grids["features"]) == 522
    box = "111.18,39.84,111.22,39.86"
    sub = client.get("/v1/sets/demo/units", params={"level": "grid", "bbox": box}).json()
    expected = shapely.intersects(
        demo_layers["grids"].geometry.to_numpy(), shapely.box(111.18, 39.84, 111.22, 39.86)
    ).sum()
    assert len(sub["features"]) == expected
    kids = client.get("/v1/sets/demo/units", params={"level": "grid", "parent": "150622001001"}).json()
    assert {f["properties"]["parent_code"] for f in kids["features"]} == {"150622001001"}
    problem(client.get("/v1/sets/demo/units", params={"bbox": "1,2,3"}), 400, "bbox")
    versions = client.get("/v1/sets/demo/versions").json()
    assert [(v["number"], v["status"], v["valid_from"]) for v in versions] == [(1, "published", "2026-01-01")]
    info = client.get("/v1/sets/demo")
    assert (
        info.json()["draft"] is None and info.headers["ETag"] == info.json()["etag"] == '"r6"'
    )  # 5 imports, 1 publish
    problem(client.get("/v1/sets/nowhere"), 404, "nowhere")


def test_ogc_api_features(client):
    landing = client.get("/ogc").json()
    assert {"conformance", "data", "service-desc"} <= {link["rel"] for link in landing["links"]}
    assert any("core" in c for c in client.get("/ogc/conformance").json()["conformsTo"])
    ids = [c["id"] for c in client.get("/ogc/collections").json()["collections"]]
    assert ids == ["county", "street", "community", "grid", "microgrid"]
    page = client.get("/ogc/collections/grid/items", params={"limit": 100, "offset": 500}).json()
    assert page["numberMatched"] == 522 and page["numberReturned"] == 22
    assert "next" not in {link["rel"] for link in page["links"]}
    first = client.get("/ogc/collections/grid/items", params={"limit": 100}).json()
    assert any(link["rel"] == "next" and "offset=100" in link["href"] for link in first["links"])
    one = client.get(f"/ogc/collections/grid/items/{first['features'][0]['id']}").json()
    assert one["properties"]["level"] == "grid"
    problem(client.get("/ogc/collections/grid/items", params={"datetime": "2025-01-01"}), 404, "2025-01-01")
    problem(client.get("/ogc/collections/parcels"), 404, "parcels")
    grid = client.get("/ogc/collections/grid").json()
    assert grid["id"] == "grid" and any(link["rel"] == "items" for link in grid["links"])


def test_operations_and_openapi(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["indexes"] == [{"set": "demo", "version": 1}]
    assert "geogrid_requests_total" in client.get("/metrics").text
    spec = client.get("/openapi.json").json()
    assert (
        spec["openapi"].startswith("3.")
        and "/v1/lookup" in spec["paths"]
        and "/ogc/collections" in spec["paths"]
    )
    openapi_spec_validator.validate(spec)  # raises on any departure from the OpenAPI specification
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert client.get("/healthz").headers["x-request-id"]
    head = client.head("/v1/sets/demo")  # HEAD answers like GET, without the body
    assert head.status_code == 200 and head.headers["ETag"] == client.get("/v1/sets/demo").headers["ETag"]
    assert head.content == b"" and client.head("/healthz").status_code == 200


def test_request_ids_metrics_and_access_log(client, caplog):
    caplog.set_level(logging.INFO, logger="geogrid.access")
    mine = client.get("/v1/lookup?lon=111.2&lat=39.85", headers={"x-request-id": "hotline-call-42"})
    assert mine.headers["x-request-id"] == "hotline-call-42"
    made = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3  # one id per request when the caller sends none
    client.get("/v1/lookup", params={"lon": 500, "lat": 1})  # a 422
    metrics = client.get("/metrics").text
    assert 'geogrid_requests_total{status="422"}' in metrics
    count = int(re.search(r"geogrid_request_duration_seconds_count (\d+)", metrics).group(1))
    assert count >= 5 and 'geogrid_request_duration_seconds_bucket{le="+Inf"} ' + str(count) in metrics
    assert 'le="5e-05"' in metrics  # buckets fine enough for lookups answered in microseconds
    deadline = time.monotonic() + 5
    while "hotline-call-42" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)  # the access log is written in batches a fraction of a second later
    line = next(x for x in caplog.text.splitlines() if "request_id=hotline-call-42" in x)
    assert "method=GET path=/v1/lookup status=200 ms=" in line and re.match(r".*\d{4}-\d\d-\d\dT.*Z ", line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(database_url, tmp_path, *options):
    """``geogrid serve`` in a process of its own on a free port, ready; yields (port, process)."""
    port = free_port()
    env = {**os.environ, "GEOGRID_CACHE_DIR": str(tmp_path)}
    command = [sys.executable, "-c", "from geogrid.cli import main; main()", "--database-url", database_url]
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port), *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300  # start-up on a loaded machine takes minutes, not seconds
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the server was not ready within 300 s"
                time.sleep(0.1)
        yield port, server
    finally:
        stop(server)


def test_gdal_oapif_driver_reads_the_micro_grids(published, demo_layers, tmp_path):
    # A server in its own process: GDAL holds the GIL while it pages, so an in-process server would starve.
    with served(published, tmp_path) as (port, _):
        url = f"OAPIF:http://127.0.0.1:{port}/ogc"
        assert "microgrid" in [name for name, _ in pyogrio.list_layers(url)]
        frame = pyogrio.read_dataframe(url, layer="microgrid", PAGE_SIZE=1000)
        assert len(frame) == len(demo_layers["microgrids"])
        assert sorted(frame["code"]) == sorted(demo_layers["microgrids"]["code"])


def test_serve_with_workers(published, demo_layers, tmp_path):
    # On a loaded machine a worker's start-up (numba compilation, the index build) takes minutes and holds
    # the GIL for seconds: uvicorn's 5 s health ping used to kill and restart workers over and over.
    micro = demo_layers["microgrids"].iloc[3]
    x, y = micro.geometry.representative_point().coords[0]
    with served(published, tmp_path, "--workers", "2", "--log-level", "warning") as (port, server):
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children")

        def workers() -> list[str]:  # the supervisor's workers, each with its own index
            pids = children.read_text().split() if children.exists() else []
            return [pid for pid in pids if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]

        def started() -> bool:
            readyz = f"http://127.0.0.1:{port}/readyz"
            with contextlib.suppress(OSError), urllib.request.urlopen(readyz, timeout=10) as r:
                return r.status == 200 and (len(workers()) == 2 or not children.exists())
            return False

        deadline = time.monotonic() + 300
        while not started() and time.monotonic() < deadline:
            time.sleep(0.5)
        first = workers()
        assert len(first) == 2 or not children.exists()
        for _ in range(20):
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/v1/lookup?lon={x}&lat={y}", timeout=10
            ) as r:
                assert json.load(r)["unit"]["code"] == micro["code"]
        assert workers() == first  # none was killed and replaced meanwhile


def test_serve_with_workers_gives_them_a_minute_to_answer_health_pings(tmp_path, monkeypatch):
    # What test_serve_with_workers cannot show on an idle machine: the supervisor is told to wait 60 s for a
    # worker busy starting up (uvicorn's default, 5 s, killed and restarted them in a loop under load).
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []
    real_run = inspect.signature(uvicorn.run)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    database = f"sqlite:///{tmp_path / 'g.sqlite'}"
    with mock.patch.dict(os.environ):  # serve hands the settings to its workers in GEOGRID_* variables
        result = CliRunner().invoke(
            cli, ["--database-url", database, "serve", "--workers", "2", "--port", "8123"]
        )
        assert result.exit_code == 0, result.output
        assert Settings().database_url == database  # what each worker's create_app() reads
    [(args, kwargs)] = calls
    real_run.bind(*args, **kwargs)  # options the installed uvicorn knows
    assert kwargs.get("timeout_worker_healthcheck", 5) >= 60, kwargs
    assert kwargs["workers"] == 2 and kwargs["port"] == 8123
    assert kwargs["factory"] is True and import_from_string(args[0]) is create_app
    assert import_from_string(kwargs["http"]) is transport.FromEnvironment
