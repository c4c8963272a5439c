"""A served demo: the demo county in a SpatiaLite file, behind a real ``geogrid serve`` process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import stop, unavailable

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # .venv/bin: geogrid, python
READY_DEADLINE_S = 600.0  # a loaded 2-core machine (the suite runs beside it) can take minutes to start up
CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"data", "blob", "about", "file"}  # never leave the machine
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


def guarded(browser, **options) -> tuple[object, Visit]:
    """A new page that refuses (and counts) every request leaving the machine and records console errors."""
    seen = Visit()
    page = browser.new_page(**options)
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
    return page, seen


@dataclass
class Served:
    """A running service: its URL, the folder it runs in (database in var/), and its log file."""

    url: str
    folder: Path
    log: Path
    env: dict[str, str]


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(folder: Path) -> dict[str, str]:
    """The environment the CLI and the server run with: .venv/bin first, the index cache in ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOGRID_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        GEOGRID_CACHE_DIR=str(folder / "var" / "cache"),
        # the service is on loopback: a proxy from the environment must not stand in between (curl too)
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def _ready(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/readyz", timeout=10) as response:
            return bool(response.status == 200 and json.load(response).get("ready"))
    except (OSError, urllib.error.URLError, ValueError):
        return False


@contextmanager
def served_demo(folder: Path, *, valid_from: str = "2026-01-01") -> Iterator[Served]:
    """Load the demo county into ``folder``/var/geogrid.sqlite, serve it on a free port until the block ends.

    Polls ``/readyz`` (no fixed sleeps) until the service answers ready, the process dies, or a generous
    deadline passes; the service's output goes to ``folder``/serve-PORT.log, quoted when it does not start.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "boundaries").exists():
        (folder / "boundaries").symlink_to(ROOT / "boundaries")
    env = environment(folder)
    geogrid = str(BIN / "geogrid")
    subprocess.run(
        [geogrid, "demo", "--valid-from", valid_from],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
        timeout=READY_DEADLINE_S,
    )
    with serving(folder, env) as service:
        yield service


@contextmanager
def serving(folder: Path, env: dict[str, str]) -> Iterator[Served]:
    """``geogrid serve`` on a free port over ``folder``'s database, with ``env``, until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "geogrid"), "serve", "--port", str(port), "--log-level", "warning"],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(f"geogrid serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"geogrid serve not ready after {READY_DEADLINE_S:.0f} s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield Served(url=url, folder=folder, log=log, env=env)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The demo county served by a real ``geogrid serve`` process, for the tests of one module."""
    with served_demo(tmp_path_factory.mktemp("served")) as service:
        yield service
