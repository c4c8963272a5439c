"""Point-in-grid lookups: one point by GET, batches by POST (JSON array, GeoJSON or CSV)."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from api.auth import reader
from api.dependencies import StateDep
from api.state import ServiceState
from geogrid.crs import normalize_crs
from geogrid.errors import InvalidCoordinates
from geogrid.index import GridIndex

router = APIRouter(prefix="/v1", tags=["lookup"], dependencies=[Depends(reader)])
CrsName = Literal["wgs84", "gcj02", "bd09", "cgcs2000"]
CRS_NAMES = frozenset(CrsName.__args__)  # type: ignore[attr-defined]


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
    state: ServiceState,
    lon: float,
    lat: float,
    crs: str = "wgs84",
    at: dt.date | None = None,
    set_name: str | None = None,
    snap_m: float = 0.0,
) -> bytes:
    """The JSON body of a single lookup (shared by the route and the hot path in api.hotpath)."""
    index = state.index(set_name, at)
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
    return Response(answer(state, lon, lat, crs, at, set, snap_m), media_type="application/json")


@router.post("/lookup", summary="Which units hold these points? (JSON array, GeoJSON or CSV)")
async def lookup_batch(
    request: Request,
    state: StateDep,
    crs: CrsName = Query("wgs84"),
    at: dt.date | None = Query(None),
    set: str | None = Query(None),
    snap_m: float = Query(0.0, ge=0, le=1000),
) -> Response:
    """Batch lookup, answered in the format it was asked in; a point that cannot be read gets its own error."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    body = await request.body()
    index = state.index(set, at)
    limit = state.settings.max_batch_points
    if kind == "text/csv":
        table = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
        _check_size(len(table), limit)
        lon_col = next((c for c in table.columns if c.lower() in ("lon", "lng", "longitude", "x")), None)
        lat_col = next((c for c in table.columns if c.lower() in ("lat", "latitude", "y")), None)
        if lon_col is None or lat_col is None:
            raise InvalidCoordinates(
                "the CSV needs lon and lat columns", field="lon" if lon_col is None else "lat"
            )
        out = _assign(index, table[lon_col].to_numpy(), table[lat_col].to_numpy(), crs, snap_m)
        table = table.assign(unit_code=out["code"], on_boundary=out["on_boundary"], error=out["error"])
        return Response(table.to_csv(index=False), media_type="text/csv")
    try:
        payload = json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        raise InvalidCoordinates(
            f"the body is not JSON: {exc.msg} at character {exc.pos}", field="body"
        ) from exc
    if isinstance(payload, dict) and payload.get("type") == "FeatureCollection":
        features = payload.get("features") or []
        _check_size(len(features), limit)
        fx = np.array([_point(f, 0) for f in features], dtype=object)
        fy = np.array([_point(f, 1) for f in features], dtype=object)
        out = _assign(index, fx, fy, crs, snap_m)
        for feature, code, on, error in zip(
            features, out["code"], out["on_boundary"], out["error"], strict=True
        ):
            props = feature.setdefault("properties", {}) or {}
            feature["properties"] = {**props, "unit_code": code, "on_boundary": bool(on)}
            if error:
                feature["properties"]["error"] = error
        return Response(json.dumps(payload, ensure_ascii=False), media_type="application/geo+json")
    points = payload.get("points") if isinstance(payload, dict) else payload
    if not isinstance(points, list):
        raise InvalidCoordinates(
            "send a JSON array of {lon, lat}, a GeoJSON FeatureCollection or CSV", field="body"
        )
    _check_size(len(points), limit)
    xs = np.array([p.get("lon") if isinstance(p, dict) else None for p in points], dtype=object)
    ys = np.array([p.get("lat") if isinstance(p, dict) else None for p in points], dtype=object)
    out = _assign(index, xs, ys, crs, snap_m)
    results = [
        {"index": i, "unit_code": c, "on_boundary": bool(b), **({"error": e} if e else {})}
        for i, (c, b, e) in enumerate(zip(out["code"], out["on_boundary"], out["error"], strict=True))
    ]
    body_out = {"set": index.meta["set"], "version": index.meta["version"], "results": results}
    return Response(json.dumps(body_out, ensure_ascii=False), media_type="application/json")


def _point(feature: Any, axis: int) -> Any:
    try:
        geometry = feature["geometry"]
        return geometry["coordinates"][axis] if geometry["type"] == "Point" else None
    except (TypeError, KeyError, IndexError):
        return None


def _check_size(n: int, limit: int) -> None:
    if n > limit:
        raise InvalidCoordinates(f"{n:,} points in one request; the limit is {limit:,}", field="body")


def _assign(index: GridIndex, xs: Any, ys: Any, crs: str, snap_m: float) -> dict[str, Any]:
    """Codes for raw values; rows whose coordinates are not numbers in range get an error instead."""
    x = pd.to_numeric(pd.Series(xs), errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(pd.Series(ys), errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if normalize_crs(crs) in ("wgs84", "gcj02", "bd09", "cgcs2000"):
        bad |= (np.abs(x) > 180) | (np.abs(y) > 90)
    code = np.full(len(x), "", dtype=object)
    on = np.zeros(len(x), dtype=bool)
    good = ~bad
    if good.any():
        result = index.assign(x[good], y[good], crs=crs, snap_m=snap_m)
        code[good] = result.code
        on[good] = result.on_boundary
    error = np.full(len(x), "", dtype=object)
    error[bad] = [
        f"point {i}: lon/lat must be numbers within range, got {xs[i]!r}, {ys[i]!r}"
        for i in np.flatnonzero(bad)
    ]
    return {"code": code, "on_boundary": on, "error": error}
