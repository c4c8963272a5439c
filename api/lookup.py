"""Point-in-grid lookups: one point by GET, batches by POST (JSON array, GeoJSON or CSV)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from numpy.typing import NDArray
from pydantic import BaseModel

from api.auth import reader
from api.dependencies import StateDep
from geogrid.crs import normalize_crs, wgs84_to_gcj02
from geogrid.errors import InvalidCoordinates
from geogrid.index import GridIndex

router = APIRouter(prefix="/v1", tags=["lookup"], dependencies=[Depends(reader)])
CrsName = Literal["wgs84", "gcj02", "bd09", "cgcs2000"]
CRS_NAMES = frozenset(CrsName.__args__)  # type: ignore[attr-defined]
SLICE = 1 << 20  # a batch's answer goes out a mebibyte at a time
BATCH_NICE = 10  # how far batch threads stand back from single lookups for the CPU


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


class UnitOut(BaseModel):
    """A unit's code and name."""

    code: str
    name: str


class LookupOut(BaseModel):
    """Where a point falls."""

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


def answer(
    index: GridIndex,
    lon: float,
    lat: float,
    crs: str = "wgs84",
    at: dt.date | None = None,
    snap_m: float = 0.0,
) -> bytes:
    """The JSON body of a single lookup (shared by the route and the hot path in api.hotpath)."""
    result = index.lookup(lon, lat, crs=crs, at=at, snap_m=snap_m)
    return orjson.dumps({"set": index.meta["set"], "version": index.meta["version"], **result.__dict__})


@router.get(
    "/lookup",
    response_model=LookupOut,
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
    summary="Which unit holds this point?",
)
def lookup(
    state: StateDep,
    lon: float = Query(..., ge=-180, le=180, description="Longitude (or x in a projected CRS)."),
    lat: float = Query(..., ge=-90, le=90, description="Latitude."),
    crs: CrsName = Query("wgs84", description="CRS of the point."),
    at: dt.date | None = Query(None, description="As of this date (default: today)."),
    set: str | None = Query(None, description="Boundary set (default: the configured one)."),
    snap_m: float = Query(
        0.0, ge=0, le=1000, description="Give points this close outside a unit to the nearest."
    ),
) -> Response:
    """The micro-grid holding a point, its grid, community and street; on-boundary flag and distance to the
    nearest boundary; for points outside every unit, the nearest unit and its distance."""
    return Response(answer(state.index(set, at), lon, lat, crs, at, snap_m), media_type="application/json")


ARROW = "application/vnd.apache.arrow.stream"


