"""The landing page, /docs and /redoc render in a real browser with nothing loaded from outside the host.

Headless Chromium (Debian's ``chromium``, driven by Playwright) opens each page of a served demo; every
request goes through a route that lets loopback addresses through and aborts and counts anything else,
so a CDN script, a web font or a remote logo is a failure even when the page would have rendered from a
cache. Without the browser (or Playwright) the tests skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Visit, guarded

# One served demo and one browser for the module: keep its tests on one xdist worker (make test: loadgroup).
pytestmark = pytest.mark.xdist_group("e2e-pages")


def visit(browser, url: str, ready_selector: str):
    """Open ``url``, refusing every non-loopback request, and wait for ``ready_selector`` to show."""
    page, seen = guarded(browser)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, url
    page.wait_for_selector(ready_selector, state="visible")
    page.wait_for_load_state("networkidle")
    return page, seen


def check(seen: Visit, path: str) -> None:
    assert not seen.external, f"{path} asked for {len(seen.external)} outside resource(s): {seen.external}"
    assert not seen.errors, f"{path} logged console errors: {seen.errors}"


def test_landing_page_renders_its_links_from_the_host_only(served, browser):
    page, seen = visit(browser, f"{served.url}/", "ul li a")
    try:
        hrefs = page.eval_on_selector_all("ul li a", "links => links.map(a => a.getAttribute('href'))")
        assert {"/docs", "/redoc", "/ogc", "/v1/sets", "/healthz"} <= set(hrefs), hrefs
        assert "demo" in page.inner_text("body")
        check(seen, "/")
    finally:
        page.close()


def test_swagger_ui_lists_the_operations_from_the_host_only(served, browser):
    page, seen = visit(browser, f"{served.url}/docs", ".opblock-summary")
    try:
        operations = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/v1/lookup" in op for op in operations), operations
        assert len(operations) >= 10, operations
        assert any(u.endswith("/openapi.json") for u in seen.allowed), seen.allowed
        check(seen, "/docs")
    finally:
        page.close()


def test_redoc_shows_its_sidebar_from_the_host_only(served, browser):
    page, seen = visit(browser, f"{served.url}/redoc", ".menu-content li")
    try:
        menu = page.inner_text(".menu-content")
        assert "lookup" in menu.lower(), menu[:2000]
        assert any(u.endswith("/openapi.json") for u in seen.allowed), seen.allowed
        check(seen, "/redoc")
    finally:
        page.close()
