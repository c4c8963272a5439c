"""Vector tiles of the boundary levels (``/tiles/{set}/{level}/{z}/{x}/{y}.mvt``), for the dashboard,
MapLibre, QGIS and GDAL: one version's units never change, so a tile is made once and revalidated by ETag."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import Response

from api.auth import reader
from api.dependencies import StateDep
from geogrid.crs import WGS84
from geogrid.hierarchy import parse_level
from geogrid.tiles import MAX_ZOOM, MEDIA_TYPE

router = APIRouter(tags=["maps"], dependencies=[Depends(reader)])
TILE = Path(ge=0, le=2**MAX_ZOOM - 1)


@router.get(
    "/tiles/{set_name}/{level}/{z}/{x}/{y}.mvt",
    summary="A vector tile (MVT) of one level of the version in force",
    response_class=Response,
    responses={
        200: {
            "content": {MEDIA_TYPE: {}},
            "description": "The level's units in the tile (layer named as the level).",
        },
        204: {"description": "No unit of the level reaches this tile."},
        304: {"description": "Not modified (If-None-Match)."},
    },
)
def tile(
    state: StateDep,
    set_name: Annotated[str, Path(max_length=100, description="The boundary set.")],
    level: Annotated[
        str, Path(max_length=20, description="street, community, grid or microgrid (or county).")
    ],
    z: Annotated[int, Path(ge=0, le=MAX_ZOOM)],
    x: Annotated[int, TILE],
    y: Annotated[int, TILE],
    at: Annotated[
        dt.date | None, Query(description="The version in force on this day (default: today).")
    ] = None,
    crs: Annotated[
        Literal["wgs84", "gcj02"],
        Query(
            description="The datum drawn in: gcj02 to line up with a GCJ-02 base map (Amap/Tencent style)."
        ),
    ] = "wgs84",
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The units of ``level`` in tile z/x/y (Web Mercator, XYZ), simplified for the zoom with their shared
    edges kept shared; properties ``code`` and ``name``."""
    number, layer = state.tile_layer(set_name, parse_level(level), at, crs)
    datum = "" if crs == WGS84 else f".{crs}"  # (the tags of WGS-84 tiles as they always were)
    tag = f'"v{number}.{layer.name}{datum}.{z}.{x}.{y}"'
    shared = "public" if state.settings.public_reads else "private"  # a tile read with a key: not for proxies
    headers = {"ETag": tag, "Cache-Control": f"{shared}, max-age={86400 if at else 60}"}
    if if_none_match is not None and tag in if_none_match:
        return Response(status_code=304, headers=headers)
    data = layer.tile(z, x, y)
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=MEDIA_TYPE, headers=headers)