@router.post(
    "/lookup",
    summary="Which units hold these points? (JSON array, GeoJSON, CSV or Arrow)",
    openapi_extra={
        "requestBody": {
            "description": "A JSON array of {lon, lat}, a GeoJSON FeatureCollection of points, CSV with lon and "
            f"lat columns, or an Arrow IPC stream ({ARROW}) with lon and lat columns.",
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
    crs: CrsName = Query("wgs84"),
    at: dt.date | None = Query(None),
    set: str | None = Query(None),
    snap_m: float = Query(0.0, ge=0, le=1000),
) -> Response:
    """Batch lookup, answered in the format it was asked in; a point that cannot be read gets its own error
    (the other points are answered). CSV and Arrow keep every column sent and add unit_code, on_boundary
    and error."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    chunks = [chunk async for chunk in request.stream()]  # joined in the batch thread, off the event loop
    # In a batch thread: a million points take a fraction of a second that single lookups need not wait.
    content, media_type = await asyncio.get_running_loop().run_in_executor(
        BATCHES,
        partial(_batch, state.index, state.settings.max_batch_points, kind, chunks, crs, at, set, snap_m),
    )
    if len(content) <= SLICE:
        return Response(content, media_type=media_type)
    return StreamingResponse(  # in slices, so that single lookups are answered between them
        _slices(memoryview(content)), media_type=media_type, headers={"content-length": str(len(content))}
    )


async def _slices(content: memoryview) -> AsyncIterator[memoryview]:
    for start in range(0, len(content), SLICE):
        yield content[start : start + SLICE]


def _batch(
    indexes: Callable[[str | None, dt.date | None], GridIndex],
    limit: int,
    kind: str,
    chunks: list[bytes],
    crs: str,
    at: dt.date | None,
    set_name: str | None,
    snap_m: float,
) -> tuple[bytes, str]:
    """A batch lookup's response body and media type, in the format of the request's body."""
    body = b"".join(chunks)
    index = indexes(set_name, at)
    if kind in ("text/csv", ARROW):
        table = _read_csv(body) if kind == "text/csv" else _read_arrow(body)
        _check_size(table.num_rows, limit)
        out = _lookup_table(index, table, crs, snap_m)
        sink = pa.BufferOutputStream()
        if kind == "text/csv":
            _write_csv(out, sink)
        else:
            with pa.ipc.new_stream(sink, out.schema) as writer:
                writer.write_table(out)
        return sink.getvalue().to_pybytes(), kind
    try:
        payload = json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        raise InvalidCoordinates(
            f"the body is not JSON: {exc.msg} at character {exc.pos}", field="body"
        ) from exc
    if isinstance(payload, dict) and payload.get("type") == "FeatureCollection":
        features = payload.get("features") or []
        _check_size(len(features), limit)
        fx = [_point(f, 0) for f in features]
        fy = [_point(f, 1) for f in features]
        codes, on, errors = _assign(index, _floats(fx), _floats(fy), crs, snap_m, lambda i: (fx[i], fy[i]))
        for feature, code, flag, error in zip(
            features, codes.to_pylist(), on.tolist(), errors.to_pylist(), strict=True
        ):
            props = feature.setdefault("properties", {}) or {}
            feature["properties"] = {**props, "unit_code": code, "on_boundary": flag}
            if error:
                feature["properties"]["error"] = error
        return json.dumps(payload, ensure_ascii=False).encode(), "application/geo+json"
    points = payload.get("points") if isinstance(payload, dict) else payload
    if not isinstance(points, list):
        raise InvalidCoordinates(
            "send a JSON array of {lon, lat}, a GeoJSON FeatureCollection, CSV or Arrow", field="body"
        )
    _check_size(len(points), limit)
    xs = [p.get("lon") if isinstance(p, dict) else None for p in points]
    ys = [p.get("lat") if isinstance(p, dict) else None for p in points]
    codes, on, errors = _assign(index, _floats(xs), _floats(ys), crs, snap_m, lambda i: (xs[i], ys[i]))
    results = [
        {"index": i, "unit_code": c, "on_boundary": b, **({"error": e} if e else {})}
        for i, (c, b, e) in enumerate(zip(codes.to_pylist(), on.tolist(), errors.to_pylist(), strict=True))
    ]
    body_out = {"set": index.meta["set"], "version": index.meta["version"], "results": results}
    return json.dumps(body_out, ensure_ascii=False).encode(), "application/json"


def _point(feature: Any, axis: int) -> Any:
    try:
        geometry = feature["geometry"]
        return geometry["coordinates"][axis] if geometry["type"] == "Point" else None
    except (TypeError, KeyError, IndexError):
        return None


def _check_size(n: int, limit: int) -> None:
    if n > limit:
        raise InvalidCoordinates(f"{n:,} points in one request; the limit is {limit:,}", field="body")


def _read_csv(body: bytes) -> pa.Table:
    """A CSV body with every column as text, so what is echoed back is exactly what was sent."""
    header = body.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    try:
        names = next(csv.reader([header.rstrip("\r")]))
        types = dict.fromkeys(names, pa.string())
        return pa_csv.read_csv(
            pa.py_buffer(body),
            convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, StopIteration) as exc:
        raise InvalidCoordinates(f"the CSV cannot be read: {exc}", field="body") from None


def _read_arrow(body: bytes) -> pa.Table:
    try:
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidCoordinates(f"the body is not an Arrow IPC stream: {exc}", field="body") from None


def _write_csv(table: pa.Table, sink: pa.BufferOutputStream) -> None:
    """CSV quoted only where a value needs it (Arrow alone quotes every text value, or none)."""
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(table.column_names)
    sink.write(header.getvalue().encode())
    try:
        body = pa.BufferOutputStream()
        pa_csv.write_csv(table, body, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowInvalid:  # a value holds a comma, quote or line break: quote the text columns
        body = pa.BufferOutputStream()
        pa_csv.write_csv(table, body, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    sink.write(body.getvalue())


def _lookup_table(index: GridIndex, table: pa.Table, crs: str, snap_m: float) -> pa.Table:
    """The table with unit_code, on_boundary and error appended."""
    names = {c.lower(): c for c in table.column_names}
    lon = next((names[c] for c in ("lon", "lng", "longitude", "x") if c in names), None)
    lat = next((names[c] for c in ("lat", "latitude", "y") if c in names), None)
    if lon is None or lat is None:
        raise InvalidCoordinates("the table needs lon and lat columns", field="lon" if lon is None else "lat")
    x_col, y_col = table[lon], table[lat]
    codes, on, errors = _assign(
        index,
        _column_floats(x_col),
        _column_floats(y_col),
        crs,
        snap_m,
        lambda i: (x_col[int(i)].as_py(), y_col[int(i)].as_py()),
    )
    return (
        table.append_column("unit_code", codes)
        .append_column("on_boundary", pa.array(on))
        .append_column("error", errors)
    )


def _floats(values: list[Any]) -> NDArray[np.float64]:
    """Numbers from JSON values; anything else becomes NaN (and that point gets an error)."""
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)


def _column_floats(column: pa.ChunkedArray) -> NDArray[np.float64]:
    """Numbers from a table column (text or numeric); what is not a number becomes NaN."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return pc.fill_null(pc.cast(column, pa.float64()), float("nan")).to_numpy()
    try:
        return pc.cast(column, pa.float64()).to_numpy()  # text that is all numbers: the fast way
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _floats(column.to_pylist())


def _assign(
    index: GridIndex,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    crs: str,
    snap_m: float,
    raw: Callable[[int], tuple[Any, Any]],
) -> tuple[pa.DictionaryArray, NDArray[np.bool_], pa.DictionaryArray]:
    """Unit codes, on-boundary flags and per-point errors; ``raw(i)`` gives point i as sent, for its error."""
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if normalize_crs(crs) in CRS_NAMES:
        bad |= (np.abs(x) > 180) | (np.abs(y) > 90)
    ranks = np.full(len(x), -1, dtype=np.int32)
    on = np.zeros(len(x), dtype=bool)
    if bad.any():
        good = ~bad
        if good.any():
            result = index.assign(x[good], y[good], crs=crs, snap_m=snap_m)
            ranks[good], on[good] = result.rank, result.on_boundary
    elif len(x):
        result = index.assign(x, y, crs=crs, snap_m=snap_m)
        ranks, on = result.rank.astype(np.int32, copy=False), result.on_boundary
    # Outside every unit: null (JSON null, Arrow null, an empty CSV cell), as GET's "unit": null.
    dictionary = pa.array(index.codes.tolist(), pa.string())
    codes = pa.DictionaryArray.from_arrays(pa.array(ranks, mask=ranks < 0), dictionary)
    failed = np.flatnonzero(bad)
    messages = [
        f"point {i}: lon/lat must be numbers within range, got {sent[0]!r}, {sent[1]!r}"
        for i in failed
        for sent in [raw(int(i))]
    ]
    which = np.zeros(len(x), dtype=np.int32)
    which[failed] = np.arange(1, len(failed) + 1, dtype=np.int32)
    errors = pa.DictionaryArray.from_arrays(which, pa.array(["", *messages], pa.string()))
    return codes, on, errors
