"""A served demo: the demo county in a SpatiaLite file, behind a real ``geogrid serve`` process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import stop

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # .venv/bin: geogrid, python
READY_DEADLINE_S = 600.0  # a loaded 2-core machine (the suite runs beside it) can take minutes to start up


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
    deadline passes; the service's output goes to ``folder``/serve.log, quoted when it does not start.
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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [geogrid, "serve", "--port", str(port), "--log-level", "warning"],
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
