"""Saved coverage maps open in a real browser with nothing loaded from outside: from disk and from loopback.

Headless Chromium (Debian's ``chromium``, driven by Playwright; the ``browser`` fixture of
test_pages_browser) opens each map file, once as ``file://`` and once from a ``http.server`` thread on
127.0.0.1; every non-loopback request is aborted and counted. A map passes with no console error, no
outside request, and exactly one SVG path per grid in its grid layer. Without the browser the tests skip
locally and fail under ``CI=true``.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from geogrid import maps
from tests.e2e.conftest import Visit, guarded
from tests.unit.test_maps import DEMO, DEMO_FILES, demo_report, small_report

pytestmark = pytest.mark.xdist_group("e2e-maps")
# What a loopback "intranet tile server" hands out for every tile: any real PNG will do.
TILE = (maps.LEAFLET / "images" / "layers.png").read_bytes()


class _Files(http.server.SimpleHTTPRequestHandler):
    """The map folder, plus /tiles/{z}/{x}/{y}.png answered with one small PNG."""

    def do_GET(self) -> None:
        if self.path.startswith("/tiles/"):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(TILE)))
            self.end_headers()
            self.wfile.write(TILE)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("maps")


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[str]:
    """``folder`` served on a free loopback port, in a thread, for the module."""
    handler = functools.partial(_Files, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def small() -> object:
    return small_report()


@pytest.fixture(scope="module")
def demo() -> object:
    if not all((DEMO / n).exists() for n in DEMO_FILES):
        pytest.skip("demo roster/sites/roads not generated")
    return demo_report()[0]


def save(folder: Path, name: str, page: str) -> Path:
    path = folder / name
    path.write_text(page, encoding="utf-8")
    return path


def open_map(browser, url: str):
    """Open a map, refusing every non-loopback request; wait until its legend and overlays are drawn."""
    page, seen = guarded(browser, viewport={"width": 1280, "height": 900})

    def failed(request) -> None:
        # Leaflet cancels the tiles of the first view when fitBounds moves it (net::ERR_ABORTED); an
        # outside request aborted by the route above is counted there.
        if "ERR_ABORTED" not in (request.failure or "") and request.url not in seen.external:
            seen.errors.append(f"failed: {request.url} ({request.failure})")

    page.on("requestfailed", failed)
    page.goto(url, wait_until="load")
    page.wait_for_selector(".geogrid-legend", state="visible")
    page.wait_for_selector(".leaflet-control-layers", state="attached")
    page.wait_for_load_state("networkidle")
    return page, seen


def check(page, seen: Visit, grids: int, what: str) -> None:
    assert not seen.external, f"{what} asked for {len(seen.external)} outside resource(s): {seen.external}"
    assert not seen.errors, f"{what} logged console errors: {seen.errors}"
    drawn = page.locator(f"path.{maps.GRID_CLASS}").count()
    assert drawn == grids, f"{what}: {drawn} grid polygons drawn, {grids} grids"
    assert page.evaluate("typeof window.jQuery === 'undefined' && typeof window.L === 'object'")


@pytest.mark.parametrize("kind", maps.KINDS)
@pytest.mark.parametrize("how", ["file", "http"])
def test_each_map_of_a_small_county_draws_every_grid_offline(browser, folder, server, small, kind, how):
    path = save(folder, f"small-{kind}.html", maps.build_map(kind, small))
    url = path.as_uri() if how == "file" else f"{server}/{path.name}"
    page, seen = open_map(browser, url)
    try:
        check(page, seen, len(small.grids), f"{kind} via {how}")
        assert "small" in page.inner_text(".geogrid-title")
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", maps.KINDS)
def test_each_map_of_the_demo_county_draws_every_grid_offline(browser, folder, demo, kind):
    path = save(folder, f"demo-{kind}.html", maps.build_map(kind, demo))
    page, seen = open_map(browser, path.as_uri())
    try:
        check(page, seen, len(demo.grids), f"demo {kind}")
        assert len(demo.grids) == 522
        if kind == "service":
            assert page.locator("path.geogrid-site").count() == len(demo.sites)
            assert page.locator("path.geogrid-outside").count() == len(demo.outside)
    finally:
        page.close()


def test_the_second_layer_and_a_popup_work(browser, folder, small):
    path = save(folder, "small-layers.html", maps.responsibility_map(small))
    page, seen = open_map(browser, path.as_uri())
    try:
        assert page.locator("path.geogrid-load").count() == 0  # the load layer starts hidden
        page.locator(".leaflet-control-layers").get_by_text("Grids by households per worker").click()
        assert page.locator("path.geogrid-load").count() == len(small.grids)
        page.locator(".leaflet-control-layers").get_by_text("Grids by households per worker").click()
        page.locator(f"path.{maps.GRID_CLASS}").first.dispatch_event("click")
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for(state="visible")
        assert "Staffing:" in popup.inner_text() and small.grids["code"].iloc[0] in popup.inner_text()
        assert not seen.errors and not seen.external
    finally:
        page.close()


def test_a_loopback_tile_url_is_the_only_thing_fetched(browser, folder, server, small):
    tiles = f"{server}/tiles/{{z}}/{{x}}/{{y}}.png"
    path = save(
        folder, "small-tiles.html", maps.build_map("gaps", small, tile_url=tiles, attribution="local tiles")
    )
    page, seen = open_map(browser, f"{server}/{path.name}")
    try:
        check(page, seen, len(small.grids), "gaps with tiles")
        fetched = [u for u in seen.allowed if "/tiles/" in u]
        assert fetched and page.locator("img.leaflet-tile-loaded").count() > 0
        assert set(seen.allowed) - set(fetched) == {f"{server}/{path.name}"}  # the page, then tiles only
        assert "local tiles" in page.inner_text(".leaflet-control-attribution")
    finally:
        page.close()


def test_an_outside_tile_url_is_blocked_and_counted(browser, folder, small):
    """The control: a page that does name an outside host is caught by the same route."""
    tiles = "https://tiles.intranet.example/{z}/{x}/{y}.png"
    path = save(folder, "small-outside.html", maps.build_map("gaps", small, tile_url=tiles))
    page, seen = open_map(browser, path.as_uri())
    try:
        assert seen.external and all(urlsplit(u).hostname == "tiles.intranet.example" for u in seen.external)
        assert page.locator(f"path.{maps.GRID_CLASS}").count() == len(small.grids)
    finally:
        page.close()


# Would count its runs if a name were ever parsed as HTML: the image fails to load and runs its handler.
PWN = '<img src=x onerror="window.__pwned=(window.__pwned||0)+1">'


def shown(page, css: str, how: str, box: str) -> list[str]:
    """The text of ``box`` after hovering or clicking each ``path.css`` (whatever is drawn on top answers)."""
    texts = []
    paths = page.locator(f"path.{css}")
    for i in range(paths.count()):
        target = paths.nth(i)
        if how == "hover":
            target.hover(force=True)
        else:
            target.click(force=True)
        found = page.locator(box).last
        found.wait_for(state="visible")
        texts.append(found.inner_text())
    return texts


def not_run(page, seen: Visit, what: str) -> None:
    page.wait_for_timeout(300)  # an image's error handler runs a moment after the image is made
    assert page.evaluate("typeof window.__pwned") == "undefined", f"{what}: a name ran as HTML"
    assert page.locator(".leaflet-container img:not(.leaflet-tile)").count() == 0, what
    assert not seen.errors and not seen.external, (what, seen.errors, seen.external)


@pytest.mark.parametrize("kind", maps.KINDS)
def test_hostile_names_are_shown_as_text_and_never_run(browser, folder, kind):
    """Grids, sites, people and the set all named like markup: hovered and clicked, each shows as text."""
    hostile = small_report(PWN)
    path = save(folder, f"hostile-{kind}.html", maps.build_map(kind, hostile))
    page, seen = open_map(browser, path.as_uri())
    try:
        tips = shown(page, maps.GRID_CLASS, "hover", ".leaflet-tooltip")
        assert any(PWN in t for t in tips), tips
        if kind == "service":
            assert shown(page, "geogrid-site", "hover", ".leaflet-tooltip") == [PWN, PWN]
            assert all(PWN in t for t in shown(page, "geogrid-site", "click", ".leaflet-popup-content"))
        popups = shown(page, maps.GRID_CLASS, "click", ".leaflet-popup-content")
        assert any(PWN in p for p in popups), popups
        if kind == "responsibility":
            assert any(f"Leader: {PWN}" in p for p in popups), popups
        assert PWN in page.inner_text(".geogrid-title") and PWN in page.title()
        not_run(page, seen, kind)
    finally:
        page.close()


def test_a_hostile_layer_name_is_shown_as_text_in_the_layer_control_and_legend(browser, folder):
    from geogrid.maps import page as draw

    layer = draw.Layer(
        PWN,
        maps.GRID_CLASS,
        [draw.feature(small_report().grids.geometry.iloc[0], {}, "", PWN, "k")],
        note=PWN,
    )
    html = draw.render(PWN, [layer], None, tile_url=None, attribution=None)
    page, seen = open_map(browser, save(folder, "hostile-layer.html", html).as_uri())
    try:
        assert f"{PWN} (1)" in page.inner_text(".leaflet-control-layers-overlays")
        assert f"{PWN} {PWN}" in page.inner_text(".geogrid-legend h4")
        assert shown(page, maps.GRID_CLASS, "hover", ".leaflet-tooltip") == [PWN]
        not_run(page, seen, "layer name")
    finally:
        page.close()
