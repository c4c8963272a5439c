"""The landing page, /docs and /redoc render in a real browser with nothing loaded from outside the host.

Headless Chromium (Debian's ``chromium``, driven by Playwright) opens each page of a served demo; every
request goes through a route that lets loopback addresses through and aborts and counts anything else,
so a CDN script, a web font or a remote logo is a failure even when the page would have rendered from a
cache. Without the browser (or Playwright) the tests skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import unavailable

CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"data", "blob", "about"}
# One served demo and one browser for the module: keep its tests on one xdist worker (make test: loadgroup).
pytestmark = pytest.mark.xdist_group("e2e-pages")
TIMEOUT_MS = 120_000  # a loaded 2-core machine: ReDoc parses a 1 MB bundle and the whole OpenAPI document


@dataclass
class Visit:
    """What one page load asked for: requests let through, requests refused, console errors."""

    allowed: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium from the system (Playwright's own browser downloads are not used)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[dev]')")
    executable = str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
    if executable is None:
        unavailable(f"no Chromium at {CHROMIUM} (scripts/system-deps.sh chromium installs it)")
    with sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Exception as exc:  # a broken install: Playwright's error names what is missing
            unavailable(f"Chromium at {executable} does not start: {exc}")
        yield instance
        instance.close()


def visit(browser, url: str, ready_selector: str):
    """Open ``url``, refusing every non-loopback request, and wait for ``ready_selector`` to show."""
    seen = Visit()
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    def route(route) -> None:
        request_url = route.request.url
        parts = urlsplit(request_url)
        if parts.scheme in LOCAL_SCHEMES or parts.hostname in LOOPBACK:
            seen.allowed.append(request_url)
            route.continue_()
        else:
            seen.external.append(request_url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: seen.errors.append(f"uncaught: {exc}"))
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
