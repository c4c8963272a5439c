"""The commander dashboard in a real browser: every level drawn from the vector tiles at its zooms, with
nothing loaded from outside the host, no console error, and a screenshot kept (test-artefacts/)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import subprocess
import threading
import urllib.request

import pytest

from geogrid import maps
from geogrid.crs import wgs84_to_gcj02
from tests.e2e.conftest import BIN, ROOT, guarded, serving

# One served demo and one browser for the module: keep its tests on one xdist worker (make test: loadgroup).
pytestmark = pytest.mark.xdist_group("e2e-dashboard")
ARTEFACTS = ROOT / "test-artefacts"
COUNT_AT = """async ([name, zoom]) => {
  const map = window.dashboard.map;
  const idle = new Promise(resolve => map.once("idle", resolve));
  map.jumpTo({center: map.getCenter(), zoom});
  await idle;
  const codes = map.querySourceFeatures(name, {sourceLayer: name}).map(f => f.properties.code);
  return [new Set(codes).size, map.getLayer(name + "-fill").visibility !== "none"];
}"""


def test_the_dashboard_draws_each_level_whole_at_its_zoom_from_the_host_only(served, browser, demo_layers):
    page, seen = guarded(browser, viewport={"width": 1800, "height": 1400})  # the county whole at zoom 12
    try:
        response = page.goto(f"{served.url}/dashboard", wait_until="load")
        assert response is not None and response.status == 200
        page.wait_for_function("() => window.dashboard !== undefined")
        page.evaluate("() => window.dashboard.ready")
        config = page.evaluate("() => window.dashboard.config")
        expected = {
            "street": "streets",
            "community": "communities",
            "grid": "grids",
            "microgrid": "microgrids",
        }
        assert [level["name"] for level in config["levels"]] == list(expected)
        assert "网格化管理指挥大屏" in page.inner_text("header")
        for level in config["levels"]:
            drawn, shown = page.evaluate(COUNT_AT, [level["name"], max(level["minzoom"], 9)])
            assert shown and drawn == level["units"] == len(demo_layers[expected[level["name"]]]), level
        ARTEFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / "dashboard.png"))
        assert (ARTEFACTS / "dashboard.png").stat().st_size > 10_000
        assert any("/tiles/demo/microgrid/12/" in url for url in seen.allowed)
        assert not seen.external, f"the dashboard asked for outside resources: {seen.external}"
        assert not seen.errors, f"the dashboard logged console errors: {seen.errors}"
    finally:
        page.close()


def test_the_dashboard_speaks_english_when_asked(served, browser):
    page, seen = guarded(browser)
    try:
        page.goto(f"{served.url}/dashboard?lang=en", wait_until="load")
        assert "commander dashboard" in page.inner_text("header") and "micro-grids" in page.inner_text(
            "header"
        )
        assert not seen.external
    finally:
        page.close()


def cli(served, *args: str) -> str:
    """Run the geogrid CLI against the served demo's database; its output."""
    return subprocess.run(
        [str(BIN / "geogrid"), *args], cwd=served.folder, env=served.env, check=True, capture_output=True,
        text=True, timeout=600,
    ).stdout.strip()  # fmt: skip


