"""The landing page and the API docs load, with every asset from the service itself (an intranet works)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from api import pages
from api.main import create_app
from geogrid.settings import Settings
from tests.api.test_service import _publish
from tests.conftest import migrated_engine

URL = re.compile(r"""(?:src|href|url)\s*[=(:]\s*['"]?([^'"\s)>]+)""", re.IGNORECASE)
ABSOLUTE = re.compile(r"""https?://[^'"\s)<>]+""", re.IGNORECASE)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "testserver"}


@pytest.fixture(scope="module")
def client(demo_layers, tmp_path_factory):
    """A service over the published demo county (SpatiaLite: the pages do not depend on the backend)."""
    with migrated_engine("spatialite", tmp_path_factory) as engine:
        url = _publish(engine, demo_layers)
        settings = Settings(database_url=url, cache_dir=str(tmp_path_factory.mktemp("cache")))
        with TestClient(create_app(settings)) as c:
            yield c


def referenced(page: str) -> list[str]:
    """Every URL a page's HTML (and its inline script) names."""
    found = URL.findall(page) + ABSOLUTE.findall(page)
    found += re.findall(r"""(?:url|openapi_url|spec-url)\s*[:=]\s*['"]([^'"]+)['"]""", page)
    return sorted(set(found))


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc"])
def test_page_and_its_assets_load_from_the_service(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    urls = referenced(response.text)
    assert urls, response.text
    foreign = [u for u in ABSOLUTE.findall(response.text) if urlsplit(u).hostname not in LOOPBACK]
    assert not foreign, f"{path} references {foreign}"
    assert "fonts.googleapis" not in response.text and "cdn.jsdelivr" not in response.text
    for url in urls:
        if url.startswith(("#", "mailto:")):
            continue
        asset = client.get(url)
        assert asset.status_code == 200, (path, url, asset.status_code)
        assert asset.content, url


def test_docs_reference_the_vendored_assets(client):
    docs = client.get("/docs").text
    assert "/static/swagger-ui/swagger-ui-bundle.js" in docs and "/static/swagger-ui/swagger-ui.css" in docs
    assert "/static/redoc/redoc.standalone.js" in client.get("/redoc").text
    js = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith("text/javascript") and len(js.content) > 500_000
    assert client.get("/openapi.json").json()["paths"]


def test_landing_page_names_what_is_loaded_and_links_the_service(client):
    page = client.get("/").text
    assert "set <b>demo</b> version <b>1</b>" in page
    for href in ("/docs", "/redoc", "/ogc", "/v1/sets", "/v1/lookup?lon=111.2&amp;lat=39.85", "/healthz"):
        assert f'href="{href}"'.replace("&amp;", "&") in page.replace("&amp;", "&"), href
    body = client.get("/", headers={"accept": "application/json"}).json()
    assert body["indexes"] == [{"set": "demo", "version": 1}]
    assert {link["href"] for link in body["links"]} >= {"/docs", "/redoc", "/ogc", "/v1/sets", "/healthz"}


def test_unknown_asset_is_a_problem_not_a_file(client):
    for path in ("/static/swagger-ui/LICENSE", "/static/redoc/..%2F..%2Fmain.py", "/static/x/y"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")


def test_vendored_scripts_load_nothing_from_outside(client):
    """No vendored bundle sets an image, script or style source to another host (ReDoc's CDN logo was one)."""
    loads = re.compile(r"""\bsrc\s*[:=]\s*['"](https?://[^'"]+)['"]""")
    for name in pages.ASSETS:
        if name.endswith((".js", ".css")):
            text = (pages.STATIC / name).read_text(encoding="utf-8")
            assert not loads.findall(text), name
    assert client.get("/static/redoc/logo-mini.svg").headers["content-type"].startswith("image/svg+xml")
