"""The hot path: well-formed ``GET /v1/lookup`` requests answered straight from the index.

FastAPI's per-request machinery (routing, dependency injection, validation) costs more than the lookup
itself. This ASGI middleware answers a lookup whose parameters parse cleanly with the same function the
route uses (:func:`api.lookup.answer`) and the same access rules (:func:`api.auth.read_access`), a CRS
in any spelling :func:`geogrid.crs.normalize_crs` takes for wgs84, gcj02, bd09 or cgcs2000 included;
anything else -- an unknown parameter (even the ``_`` cache-buster), an EPSG code of another CRS, a bad
value, an error of any kind -- goes to the FastAPI route, which gives the documented answer or problem.
The two paths return the same bytes (tests/api/test_service.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope

from api.auth import RateLimiter, key_of, read_access
from api.batch import CRS_NAMES
from api.lookup import answer, sees_phones
from api.state import ServiceState
from geogrid.crs import named_crs

PATH = "/v1/lookup"
PARAMS = frozenset({"lon", "lat", "crs", "at", "set", "snap_m"})
HEADERS = [(b"content-type", b"application/json")]
NUMBER = re.compile(r"-?\d{1,12}(?:\.\d{1,20})?", re.ASCII)  # float() reads other digits too
LON_LAT = re.compile(rb"lon=(%(n)s)&lat=(%(n)s)" % {b"n": NUMBER.pattern.encode()})
DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


class HotLookup:
    """Answer clean ``GET /v1/lookup`` requests without FastAPI; pass every other request through."""

    def __init__(self, app: Any, *, service: Callable[[], ServiceState], limiter: Callable[[], RateLimiter]):
        self.app = app
        self.service = service
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            body = self._answer(scope)
            if body is not None:
                headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> bytes | None:
        """The response body, or None to let the route handle the request."""
        try:
            plain = LON_LAT.fullmatch(scope["query_string"])
            if plain is not None:  # the usual request: lon and lat, nothing else
                lon, lat = float(plain[1]), float(plain[2])
                snap_m, crs, at, set_name = 0.0, "wgs84", None, None
            else:
                params = _params(scope["query_string"])
                if not params.keys() <= PARAMS or not params.keys() >= {"lon", "lat"}:
                    return None
                # Only the plain forms are taken here (FastAPI also reads 1e2, dates as timestamps ...).
                if not all(NUMBER.fullmatch(params.get(k, "0")) for k in ("lon", "lat", "snap_m")):
                    return None
                lon, lat = float(params["lon"]), float(params["lat"])
                snap_m = float(params.get("snap_m", 0.0))
                crs, set_name = params.get("crs", "wgs84"), params.get("set")
                if crs not in CRS_NAMES:  # another spelling (GCJ-02, EPSG:4326 ...), or the route's
                    crs = named_crs(crs) or ""  # to decide (EPSG:N asks pyproj: not on the event loop)
                if "at" in params and not DATE.fullmatch(params["at"]):
                    return None
                at = dt.date.fromisoformat(params["at"]) if "at" in params else None
            if not (-180 <= lon <= 180 and -90 <= lat <= 90 and 0 <= snap_m <= 1000 and crs in CRS_NAMES):
                return None
            authorization = x_api_key = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                elif name == b"x-api-key":
                    x_api_key = value.decode("latin-1")
            client = scope["client"][0] if scope.get("client") else "unknown"
            state = self.service()
            # From memory first: what needs the database goes to the route before a rate-limit token is taken
            index = state.loaded_index(set_name, at)
            directory = state.directory(set_name, at, build=False)
            key = key_of(authorization, x_api_key)
            principal = read_access(state, self.limiter(), key, client, resolve=False)
            return answer(index, lon, lat, crs, at, snap_m, directory, sees_phones(principal))
        except Exception:  # any doubt: the route decides, and reports errors in the documented shape
            return None


def _params(query: bytes) -> dict[str, str]:
    """Query parameters: plain ones split directly, anything encoded through urllib."""
    text = query.decode("ascii")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, strict_parsing=True))
    return dict(pair.split("=", 1) for pair in text.split("&"))
