"""The connection under `geogrid serve` (issue 10: 7, 12, 13, 14): clients that hang up mid-body, chunked
bodies over the limit, bodies and headers that come too slowly, guessed keys, memory after large refusals.

Most tests talk raw HTTP over a socket to a real server process, as a hostile client would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import identify
from api.main import create_app
from geogrid.access import Principal, Role
from geogrid.errors import NotAuthenticated, RateLimited
from geogrid.settings import DEMO_ADMIN_KEY, Settings
from tests.api.test_service import _publish, free_port
from tests.conftest import migrated_engine, stop

ADMIN = f"Authorization: Bearer {DEMO_ADMIN_KEY}\r\nIf-Match: *\r\n".encode()
LIMITS = {  # small, so a test takes a second or two
    "GEOGRID_MAX_BODY_MB": "2",
    "GEOGRID_HEADER_TIMEOUT_S": "1",
    "GEOGRID_BODY_IDLE_TIMEOUT_S": "1",
    "GEOGRID_RATE_LIMIT_PER_MINUTE": "0",
}


class Server:
    """``geogrid serve`` in a process of its own: its port, process and log (stderr, in a file)."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.process, self.log = port, process, log

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return str(r.read().decode())

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def statuses(self) -> dict[int, int]:
        """Requests counted in /metrics, by status."""
        found = re.findall(r'geogrid_requests_total\{status="(\d+)"\} (\d+)', self.get("/metrics"))
        return {int(s): int(n) for s, n in found}

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


START = "from geogrid.cli import main; main()"


@contextlib.contextmanager
def serve(database_url: str, folder: Path, *, start: str = START, **env: str) -> Iterator[Server]:
    """Start ``geogrid serve`` (by the Python code ``start``) on ``database_url`` with ``env``; stop it after."""
    port, log = free_port(), folder / "server.log"
    command = [sys.executable, "-c", start, "--database-url", database_url]
    with log.open("wb") as err:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            env={**os.environ, "GEOGRID_CACHE_DIR": str(folder), **env},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    server = Server(port, process, log)
    try:
        give_up = time.monotonic() + 300  # start-up on a loaded machine takes minutes, not seconds
        while True:
            with contextlib.suppress(OSError):
                if '"ready":true' in server.get("/readyz"):
                    break
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < give_up, "the server was not ready within 300 s"
            time.sleep(0.1)
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="module")
def database(demo_layers, tmp_path_factory) -> Iterator[str]:
    """The demo county, published, in a SpatiaLite file (the transport does not depend on the backend)."""
    with migrated_engine("spatialite", tmp_path_factory) as engine:
        yield _publish(engine, demo_layers)


@pytest.fixture(scope="module")
def server(database, tmp_path_factory) -> Iterator[Server]:
    with serve(database, tmp_path_factory.mktemp("server"), **LIMITS) as running:
        yield running


