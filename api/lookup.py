"""Point-in-grid lookups: one point by GET, batches by POST (JSON array, GeoJSON, CSV or Arrow).

Both take what the CLI takes: every CRS spelling :func:`geogrid.crs.normalize_crs` knows, the lon/lat
column names of :mod:`geogrid.io` (``lng``, ``经度`` ...), CSV in UTF-8 (with or without a BOM) or
GBK/GB18030, and rows numbered from 1. A coordinate is an ASCII decimal number, finite and in range; a
value that is not gets an answer naming it (and a hint when lon and lat look swapped).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from api.auth import reader
from api.batch import ARROW, Batch, PointCounter, geographic
from api.dependencies import StateDep
from geogrid.access import Action, Principal
from geogrid.coordinates import as_number, echo, out_of_range
from geogrid.crs import normalize_crs, wgs84_to_gcj02
from geogrid.errors import TooManyPoints, UnknownCRS
from geogrid.index import GridIndex
from geogrid.io import LAT_NAMES, LON_NAMES
from geogrid.people import Directory

router = APIRouter(prefix="/v1", tags=["lookup"], dependencies=[Depends(reader)])
SLICE = 1 << 20  # a batch's answer goes out a mebibyte at a time
BATCH_NICE = 10  # how far batch threads stand back from single lookups for the CPU
CACHE_BUSTER = "_"  # a query parameter browsers and proxies' users add; taken and ignored


def _stand_back() -> None:
    """Lower this thread's CPU priority (Linux keeps a nice value per thread), so that on a busy CPU the
    event loop's single lookups go first; numba's worker threads, started from here, inherit it."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BATCH_NICE)


BATCHES = ThreadPoolExecutor(max_workers=2, thread_name_prefix="geogrid-batch", initializer=_stand_back)


def start_batch_threads() -> None:
    """Start numba's worker threads from a batch thread (a first parallel call), so they stand back too."""
    BATCHES.submit(wgs84_to_gcj02, np.full(2, 111.0), np.full(2, 39.0)).result()
    PointCounter("application/json").feed(b"[]")  # compiled (or loaded from numba's cache) before a batch


# ---- query parameters ----------------------------------------------------------------------------
def _decimal(value: Any) -> Any:
    """A query number: ASCII decimal and finite (``float()`` also reads ``1_11.2``, ``NaN``, ``1e400``
    and other scripts' digits)."""
    if not isinstance(value, str):
        return value
    number = as_number(value)
    if math.isfinite(number):
        return number
    try:
        number = float(value)
    except ValueError:
        raise PydanticCustomError("number", "not a number: {sent}", {"sent": echo(value)}) from None
    if not math.isfinite(number):
        raise PydanticCustomError("finite", "not a finite number: {sent}", {"sent": echo(value)})
    raise PydanticCustomError("decimal", "not a plain decimal number: {sent}", {"sent": echo(value)})


def _crs(value: str) -> str:
    try:
        return normalize_crs(value)
    except UnknownCRS as exc:
        raise PydanticCustomError("crs", "{detail}", {"detail": exc.detail}) from None


Decimal = Annotated[float, BeforeValidator(_decimal)]
Crs = Annotated[str, AfterValidator(_crs)]
# The bounds before the validator, so that OpenAPI shows them as minimum and maximum.
SnapM = Annotated[float, Field(ge=0, le=1000), BeforeValidator(_decimal)]
CRS_HELP = "CRS of the points: wgs84, gcj02 (Amap, Tencent, WeChat), bd09 (Baidu), cgcs2000 or EPSG:N, "
CRS_HELP += "in any spelling the CLI takes (GCJ-02, EPSG:4490 ...)."
SET_HELP = "Boundary set (default: the configured one)."
SNAP_HELP = "Give points this close (metres) outside a unit to the nearest unit."
COLUMN_HELP = "The {0} column (CSV, Arrow) or key (JSON) when its name is not one the CLI finds itself."


