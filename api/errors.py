"""Every error as application/problem+json (RFC 9457), mapped in one place; no stack traces to clients."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geogrid.errors import DatabaseUnavailable, GeoGridError

PROBLEM = "application/problem+json"
log = logging.getLogger("geogrid.api")


def problem(status: int, title: str, detail: str, type_: str = "about:blank", **where: Any) -> JSONResponse:
    """A problem+json response."""
    body = {"type": type_, "title": title, "status": status, "detail": detail, **where}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(GeoGridError)
    async def geogrid_error(request: Request, exc: GeoGridError) -> JSONResponse:
        body = exc.to_problem()
        return JSONResponse(body, status_code=exc.status, media_type=PROBLEM, headers=exc.headers() or None)

    @app.exception_handler(OperationalError)  # connection refused, lost, timed out; SQLite locked
    async def database_away(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        error = DatabaseUnavailable(
            "the database is not answering; lookups of known callers go on from memory, try this again shortly"
        )
        return await geogrid_error(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path"))
        return problem(
            422,
            "Invalid request",
            f"{where or 'request'}: {first.get('msg', 'invalid')}",
            "https://geogrid.dev/problems/invalid-request",
            parameter=where or None,
            errors=[
                {"parameter": ".".join(map(str, e.get("loc", ()))), "message": e.get("msg")} for e in errors
            ],
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, "HTTP error", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the server could not complete the request; it has been logged")
