"""ASGI middleware: request id, body size limit, metrics and the log line around every request; a deadline."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import secrets
import time
from typing import Any

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Scope

from api import memory
from geogrid import deadline
from geogrid.errors import BodyTimeout, ClientClosedRequest, GeoGridError, PayloadTooLarge

log = logging.getLogger("geogrid.api")
access_log = logging.getLogger("geogrid.access")

# Seconds; the first ones tell a lookup answered in memory (tens of microseconds) from one that waited.
BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)  # fmt: skip

TRIM_AFTER_BYTES = 1_000_000  # a request body larger than this is followed by a malloc_trim (rate-limited)


class Metrics:
    """Request counters and a latency histogram, in Prometheus text exposition."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.seconds = 0.0
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)

    def observe(self, status: int, seconds: float) -> None:
        self.requests += 1
        self.errors += status >= 500
        self.seconds += seconds
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1

    def exposition(self) -> str:
        lines = [
            "# TYPE geogrid_requests_total counter",
            *(f'geogrid_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.by_status.items())),
            "# TYPE geogrid_request_errors_total counter",
            f"geogrid_request_errors_total {self.errors}",
            "# TYPE geogrid_request_duration_seconds histogram",
        ]
        total = 0
        for bound, n in zip((*BUCKETS, float("inf")), self.buckets, strict=True):
            total += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'geogrid_request_duration_seconds_bucket{{le="{le}"}} {total}')
        lines += [
            f"geogrid_request_duration_seconds_sum {self.seconds:.6f}",
            f"geogrid_request_duration_seconds_count {self.requests}",
        ]
        return "\n".join(lines) + "\n"


class AccessLog:
    """One ``key=value`` line per request, written in batches a fraction of a second later.

    A logging call per request costs as much as a lookup; here a request formats its line (plain strings:
    nothing for the garbage collector to trace) and the lines go out together, as one record on the
    ``geogrid.access`` logger, each line complete with its own UTC time.
    """

    FLUSH_S = 0.25

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._second = -1
        self._prefix = ""

    def add(self, request_id: str, method: str, path: str, status: int, seconds: float) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        now = time.time()
        second = int(now)
        if second != self._second:  # the date and time to the second, formatted once a second
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        if not self._lines:
            asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)
        self._lines.append(
            f"{self._prefix}.{int((now - second) * 1000):03d}Z request_id={request_id} method={method} "
            f"path={path} status={status} ms={seconds * 1000:.3f}"
        )

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            access_log.info("\n".join(lines))


