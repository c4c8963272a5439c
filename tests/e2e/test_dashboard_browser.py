"""The commander dashboard in a real browser: every level drawn from the vector tiles at its zooms, with
nothing loaded from outside the host, no console error, and a screenshot kept (test-artefacts/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, guarded

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
        expected = {"street": "streets", "community": "communities", "grid": "grids", "microgrid": "microgrids"}
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
        assert "commander dashboard" in page.inner_text("header") and "micro-grids" in page.inner_text("header")
        assert not seen.external
    finally:
        page.close()