def response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response (status, headers, body) until the body is complete or the server closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (read end of file, or a reset)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def wait_for(condition, seconds: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it holds or ``seconds`` pass (generous: a loaded machine is slow); its last value."""
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            return bool(condition())
        time.sleep(0.05)
    return True


MULTIPART = (
    b"Content-Type: multipart/form-data; boundary=XX\r\n",
    b'--XX\r\nContent-Disposition: form-data; name="file"; filename="m.geojson"\r\n\r\n',
)
BODIES = {  # path: (content-type header, the first bytes of a body)
    b"/v1/sets/demo/draft/microgrid": MULTIPART,
    b"/v1/sets/demo/publish": (
        b"Content-Type: application/json\r\n",
        b'{"valid_from": "2027-01-01", "note": "',
    ),
    b"/v1/lookup": (b"Content-Type: text/csv\r\n", b"lon,lat\n111.2,39.85\n"),
}


def test_a_client_hanging_up_mid_body_is_a_499_and_no_error(server):
    before = server.statuses()
    logged = server.log.stat().st_size
    for path, (content_type, start) in BODIES.items():
        with server.connect() as sock:
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: t\r\n%s%sContent-Length: 1000\r\n\r\n%s" % (
                path, ADMIN, content_type, start))  # fmt: skip
            time.sleep(0.2)  # the app is reading the body when the client goes
    wait_for(lambda: server.statuses().get(499, 0) - before.get(499, 0) >= len(BODIES))
    after = server.statuses()
    assert after.get(499, 0) - before.get(499, 0) == len(BODIES), after
    assert {s: n - before.get(s, 0) for s, n in after.items() if s >= 500 and n != before.get(s, 0)} == {}
    assert "geogrid_request_errors_total 0" in server.get("/metrics")

    def written() -> str:  # access lines are written in batches, a fraction of a second later (more if busy)
        return server.log.read_bytes()[logged:].decode()

    wait_for(lambda: written().count("status=499") >= len(BODIES))
    log = written()
    assert "Traceback" not in log and "ERROR" not in log, log
    assert log.count("status=499") == len(BODIES), log


@pytest.mark.parametrize("path", [b"/v1/sets/demo/draft/microgrid", b"/v1/sets/demo/publish", b"/v1/lookup"])
def test_a_chunked_body_over_the_limit_is_413(server, path):
    content_type, start = BODIES[path]
    with server.connect() as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: t\r\n%s%sTransfer-Encoding: chunked\r\n\r\n" % (
            path, ADMIN, content_type))  # fmt: skip
        chunk = start + b"x" * 250_000
        for _ in range(12):  # 3 MB, over the 2 MB limit
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            chunk = b"x" * 250_000
        sock.sendall(b"0\r\n\r\n")
        status, headers, body = response(sock)
    assert status == 413, body
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 413 and "GEOGRID_MAX_BODY_MB" in problem["detail"], problem


def test_a_body_that_stops_coming_is_408_and_closed(server):
    content_type, start = BODIES[b"/v1/sets/demo/draft/microgrid"]
    with server.connect() as sock:
        sock.sendall(b"POST /v1/sets/demo/draft/microgrid HTTP/1.1\r\nHost: t\r\n%s%sContent-Length: 100000\r\n\r\n%s" % (
            ADMIN, content_type, start))  # fmt: skip
        began = time.monotonic()
        status, headers, body = response(sock)
        assert status == 408, body
        assert json.loads(body)["type"].endswith("/body-timeout")
        assert closed(sock)
        assert time.monotonic() - began < 10


def test_headers_sent_too_slowly_get_408_and_the_connection_closed(server):
    with server.connect() as sock:
        began = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(40):  # a header a byte at a time: each byte used to restart uvicorn's timer
            time.sleep(0.25)
            try:
                sock.sendall(b"X")
            except OSError:
                break
        sock.settimeout(10)
        status, _, body = response(sock)
        assert status == 408 and b"GEOGRID_HEADER_TIMEOUT_S" in body
        assert closed(sock)
        assert time.monotonic() - began < 5  # 1 s allowed; 10 s of trickle were offered


def test_a_connection_that_says_nothing_is_closed(server):
    with server.connect() as sock:
        began = time.monotonic()
        assert closed(sock)
        assert time.monotonic() - began < 5


def test_keep_alive_requests_after_the_timeout_are_answered(server):
    with server.connect() as sock:  # a prompt client on one connection is never cut off
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            status, _, _ = response(sock)
            assert status == 200
            time.sleep(0.6)  # under the keep-alive time, and the header timer must not run meanwhile


def test_a_slow_second_request_on_a_kept_alive_connection_gets_408(server):
    # One timer per connection: it fires at the first request's due time, finds the second request's
    # headers not yet due, waits for them, and then cuts the trickle off.
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert response(sock)[0] == 200
        time.sleep(0.6)
        began = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(40):
            time.sleep(0.25)
            try:
                sock.sendall(b"X")
            except OSError:
                break
        sock.settimeout(10)
        status, _, body = response(sock)
        assert status == 408 and b"GEOGRID_HEADER_TIMEOUT_S" in body
        assert closed(sock)
        assert time.monotonic() - began < 5


def test_guessed_keys_are_refused_before_the_database_is_asked(database, tmp_path, monkeypatch):
    settings = Settings(database_url=database, cache_dir=str(tmp_path), failed_keys_per_minute=5)
    with TestClient(create_app(settings)) as client:
        state = client.app.state.service  # type: ignore[attr-defined]
        asked: list[str] = []
        resolve = state.keys.resolve
        monkeypatch.setattr(state.keys, "resolve", lambda key: asked.append(key) or resolve(key))
        lookup = {"lon": 111.2, "lat": 39.85}
        for n in range(5):
            r = client.get("/v1/lookup", params=lookup, headers={"X-API-Key": f"gg_guess{n}"})
            assert r.status_code == 401, r.text
        assert len(asked) == 5
        r = client.get("/v1/lookup", params=lookup, headers={"X-API-Key": "gg_guess5"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
        assert r.headers["content-type"] == "application/problem+json"
        r = client.post("/v1/sets/demo/publish", headers={"Authorization": "Bearer gg_guess6"}, json={})
        assert r.status_code == 429, r.text  # writes too
        assert len(asked) == 5  # the 6th and 7th keys never reached the database
        assert client.get("/v1/lookup", params=lookup).status_code == 200  # no key: still served
        admin = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}
        assert client.get("/v1/lookup", params=lookup, headers=admin).status_code == 200  # a good key too


def test_a_burst_of_concurrent_guesses_reaches_the_database_a_bucket_at_most(database, tmp_path, monkeypatch):
    # Twenty guesses at once, each held inside its database lookup until all have been decided: before
    # a guess took its token ahead of the lookup, every one of them passed the limit and reached the database.
    settings = Settings(database_url=database, cache_dir=str(tmp_path), failed_keys_per_minute=5)
    with TestClient(create_app(settings)) as client:
        state, failed = client.app.state.service, client.app.state.failed_keys  # type: ignore[attr-defined]
        asked: list[str] = []
        limited: list[str] = []
        release = threading.Event()
        resolve = state.keys.resolve

        def slow_resolve(key: str) -> Principal | None:
            asked.append(key)
            release.wait(60)
            return resolve(key)

        def guess(key: str) -> None:
            try:
                identify(state, failed, key, "203.0.113.7")
            except RateLimited:
                limited.append(key)
            except NotAuthenticated:
                pass

        monkeypatch.setattr(state.keys, "resolve", slow_resolve)
        threads = [threading.Thread(target=guess, args=(f"gg_burst{n}",)) for n in range(20)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(asked) + len(limited) == len(threads), seconds=60)
        release.set()
        for thread in threads:
            thread.join(60)
        assert len(asked) <= 5 and len(asked) + len(limited) == 20, (asked, limited)
        with pytest.raises(RateLimited):
            identify(state, failed, "gg_burst20", "203.0.113.7")
        with pytest.raises(NotAuthenticated):  # another address is not held back
            identify(state, failed, "gg_burst21", "203.0.113.8")


def test_a_valid_new_key_gives_back_the_token_it_reserved(database, tmp_path, monkeypatch):
    settings = Settings(database_url=database, cache_dir=str(tmp_path), failed_keys_per_minute=2)
    with TestClient(create_app(settings)) as client:
        state, failed = client.app.state.service, client.app.state.failed_keys  # type: ignore[attr-defined]
        resolve = state.keys.resolve
        principal = Principal("viewer", Role.viewer)
        monkeypatch.setattr(state.keys, "resolve", lambda key: principal if "good" in key else resolve(key))
        for n in range(5):  # more valid keys, each new, than the address may fail
            assert identify(state, failed, f"gg_good{n}", "203.0.113.9") == principal
        with pytest.raises(NotAuthenticated):
            identify(state, failed, "gg_bad0", "203.0.113.9")
        monkeypatch.setattr(state.keys, "resolve", lambda key: 1 / 0)  # the database fails: no verdict
        with pytest.raises(ZeroDivisionError):
            identify(state, failed, "gg_broken", "203.0.113.9")
        monkeypatch.setattr(state.keys, "resolve", resolve)
        with pytest.raises(NotAuthenticated):
            identify(state, failed, "gg_bad1", "203.0.113.9")  # the second failure, still a 401
        with pytest.raises(RateLimited):
            identify(state, failed, "gg_good9", "203.0.113.9")  # past the limit even a good new key waits
        assert identify(state, failed, "gg_good0", "203.0.113.9") == principal  # a known one does not


# ``geogrid serve`` with api.memory's trims noted in the file $TRIM_NOTES (a line per trim asked for, started
# or skipped, and per trim done, with the time) and, with TRIM=off, never started: the server as it was
# before large requests were followed by a trim.
NOTED_TRIMS = """
import os, time
from api import memory
from geogrid.cli import main

def note(what):
    with open(os.environ["TRIM_NOTES"], "a") as notes:
        notes.write(f"{what} {time.monotonic()}\\n")

trim, trim_soon = memory.trim, memory.trim_soon

def noted_trim():
    try:
        return trim()
    finally:
        note("trimmed")

def noted_trim_soon(*args, **kwargs):
    started = os.environ["TRIM"] == "on" and trim_soon(*args, **kwargs)
    note("started" if started else "skipped")
    return started

memory.trim, memory.trim_soon = noted_trim, noted_trim_soon
main()
"""


def trims(notes: Path) -> dict[str, list[float]]:
    """The trims noted by a NOTED_TRIMS server: their times, by what happened (started, skipped, trimmed)."""
    found: dict[str, list[float]] = {"started": [], "skipped": [], "trimmed": []}
    for line in notes.read_text().splitlines() if notes.exists() else []:
        what, when = line.split()
        found[what].append(float(when))
    return found


def resident_mb_after_refusals(
    database: str, folder: Path, micro: list[dict], trim: bool
) -> tuple[float, float]:
    """A server's resident MB before and after refusing a 60 MB GeoJSON and a 120 MB chunked upload twice."""
    texts = [json.dumps(feature) for feature in micro]
    copies = 60_000_000 // sum(map(len, texts)) + 1
    upload = b'{"type": "FeatureCollection", "features": [%s]}' % ",".join(texts * copies).encode()
    assert 60e6 < len(upload) < 70e6  # parses, and is refused (repeated codes)
    boundary = b'--XX\r\nContent-Disposition: form-data; name="file"; filename="m.geojson"\r\n\r\n'
    folder.mkdir()
    notes = folder / "trims"
    env = {"TRIM": "on" if trim else "off", "TRIM_NOTES": str(notes), "GEOGRID_RATE_LIMIT_PER_MINUTE": "0"}
    with serve(database, folder, start=NOTED_TRIMS, **env) as server:
        with server.connect() as sock:  # warm: the first upload loads what every upload needs
            body = boundary + json.dumps({"type": "FeatureCollection", "features": micro[:5]}).encode()
            body += b"\r\n--XX--\r\n"
            sock.sendall(b"POST /v1/sets/demo/draft/microgrid HTTP/1.1\r\nHost: t\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
                ADMIN, MULTIPART[0], len(body), body))  # fmt: skip
            assert response(sock)[0] == 200
        before = server.rss_mb()
        for n in range(4):
            # A trim starts at most every 2 s: once the last one's interval is over, each refusal gets its own.
            wait_for(lambda: time.monotonic() - max(trims(notes)["started"], default=0.0) > 2.5)
            with server.connect() as sock:
                if n % 2 == 0:
                    body = boundary + upload + b"\r\n--XX--\r\n"
                    sock.sendall(b"POST /v1/sets/demo/draft/microgrid HTTP/1.1\r\nHost: t\r\n%s%sContent-Length: %d\r\n\r\n" % (
                        ADMIN, MULTIPART[0], len(body)))  # fmt: skip
                    sock.sendall(body)
                    status, _, text = response(sock)
                    assert status == 400 and b"repeats" in text, text[:500]
                else:
                    sock.sendall(b"POST /v1/sets/demo/draft/microgrid HTTP/1.1\r\nHost: t\r\n%s%sTransfer-Encoding: chunked\r\n\r\n" % (
                        ADMIN, MULTIPART[0]))  # fmt: skip
                    chunk = boundary + upload[:1_000_000]
                    with contextlib.suppress(OSError):  # the server may stop reading once it has refused
                        for _ in range(120):
                            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            chunk = upload[:1_000_000]
                        sock.sendall(b"0\r\n\r\n")
                    assert response(sock)[0] == 413

            def done(asked: int = n + 1) -> bool:  # the request has asked for its trim, and that trim is over
                noted = trims(notes)
                over = len(noted["trimmed"]) == len(noted["started"])
                return len(noted["started"]) + len(noted["skipped"]) == asked and over

            assert wait_for(done), trims(notes)
        noted = trims(notes)
        assert len(noted["started"]) == (4 if trim else 0), noted
        after = server.rss_mb()
    return before, after


def test_a_refused_60_mb_upload_leaves_memory_bounded(database, demo_layers, tmp_path):
    micro = json.loads(demo_layers["microgrids"].iloc[:200].to_json())["features"]
    before, after = resident_mb_after_refusals(database, tmp_path / "trimmed", micro, trim=True)
    before_untrimmed, after_untrimmed = resident_mb_after_refusals(
        database, tmp_path / "not", micro, trim=False
    )
    print(
        f"RSS before {before:.0f} MB, after two refused uploads of each kind {after:.0f} MB;"
        f" without the trims {before_untrimmed:.0f} MB, then {after_untrimmed:.0f} MB"
    )
    assert after - before < 150, (before, after)
    # Without the trims (as before issue 10's item 13) the refusals leave the server as large as it was, or
    # larger; the trims give back at least this much (about 130 MB here).
    kept = (after_untrimmed - before_untrimmed) - (after - before)
    assert kept > 50, (before, after, before_untrimmed, after_untrimmed)
