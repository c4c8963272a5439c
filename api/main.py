"""Assemble the FastAPI application: state, routes, errors, operations."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from api import (
    boundaries,
    coverage,
    dashboard,
    drafts,
    errors,
    geocode,
    incidents,
    keys,
    lookup,
    memory,
    ogc,
    open311,
    pages,
    people,
    tiles,
)
from api.auth import RateLimiter
from api.dependencies import StateDep
from api.hotpath import HotLookup
from api.middleware import Compressed, Deadline, HeadAsGet, Metrics, Operations
from api.state import ServiceState
from geogrid import __version__
from geogrid.errors import GeoGridError
from geogrid.settings import Settings

log = logging.getLogger("geogrid.api")
GZIP_FROM = 1400  # bytes: a smaller body fits one packet as it is
GZIPPED = ("/static/", "/tiles/", "/v1/incidents/", "/dashboard", "/docs", "/redoc", "/openapi.json")


class GeoGridAPI(FastAPI):
    """FastAPI with GeoGrid's operations middleware and the lookup hot path in front of all of it.

    ``front`` (set by :func:`create_app`) sees every request first: request ids, limits, metrics and the
    access log; then the hot path answers clean lookups, and everything else reaches FastAPI.
    """

    front: Callable[[Scope, Receive, Send], Awaitable[None]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)


def create_app(settings: Settings | None = None) -> GeoGridAPI:
    """Create the GeoGrid API for ``settings``; the index of the version in force is loaded at start-up."""
    settings = settings or Settings()
    settings.check_secrets()  # refuse a default secret before anything listens

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        memory.limit_arenas()  # before the threads start: freed memory is not parked in 16 arenas
        lookup.start_batch_threads()
        service = ServiceState(settings)
        app.state.service = service
        try:
            service.index()  # read the versions and load (and warm) the index in force
            service.directory()  # and who is in post today, so lookups name them from the first one
            service.warm_addresses()  # the address matcher (a few seconds) is built beside the first requests
        except GeoGridError as exc:  # no set or version yet: the service still starts, readyz says why
            log.warning("no index loaded at start-up: %s", exc)
        # What start-up made lives as long as the process: keep it out of the garbage collector's full
        # sweeps, which otherwise stall a request for tens of milliseconds now and then.
        gc.freeze()
        service.start_escalation()  # the periodic job that escalates overdue incidents one level up
        yield
        service.close()

    app = GeoGridAPI(
        title="GeoGrid",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from api/pages.py, with their assets (no CDN)
        redoc_url=None,
        description="Point-in-grid lookup and grid boundaries for grid-based governance.",
        # FastAPI's OpenTelemetry hooks cost a check per request; on only when asked for.
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.metrics = Metrics()
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.failed_keys = RateLimiter(
        settings.failed_keys_per_minute, "unknown or revoked API keys a minute"
    )
    errors.install(app)
    for module in (
        lookup,
        geocode,
        incidents,
        open311,
        boundaries,
        drafts,
        ogc,
        people,
        coverage,
        keys,
        tiles,
        dashboard,
        pages,
    ):
        app.include_router(module.router)
    # In front of FastAPI: operations around everything, then the hot path; it answers in microseconds
    # without awaiting, so only what reaches FastAPI needs a deadline.
    app.front = Operations(
        HeadAsGet(
            HotLookup(
                Deadline(
                    Compressed(  # a page's answers: a third of their size or less
                        partial(FastAPI.__call__, app), GZIPPED, ("/coverage",), minimum_size=GZIP_FROM
                    ),
                    timeout_s=settings.request_timeout_s,
                ),
                service=lambda: app.state.service,
                limiter=lambda: app.state.limiter,
            )
        ),
        max_body_bytes=int(settings.max_body_mb * 1e6),
        body_idle_timeout_s=settings.body_idle_timeout_s,
        metrics=app.state.metrics,
    )

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["operations"])
    def readyz(state: StateDep, response: Response) -> dict[str, object]:
        """Readiness: the database answers and an index is loaded (with its set and version)."""
        try:
            with state.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            database = "ok"
        except Exception as exc:  # report, never raise: this is the health endpoint
            database = f"unreachable: {type(exc).__name__}"
        loaded = [{"set": s, "version": v} for s, v in state.loaded]
        ready = database == "ok" and bool(loaded)
        response.status_code = 200 if ready else 503
        return {"ready": ready, "database": database, "indexes": loaded}

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> str:
        """Prometheus text exposition: requests by status, errors, a latency histogram."""
        exposition: str = app.state.metrics.exposition()
        return exposition

    return app
