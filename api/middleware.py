"""One ASGI middleware around every request: request id, body size limit, timeout, metrics and the log line."""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
import uuid
from typing import Any

from geogrid.errors import GeoGridError, PayloadTooLarge, RequestTimeout

log = logging.getLogger("geogrid.api")
Scope = dict[str, Any]
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


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


class Operations:
    """Request id (x-request-id in and out), body limit (413), timeout (503), metrics and one log line."""

    def __init__(self, app: Any, *, max_body_bytes: int, timeout_s: float, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.timeout_s = timeout_s
        self.metrics = metrics

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
        request_id = request_id or uuid.uuid4().hex[:16]
        sent = {"status": 0}
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise self._too_large()
            return message

        try:
            if length is not None and int(length) > self.max_body:
                raise self._too_large()
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, limited_receive, send_with_id)
        except TimeoutError:
            await self._problem(
                send_with_id, sent, RequestTimeout(f"the request took over {self.timeout_s:g} s")
            )
        except (PayloadTooLarge, ValueError) as exc:  # ValueError: a Content-Length that is not a number
            error = exc if isinstance(exc, GeoGridError) else PayloadTooLarge("unreadable Content-Length")
            await self._problem(send_with_id, sent, error)
        took = time.perf_counter() - start
        self.metrics.observe(sent["status"], took)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "request_id=%s method=%s path=%s status=%s ms=%.3f",
                request_id,
                scope["method"],
                scope["path"],
                sent["status"],
                took * 1000,
            )

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is over {self.max_body / 1e6:g} MB (GEOGRID_MAX_BODY_MB)", field="body"
        )

    @staticmethod
    async def _problem(send: Any, sent: dict[str, int], error: GeoGridError) -> None:
        if sent["status"]:  # the response has begun; all that can be done is to stop it
            return
        body = json.dumps(error.to_problem()).encode()
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
