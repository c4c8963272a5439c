"""Assemble the FastAPI application: state, routes, errors, operations."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy import text

from api import boundaries, errors, lookup, ogc
from api.dependencies import StateDep
from api.state import ServiceState
from geogrid import __version__
from geogrid.errors import GeoGridError
from geogrid.settings import Settings

log = logging.getLogger("geogrid.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Create the GeoGrid API for ``settings``; the index of the version in force is loaded at start-up."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = ServiceState(settings)
        app.state.service = service
        try:
            service.index()
        except GeoGridError as exc:  # no set or version yet: the service still starts, readyz says why
            log.warning("no index loaded at start-up: %s", exc)
        yield
        service.store.engine.dispose()

    app = FastAPI(
        title="GeoGrid",
        version=__version__,
        lifespan=lifespan,
        description="Point-in-grid lookup and grid boundaries for grid-based governance.",
    )
    app.state.metrics = {"requests": 0, "errors": 0, "seconds": 0.0}
    errors.install(app)
    app.include_router(lookup.router)
    app.include_router(boundaries.router)
    app.include_router(ogc.router)

    @app.middleware("http")
    async def request_ids(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        start = time.perf_counter()
        response = await call_next(request)
        took = time.perf_counter() - start
        metrics = app.state.metrics
        metrics["requests"] += 1
        metrics["errors"] += response.status_code >= 500
        metrics["seconds"] += took
        response.headers["x-request-id"] = request_id
        log.info(
            "request_id=%s method=%s path=%s status=%s ms=%.2f",
            request_id,
            request.method,
            request.url.path,
            response.status_code,
            took * 1000,
        )
        return response

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
        """Prometheus text exposition of request counters."""
        m = app.state.metrics
        return (
            "# TYPE geogrid_requests_total counter\n"
            f"geogrid_requests_total {m['requests']}\n"
            "# TYPE geogrid_request_errors_total counter\n"
            f"geogrid_request_errors_total {m['errors']}\n"
            "# TYPE geogrid_request_seconds_total counter\n"
            f"geogrid_request_seconds_total {m['seconds']:.6f}\n"
        )

    return app