class Operations:
    """Request id (x-request-id in and out), body limits, metrics and one log line per request.

    The body is limited in size (413) and in how long the client may pause while sending it (408); a
    client that hangs up mid-body is counted as 499. Once the body is refused, what the app answers (a
    parser's 400, an error handler's 500) is replaced by that refusal, and nothing is logged as an error.
    """

    def __init__(
        self, app: Any, *, max_body_bytes: int, metrics: Metrics, body_idle_timeout_s: float = 30.0
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.body_idle_timeout_s = body_idle_timeout_s
        self.metrics = metrics
        self.access = AccessLog()
        # Ids unique across processes and restarts without a uuid per request: a random prefix + a counter.
        prefix = secrets.token_hex(4)
        self._ids = (f"{prefix}{n:08x}" for n in itertools.count())

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = ""
        length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
            elif name == b"content-length":
                length = value
        request_id = request_id or next(self._ids)
        # One dict for the request's state (its closures share it): status sent, refusal, body bytes read.
        sent: dict[str, Any] = {"status": 0, "refused": None, "received": 0, "more": True}
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if sent["refused"] is not None:  # the refusal is the answer, sent once the app is done
                    return
                sent["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif not sent["status"]:
                return
            await send(message)

        async def limited_receive() -> dict[str, Any]:
            if not sent["more"]:  # the body is in: what is left to hear is a disconnect, however late
                return await receive()
            if sent["refused"] is not None:
                raise sent["refused"]
            try:
                async with asyncio.timeout(self.body_idle_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise self._refuse(sent, BodyTimeout(self._idle(), field="body")) from None
            if message["type"] == "http.disconnect":
                raise self._refuse(sent, ClientClosedRequest("the client hung up before the body ended"))
            sent["received"] += len(message.get("body", b""))
            if sent["received"] > self.max_body:
                raise self._refuse(sent, self._too_large())
            sent["more"] = message.get("more_body", False)
            return message

        try:
            if length is not None and int(length) > self.max_body:
                self._refuse(sent, self._too_large())
        except ValueError:  # a Content-Length that is not a number
            self._refuse(sent, PayloadTooLarge("unreadable Content-Length", field="content-length"))
        try:
            if sent["refused"] is None:
                await self.app(scope, limited_receive, send_with_id)
        except Exception:
            if sent["refused"] is None:  # an unexpected error has had its 500 sent already: to the log
                raise
        finally:
            if sent["refused"] is not None and not sent["status"]:  # the client hears the refusal, not
                await problem(send, sent, sent["refused"], id_header)  # what the app made of it
            if sent["received"] > TRIM_AFTER_BYTES:  # a batch or an upload, read and parsed: its memory
                memory.trim_soon()  # goes back to the system, not into glibc's free lists
            took = time.perf_counter() - start
            status = sent["status"] or 500
            self.metrics.observe(status, took)
            self.access.add(request_id, scope["method"], scope["path"], status, took)

    @staticmethod
    def _refuse(sent: dict[str, Any], error: GeoGridError) -> GeoGridError:
        """Mark the request's body refused with ``error`` (the first refusal stands); return it to raise."""
        if sent["refused"] is None:
            sent["refused"] = error
        refused: GeoGridError = sent["refused"]
        return refused

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is over {self.max_body / 1e6:g} MB (GEOGRID_MAX_BODY_MB)", field="body"
        )

    def _idle(self) -> str:
        seconds = f"{self.body_idle_timeout_s:g}"
        return f"no part of the request body came for {seconds} s (GEOGRID_BODY_IDLE_TIMEOUT_S)"


class HeadAsGet:
    """Answer HEAD like GET without the body (FastAPI routes only GET): `curl -I`, monitors, ETag checks."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class Deadline:
    """Answer 503 for a request that runs longer than ``timeout_s``, unless a write began committing in time.

    The outcome is decided once, by :class:`geogrid.deadline.Deadline` (which the database engine asks
    before every commit that writes): if the time runs out first, the client is told 503, what the app
    sends later is dropped, and the work stops at its next checkpoint or commit, which rolls back; if a
    commit began first, the request runs on and the client gets the write's own answer.
    """

    def __init__(self, app: Any, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = {"status": 0}
        answered = False

        async def watched_send(message: dict[str, Any]) -> None:
            if answered:  # the client was told the request timed out: what the app says later is moot
                return
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            await send(message)

        with deadline.running(self.timeout_s) as current:  # the task (and its threads) inherit it
            task = asyncio.ensure_future(self.app(scope, receive, watched_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done or current.expired or not current.expire():
            # Finished; or the work timed out at a checkpoint and is sending its own 503; or a write is
            # committing: the app's own answer goes out.
            await task
            return
        answered = (
            True  # before the 503 goes out: what the app sends while it does is dropped, not a second start
        )
        if sent["status"]:  # a response under way (a long stream): cut it
            task.cancel()
        else:
            await problem(send, sent, current.error())
        # Wait for the work to end (a thread at its next checkpoint or commit, which rolls back), so that
        # what is running is what the server counts; what the app sends meanwhile is dropped.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def problem(send: Any, sent: dict[str, Any], error: GeoGridError, *extra: tuple[bytes, bytes]) -> None:
    """Send ``error`` as problem+json (with its headers and ``extra``), unless a response has begun."""
    if sent["status"]:
        return
    body = json.dumps(error.to_problem()).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers().items()]
    sent["status"] = error.status
    await send({"type": "http.response.start", "status": error.status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


class Compressed:
    """gzip for the answers a browser page loads (the dashboard's script, tiles, points, figures and the
    coverage), for clients that take it; everything else as it is — a batch lookup's megabytes go out in
    slices from a thread that stands back, not compressed on the event loop."""

    def __init__(
        self, app: Any, prefixes: tuple[str, ...], suffixes: tuple[str, ...], minimum_size: int
    ) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=5)
        self.prefixes, self.suffixes = prefixes, suffixes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(self.prefixes) or path.endswith(self.suffixes):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