def report(served, reporter: str, point, description: str) -> int:
    """POST an incident at ``point`` (WGS-84) through the API; its id."""
    data = {"category": "E0102", "description": description, "channel": "app",
            "coordinates": {"x": point[0], "y": point[1], "crs": "wgs84"}}  # fmt: skip
    request = urllib.request.Request(
        f"{served.url}/v1/incidents", data=json.dumps(data).encode(), method="POST",
        headers={"Authorization": f"Bearer {reporter}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120) as answer:
        return int(json.load(answer)["id"])


@pytest.fixture(scope="module")
def keys(served, demo_layers):
    community = sorted(demo_layers["communities"]["code"])[0]
    return {
        "reporter": cli(served, "keys", "create", "--name", "hotline", "--role", "reporter"),
        "commander": cli(served, "keys", "create", "--name", "指挥中心", "--role", "commander"),
        "community": community,
        "scoped": cli(
            served, "keys", "create", "--name", "社区指挥", "--role", "commander", "--scope", community
        ),
    }


def inside(frame, code):
    return frame.loc[frame["code"] == code].geometry.iloc[0].representative_point().coords[0]


def opened(browser, served, key):
    page, seen = guarded(browser, viewport={"width": 1600, "height": 1000})
    page.goto(f"{served.url}/dashboard#key={key}", wait_until="load")
    page.wait_for_function("() => window.dashboard && window.dashboard.started === true")
    return page, seen


def test_an_incident_posted_appears_within_two_seconds_with_the_figures(served, browser, keys, demo_layers):
    page, seen = opened(browser, served, keys["commander"])
    try:
        assert page.evaluate("() => location.hash") == ""  # the key is kept out of the address bar
        open_before = int(page.inner_text("[data-kpi=open] b"))
        point = inside(demo_layers["microgrids"], sorted(demo_layers["microgrids"]["code"])[7])
        new = report(served, keys["reporter"], point, "大屏实时测试")
        page.wait_for_function(f"() => window.dashboard.incidents.has({new})", timeout=2_000)
        page.wait_for_function(
            f"() => Number(document.querySelector('[data-kpi=open] b').textContent) > {open_before}",
            timeout=30_000,  # the figures follow within their 10 s refresh
        )
        assert page.locator("#red h2").inner_text().startswith("红榜")
        assert not seen.external and not seen.errors, (seen.external, seen.errors)
    finally:
        page.close()


def test_a_community_commander_sees_that_community_only(served, browser, keys, demo_layers):
    communities = demo_layers["communities"]
    own, other = keys["community"], sorted(communities["code"])[-1]
    mine = report(served, keys["reporter"], inside(communities, own), "本社区")
    theirs = report(served, keys["reporter"], inside(communities, other), "别的社区")
    page, seen = opened(browser, served, keys["scoped"])
    try:
        ids = set(page.evaluate("() => [...window.dashboard.incidents.keys()]"))
        assert mine in ids and theirs not in ids
        drawn = page.evaluate("""async () => {
          const map = window.dashboard.map, idle = new Promise(resolve => map.once("idle", resolve));
          map.jumpTo({zoom: 10.5}); await idle;
          return map.queryRenderedFeatures({layers: ["community-fill"]}).map(f => f.properties.code);
        }""")
        assert set(drawn) == {own}, set(drawn)
        assert not seen.external and not seen.errors, (seen.external, seen.errors)
    finally:
        page.close()


def call(served, key, path, data=None):
    """A JSON request to the served API with ``key``; the answer's JSON."""
    request = urllib.request.Request(
        f"{served.url}{path}", data=None if data is None else json.dumps(data).encode(),
        method="GET" if data is None else "POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "If-Match": "*"},
    )  # fmt: skip
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def unstaffed(served, keys, demo_layers):
    """A grid whose every post ended yesterday (planted through the API), with an open incident in it."""
    planner = cli(served, "keys", "create", "--name", "规划", "--role", "planner")
    grid = sorted(demo_layers["grids"]["code"])[3]
    today = dt.date.today()
    posts = call(served, planner, f"/v1/sets/demo/posts?unit={grid}&at={today}")["posts"]
    assert posts, "the demo roster staffs every grid"
    for post in posts:
        call(served, planner, f"/v1/sets/demo/posts/{post['post_id']}/end", {"valid_to": today.isoformat()})
    point = inside(demo_layers["grids"], grid)
    return grid, point, report(served, keys["reporter"], point, "无人网格里的事件")


def click_on(page, point):
    """Centre the map on ``point`` at the grids' zoom and click there."""
    page.evaluate(
        """async ([lon, lat]) => {
          const map = window.dashboard.map, idle = new Promise(resolve => map.once("idle", resolve));
          map.jumpTo({center: [lon, lat], zoom: 11.5}); await idle;
        }""",
        list(point),
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_clicking_an_unstaffed_grid_says_so_and_shows_its_figures(served, browser, keys, unstaffed):
    grid, point, incident = unstaffed
    page, seen = opened(browser, served, keys["commander"])
    try:
        click_on(page, point)
        panel = page.locator("#unit")
        panel.locator(f"[data-unit='{grid}']").wait_for()
        panel.locator("[data-staffing=unstaffed]").wait_for()  # once the coverage, asked on the click, came
        assert "无人负责" in panel.inner_text()
        assert int(panel.locator("[data-figure=received] b").inner_text()) >= 1
        assert int(panel.locator("[data-figure=open] b").inner_text()) >= 1
        assert f"#{incident}" in panel.inner_text()
        page.select_option("#measure", "staffing")  # the choropleth: that grid red, every grid coloured
        colour = page.evaluate("() => window.dashboard.map.getPaintProperty('grid-fill', 'fill-color')")
        pairs = dict(zip(colour[2:-1:2], colour[3:-1:2], strict=True))
        assert colour[0] == "match" and pairs[grid] == "#dc2626"
        assert len(pairs) == page.evaluate("() => window.dashboard.config.levels[2].units")
        page.select_option("#measure", "open")
        colour = page.evaluate("() => window.dashboard.map.getPaintProperty('grid-fill', 'fill-color')")
        assert colour[0] == "match" and grid in colour
        ARTEFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / "dashboard-grid.png"))
        assert not seen.external and not seen.errors, (seen.external, seen.errors)
    finally:
        page.close()


def test_the_filters_narrow_the_incidents_and_the_figures(served, browser, keys, demo_layers):
    communities = demo_layers["communities"]
    own, other = sorted(communities["code"])[1], sorted(communities["code"])[-2]
    mine = report(served, keys["reporter"], inside(communities, own), "筛选本社区")
    theirs = report(served, keys["reporter"], inside(communities, other), "筛选别处")
    page, seen = opened(browser, served, keys["commander"])
    try:
        everything = int(page.inner_text("[data-kpi=open] b"))
        page.select_option("#f-street", own[:9])
        page.select_option("#f-community", own)
        page.wait_for_function(f"() => window.dashboard.incidents.has({mine})")
        page.wait_for_function(f"() => !window.dashboard.incidents.has({theirs})")
        grids = page.evaluate("() => [...window.dashboard.incidents.values()].map(f => f.properties.grid)")
        assert grids and all(g.startswith(own) for g in grids)
        page.wait_for_function(
            f"() => Number(document.querySelector('[data-kpi=open] b').textContent) < {everything}"
        )
        page.select_option("#f-category", "C0104")  # a category none of these reports has
        page.wait_for_function(f"() => !window.dashboard.incidents.has({mine})")
        assert not seen.external and not seen.errors, (seen.external, seen.errors)
    finally:
        page.close()


@pytest.fixture(scope="module")
def tile_server():
    """An intranet base-map server on loopback: every /{z}/{x}/{y}.png is one small PNG; the paths asked."""
    asked: list[str] = []
    tile = (maps.LEAFLET / "images" / "layers.png").read_bytes()  # any PNG will do

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header(
                "Access-Control-Allow-Origin", "*"
            )  # MapLibre fetches tiles: CORS, as tile servers do
            self.send_header("Content-Length", str(len(tile)))
            self.end_headers()
            self.wfile.write(tile)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()


def test_over_a_gcj02_base_map_everything_is_drawn_in_gcj02(served, browser, keys, demo_layers, tile_server):
    """GEOGRID_TILE_URL with GEOGRID_TILE_CRS=gcj02 (Amap-style tiles on the intranet): the base map is drawn
    under the units, and the units and incidents come shifted to GCJ-02 so that they line up with it."""
    base, asked = tile_server
    env = {**served.env, "GEOGRID_TILE_URL": base + "/{z}/{x}/{y}.png", "GEOGRID_TILE_CRS": "gcj02"}
    point = inside(demo_layers["microgrids"], sorted(demo_layers["microgrids"]["code"])[11])
    new = report(served, keys["reporter"], point, "底图测试")
    with serving(served.folder, env) as over_base:
        page, seen = guarded(browser, viewport={"width": 1600, "height": 1000})
        try:
            page.goto(f"{over_base.url}/dashboard#key={keys['commander']}", wait_until="load")
            page.wait_for_function("() => window.dashboard && window.dashboard.started === true")
            page.wait_for_function(f"() => window.dashboard.incidents.has({new})")
            page.evaluate("() => new Promise(resolve => window.dashboard.map.once('idle', resolve))")
            assert asked and all(path.endswith(".png") for path in asked)  # the base map was drawn
            assert page.evaluate("() => window.dashboard.map.getLayer('base').type") == "raster"
            tiles = [u for u in seen.allowed if ".mvt" in u]
            assert tiles and all("crs=gcj02" in u for u in tiles)
            assert any("/v1/incidents/points" in u and "crs=gcj02" in u for u in seen.allowed)
            drawn = page.evaluate(f"() => window.dashboard.incidents.get({new}).geometry.coordinates")
            lon, lat = wgs84_to_gcj02(*point)
            assert drawn == pytest.approx([float(lon), float(lat)], abs=1e-6)  # the reported point, in GCJ-02
            assert not seen.external and not seen.errors, (seen.external, seen.errors)
            ARTEFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTEFACTS / "dashboard-base-map.png"))
        finally:
            page.close()
