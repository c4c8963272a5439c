"""OGC API – Features (Part 1 core + GeoJSON) over the version in force: one collection per level."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import shapely
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.auth import reader
from api.boundaries import parse_bbox, to_geojson
from api.dependencies import MAX_INT, StateDep
from geogrid.errors import InvalidCoordinates, NotFound
from geogrid.hierarchy import Level

router = APIRouter(prefix="/ogc", tags=["ogc"], dependencies=[Depends(reader)])
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


@router.get("", summary="Landing page")
def landing(request: Request) -> dict[str, Any]:
    """Links to the API definition, the conformance declaration and the collections."""
    base = _base(request)
    return {
        "title": "GeoGrid",
        "description": "Grid and community boundaries",
        "links": [
            {"href": base, "rel": "self", "type": "application/json"},
            {
                "href": str(request.base_url) + "openapi.json",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
            },
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
        ],
    }


@router.get("/conformance", summary="Conformance classes")
def conformance() -> dict[str, Any]:
    """The conformance classes implemented."""
    return {"conformsTo": CONFORMANCE}


def _collection(request: Request, state: StateDep, level: Level) -> dict[str, Any]:
    set_name = state.settings.default_set
    units = state.store.units(set_name, level=level)
    x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds(units.geometry.to_numpy()))
    base = _base(request)
    return {
        "id": level.name,
        "title": f"{level.name} ({level.label}) of {set_name}",
        "extent": {
            "spatial": {"bbox": [[x0, y0, x1, y1]], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
        },
        "itemType": "feature",
        "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        "links": [
            {"href": f"{base}/collections/{level.name}", "rel": "self", "type": "application/json"},
            {
                "href": f"{base}/collections/{level.name}/items",
                "rel": "items",
                "type": "application/geo+json",
            },
        ],
    }


def _levels(state: StateDep) -> list[Level]:
    version = state.store.version_at(state.settings.default_set)
    return [lvl for lvl in Level if version.units.get(lvl.name)]


@router.get("/collections", summary="Collections (one per level)")
def collections(request: Request, state: StateDep) -> dict[str, Any]:
    """One collection per level of the configured set's version in force."""
    base = _base(request)
    return {
        "collections": [_collection(request, state, lvl) for lvl in _levels(state)],
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
    }


def _level(state: StateDep, collection_id: str) -> Level:
    for lvl in _levels(state):
        if lvl.name == collection_id:
            return lvl
    raise NotFound(f"no collection {collection_id!r}", parameter="collectionId")


@router.get("/collections/{collection_id}", summary="A collection")
def collection(request: Request, state: StateDep, collection_id: str) -> dict[str, Any]:
    """One level as a collection."""
    return _collection(request, state, _level(state, collection_id))


def _as_of(datetime: str | None) -> dt.date | None:
    if datetime is None or datetime in ("..", ""):
        return None
    try:
        return dt.date.fromisoformat(datetime.split("T")[0].split("/")[-1])
    except ValueError:
        raise InvalidCoordinates(
            f"datetime must be a date (as of), not {datetime!r}", parameter="datetime"
        ) from None


@router.get("/collections/{collection_id}/items", summary="Features of a collection")
def items(
    request: Request,
    state: StateDep,
    collection_id: str,
    bbox: str | None = Query(None, description="minx,miny,maxx,maxy (CRS84)."),
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=MAX_INT),
    datetime: str | None = Query(None, description="As-of date: the version in force then."),
) -> Response:
    """Units of one level, paged, filtered by bbox, as of a date."""
    level = _level(state, collection_id)
    frame = state.store.units(state.settings.default_set, at=_as_of(datetime), level=level)
    box = parse_bbox(bbox)
    if box is not None:
        frame = frame[shapely.intersects(frame.geometry.to_numpy(), shapely.box(*box))]
    matched = len(frame)
    page = frame.iloc[offset : offset + limit]
    url = f"{_base(request)}/collections/{collection_id}/items"
    keep = "".join(f"&{k}={v}" for k, v in (("bbox", bbox), ("datetime", datetime)) if v)
    links = [
        {"href": f"{url}?limit={limit}&offset={offset}{keep}", "rel": "self", "type": "application/geo+json"}
    ]
    if offset + limit < matched:
        links.append(
            {
                "href": f"{url}?limit={limit}&offset={offset + limit}{keep}",
                "rel": "next",
                "type": "application/geo+json",
            }
        )
    extra = {
        "numberMatched": matched,
        "numberReturned": len(page),
        "links": links,
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(),
    }
    return Response(to_geojson(page, extra), media_type="application/geo+json")


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature")
def item(state: StateDep, collection_id: str, feature_id: str) -> Response:
    """One unit by its code."""
    frame = state.store.units(state.settings.default_set, level=_level(state, collection_id))
    hit = frame[frame["code"] == feature_id]
    if hit.empty:
        raise NotFound(f"no feature {feature_id!r} in {collection_id}", parameter="featureId")
    text = to_geojson(hit)

    return Response(
        json.dumps(json.loads(text)["features"][0], ensure_ascii=False), media_type="application/geo+json"
    )
