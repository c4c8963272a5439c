"""Boundary sets and versions, read-only: list them, diff two versions, serve a version's units as GeoJSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import shapely
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from api.auth import reader
from api.dependencies import MAX_INT, StateDep
from api.drafts import etag
from geogrid.errors import InvalidCoordinates

router = APIRouter(prefix="/v1/sets", tags=["boundaries"], dependencies=[Depends(reader)])


@router.get("", summary="Boundary sets")
def list_sets(state: StateDep) -> list[dict[str, Any]]:
    """Every boundary set with its versions."""
    return [{"name": name, "versions": versions(state, name)} for name in state.store.sets()]


@router.get("/{name}", summary="A set: its revision (also the ETag), draft and versions")
def one_set(state: StateDep, name: str, response: Response) -> dict[str, Any]:
    """The set's current revision (send it back as If-Match to write), its open draft and its versions."""
    revision = state.store.revision(name)
    found = versions(state, name)
    response.headers["ETag"] = etag(revision)
    draft = next((v["number"] for v in found if v["status"] == "draft"), None)
    return {"name": name, "revision": revision, "etag": etag(revision), "draft": draft, "versions": found}


@router.get("/{name}/diff", summary="What changed between two versions")
def diff(
    state: StateDep,
    name: str,
    old: int = Query(..., alias="from", ge=1, le=MAX_INT, description="The earlier version number."),
    new: int = Query(
        ..., alias="to", ge=1, le=MAX_INT, description="The later version number (a draft too)."
    ),
) -> dict[str, Any]:
    """Per level, the codes added, removed and changed (geometry or attributes) from one version to another."""
    return {"set": name, "from": old, "to": new, "levels": state.store.diff(name, old, new)}


@router.get("/{name}/versions", summary="Versions of a set")
def versions(state: StateDep, name: str) -> list[dict[str, Any]]:
    """The set's versions, oldest first, with validity and unit counts."""
    return [
        {
            "number": v.number,
            "status": v.status,
            "valid_from": v.valid_from,
            "valid_to": v.valid_to,
            "units": v.units,
            "published_by": v.published_by,
            "note": v.note,
        }
        for v in state.store.versions(name)
    ]


def parse_bbox(bbox: str | None) -> tuple[float, float, float, float] | None:
    """minx,miny,maxx,maxy → a tuple, or a problem naming the parameter."""
    if bbox is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox.split(","))
    except ValueError:
        raise InvalidCoordinates(
            f"bbox must be minx,miny,maxx,maxy, not {bbox!r}", parameter="bbox"
        ) from None
    if not (x0 <= x1 and y0 <= y1):
        raise InvalidCoordinates(f"bbox {bbox!r} has min > max", parameter="bbox")
    return x0, y0, x1, y1


@router.get("/{name}/units", summary="Units of a version as GeoJSON")
def units(
    state: StateDep,
    name: str,
    at: dt.date | None = Query(None, description="As of this date (default: today)."),
    version: int | None = Query(None, ge=1, le=MAX_INT, description="A version number instead of a date."),
    level: str | None = Query(None, description="county, street, community, grid or microgrid."),
    parent: str | None = Query(None, description="Only the units whose parent has this code."),
    bbox: str | None = Query(None, description="minx,miny,maxx,maxy in WGS-84."),
) -> Response:
    """A version's units (in force today unless ``at`` or ``version`` says otherwise), filtered."""
    box = parse_bbox(bbox)
    frame = state.store.units(name, at=at, version=version, level=level)
    if parent is not None:
        frame = frame[frame["parent_code"] == parent]
    if box is not None:
        frame = frame[shapely.intersects(frame.geometry.to_numpy(), shapely.box(*box))]
    return Response(to_geojson(frame), media_type="application/geo+json")


def to_geojson(frame: Any, extra: dict[str, Any] | None = None) -> str:
    """A FeatureCollection of units (code as the feature id)."""
    features = []
    for row, geom in zip(frame.drop(columns="geometry").to_dict("records"), frame.geometry, strict=True):
        props = {k: (None if v is None or v != v else v) for k, v in row.items() if k != "attributes"}
        props.update(row.get("attributes") or {})
        features.append(
            {
                "type": "Feature",
                "id": row["code"],
                "properties": props,
                "geometry": shapely.geometry.mapping(geom),
            }
        )
    return json.dumps(
        {"type": "FeatureCollection", "features": features, **(extra or {})}, ensure_ascii=False, default=str
    )