def known_parameters(*names: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing (422) a query parameter the route does not take, so it is never ignored."""
    allowed = frozenset(names) | {CACHE_BUSTER}

    async def check(request: Request) -> None:  # async: no I/O, so no hop to the threadpool
        unknown = next((k for k in request.query_params if k not in allowed), None)
        if unknown is not None:
            takes = ", ".join(n for n in names)
            detail = f"unknown parameter (this takes {takes}; `_` is ignored)"
            raise RequestValidationError([{"loc": ("query", echo(unknown)[1:-1]), "msg": detail}])

    return check


class UnitOut(BaseModel):
    """A unit's code and name."""

    code: str
    name: str


class PersonOut(BaseModel):
    """Someone in a post for the point's micro-grid or grid on the day asked."""

    name: str
    role: str = Field(description="leader, worker, building_head, party_household, liaison ...")
    role_label: str = Field(description="The role in Chinese: 网格长, 网格员, 楼栋长 ...")
    phone: str = Field(description="Masked (138****1234) unless the caller's role may see phones.")
    unit_code: str
    buildings: int = Field(description='How many buildings the post answers for ("1+X").')


class LookupOut(BaseModel):
    """Where a point falls, and who answers for it."""

    set: str
    version: int
    lon: float
    lat: float
    unit: UnitOut | None
    level: str | None
    parents: dict[str, UnitOut]
    on_boundary: bool
    distance_to_boundary_m: float | None
    nearest: UnitOut | None = None
    nearest_distance_m: float | None = None
    snapped: bool = False
    people: list[PersonOut] = Field(
        default_factory=list, description="Who is in post for the micro-grid, then for its grid, on that day."
    )


def answer(
    index: GridIndex,
    lon: float,
    lat: float,
    crs: str = "wgs84",
    at: dt.date | None = None,
    snap_m: float = 0.0,
    directory: Directory | None = None,
    full_phones: bool = False,
) -> bytes:
    """The JSON body of a single lookup (shared by the route and the hot path in api.hotpath)."""
    result = index.lookup(lon, lat, crs=crs, at=at, snap_m=snap_m)
    people = b"[]"
    if directory is not None and result.unit is not None:
        grid = result.parents.get("grid")
        people = directory.json((result.unit.code, grid.code if grid else None), full_phones=full_phones)
    return orjson.dumps(
        {
            "set": index.meta["set"],
            "version": index.meta["version"],
            **result.__dict__,
            "people": orjson.Fragment(people),  # serialised when the directory was built
        }
    )


def sees_phones(principal: Principal | None) -> bool:
    """True when the caller's role may see full phone numbers (others get 138****1234)."""
    return principal is not None and principal.may(Action.contact)


GET_PARAMETERS = ("lon", "lat", "crs", "at", "set", "snap_m")


@router.get(
    "/lookup",
    response_model=LookupOut,
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
    summary="Which unit holds this point?",
    dependencies=[Depends(known_parameters(*GET_PARAMETERS))],
)
def lookup(
    state: StateDep,
    principal: Annotated[Principal | None, Depends(reader)],
    lon: Annotated[Decimal, Query(description="Longitude, -180..180 (or x in a projected CRS).")],
    lat: Annotated[Decimal, Query(description="Latitude, -90..90 (or y in a projected CRS).")],
    crs: Annotated[Crs, Query(description=CRS_HELP)] = "wgs84",
    at: Annotated[dt.date | None, Query(description="As of this date (default: today).")] = None,
    set: Annotated[str | None, Query(max_length=100, description=SET_HELP)] = None,
    snap_m: Annotated[SnapM, Query(description=SNAP_HELP)] = 0.0,
) -> Response:
    """The micro-grid holding a point, its grid, community and street; on-boundary flag and distance to the
    nearest boundary; for points outside every unit, the nearest unit and its distance; and the people in
    post for the micro-grid and its grid that day (phones masked unless the caller's role may see them).
    Any other query parameter is refused (422), except ``_``, a cache-buster."""
    if geographic(crs) and not (abs(lon) <= 180 and abs(lat) <= 90):
        name = "lon" if abs(lon) > 180 else "lat"
        raise RequestValidationError([{"loc": ("query", name), "msg": out_of_range(lon, lat)}])
    index = state.index(set, at)
    body = answer(index, lon, lat, crs, at, snap_m, state.directory(set, at), sees_phones(principal))
    return Response(body, media_type="application/json")


BATCH_PARAMETERS = ("crs", "at", "set", "snap_m", "lon_col", "lat_col", "leader")
LEADER_HELP = "Add the grid leader's name (网格长) in force that day, as grid_leader."


@router.post(
    "/lookup",
    summary="Which units hold these points? (JSON array, GeoJSON, CSV or Arrow)",
    dependencies=[Depends(known_parameters(*BATCH_PARAMETERS))],
    openapi_extra={
        "requestBody": {
            "description": "A JSON array of {lon, lat}, a GeoJSON FeatureCollection of points, CSV with lon and "
            f"lat columns, or an Arrow IPC stream ({ARROW}) with lon and lat columns. Coordinates are "
            f"found under {'/'.join(LON_NAMES)} and {'/'.join(LAT_NAMES)} (or lon_col/lat_col). CSV may be "
            "UTF-8 (with or without a BOM) or GBK/GB18030, detected unless the content-type names a charset.",
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "application/geo+json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                ARROW: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def lookup_batch(
    request: Request,
    state: StateDep,
    crs: Annotated[Crs, Query(description=CRS_HELP)] = "wgs84",
    at: Annotated[dt.date | None, Query(description="As of this date (default: today).")] = None,
    set: Annotated[str | None, Query(max_length=100, description=SET_HELP)] = None,
    snap_m: Annotated[SnapM, Query(description=SNAP_HELP)] = 0.0,
    lon_col: Annotated[str | None, Query(max_length=200, description=COLUMN_HELP.format("lon"))] = None,
    lat_col: Annotated[str | None, Query(max_length=200, description=COLUMN_HELP.format("lat"))] = None,
    leader: Annotated[bool, Query(description=LEADER_HELP)] = False,
) -> Response:
    """Batch lookup, answered in the format it was asked in; a point that cannot be read gets its own error
    (the other points are answered). Points are numbered from 1 in errors ("point 3", "row 3", "feature
    3"; a CSV's header is not a row) and in each JSON result's ``row``; its ``index`` is the point's
    0-based position in the array sent. CSV and Arrow keep every column sent and add unit_code,
    on_boundary and error; CSV comes back as UTF-8 (said in the content-type), with a byte-order mark
    when the request had one or was GBK, as Excel needs. More than GEOGRID_MAX_BATCH_POINTS points are
    refused (413) while the body is still arriving."""
    media = request.headers.get("content-type", "application/json").split(";")
    kind = media[0].strip().lower()
    charset = next(
        (p.split("=", 1)[1].strip(" \"'") for p in media[1:] if p.strip().lower().startswith("charset=")),
        None,
    )
    limit = state.settings.max_batch_points
    counter = PointCounter(kind, charset)
    chunks = []
    async for chunk in request.stream():  # joined in the batch thread, off the event loop
        chunks.append(chunk)
        counter.feed(chunk)
        if refused := counter.over(limit):  # before the body is parsed, or even all here
            raise TooManyPoints(refused, field="body")
    # In a batch thread: a million points take a fraction of a second that single lookups need not wait.
    directory = partial(state.directory, set, at) if leader else None
    job = Batch(partial(state.index, set, at), limit, crs, snap_m, lon_col, lat_col, directory)
    content, media_type = await asyncio.get_running_loop().run_in_executor(
        BATCHES, partial(job.run, kind, charset, chunks)
    )
    if len(content) <= SLICE:
        return Response(content, media_type=media_type)
    return StreamingResponse(  # in slices, so that single lookups are answered between them
        _slices(memoryview(content)), media_type=media_type, headers={"content-length": str(len(content))}
    )


async def _slices(content: memoryview) -> AsyncIterator[memoryview]:
    for start in range(0, len(content), SLICE):
        yield content[start : start + SLICE]
