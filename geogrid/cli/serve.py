"""Serve the HTTP API, and the service's logging configuration."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from geogrid.cli.common import _state, console
from geogrid.settings import DEMO_ADMIN_KEY, OPEN_ENVIRONMENTS


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info (a line per request), warning.")] = "info",
    workers: Annotated[
        int,
        typer.Option(min=1, help="Processes sharing the port, each with its own index: about one per core."),
    ] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api import transport
    from api.main import create_app

    settings = _state(ctx).settings
    console.print(
        f"GeoGrid API on http://{host}:{port}/  (docs: /docs, lookup: /v1/lookup?lon=111.2&lat=39.85,"
        f" OGC API Features: /ogc)"
    )
    if settings.environment in OPEN_ENVIRONMENTS and settings.admin_key is None:
        console.print(
            f"{settings.environment} mode: the admin API key is {DEMO_ADMIN_KEY!r} (never in production)"
        )
    options: dict[str, Any] = {"host": host, "port": port, "access_log": False}
    options["log_config"] = log_config(log_level.upper())
    if workers == 1:
        uvicorn.run(create_app(settings), http=transport.protocol(settings), **options)
        return
    settings.check_secrets()  # here, once, rather than in every worker
    os.environ.update(settings.to_environment())  # each worker makes its app from these settings
    # A worker answers the supervisor's health pings from a thread; while start-up work (numba
    # compilation, the index build) holds the GIL on a loaded machine the pings wait, and the default
    # 5 s would have the worker killed and restarted over and over. A hung worker is replaced after 60 s.
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        workers=workers,
        http="api.transport:FromEnvironment",
        timeout_worker_healthcheck=60,
        **options,
    )


def log_config(level: str) -> dict[str, Any]:
    """Logging for the service: uvicorn's lines and GeoGrid's one line per request, key=value."""
    line = {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    stderr = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    loggers: dict[str, Any] = {
        name: {"handlers": ["default"], "level": level, "propagate": False} for name in ("uvicorn", "geogrid")
    }
    loggers["geogrid.access"] = {"handlers": ["access"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": line, "access": {"format": "%(message)s"}},  # access lines carry their time
        "handlers": {"default": {**stderr, "formatter": "line"}, "access": {**stderr, "formatter": "access"}},
        "loggers": loggers,
    }
