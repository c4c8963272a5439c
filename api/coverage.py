"""The coverage report and the coverage maps of a set: JSON, a GeoPackage download, offline HTML maps.

Phones in either are masked (138****1234) unless the caller's role may contact people (Action.contact).
A report takes seconds on the demo county (most of it the walks along the roads), so reports are kept per
(set, version, date, revision, parameters, masking): every write to a set (units, posts, layers) bumps its
revision, so a kept report is never stale; they are kept a while and a few at a time only to bound memory. The map
pages drawn from a report are kept with it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.auth import reader
from api.dependencies import StateDep
from api.state import ServiceState
from geogrid.access import Action, Principal
from geogrid.coverage import CoverageReport, json_rows, parse_norm
from geogrid.db.coverage import coverage_of
from geogrid.db.store import in_force
from geogrid.people import mask_phone

router = APIRouter(prefix="/v1/sets/{set_name}", tags=["coverage"], dependencies=[Depends(reader)])
GPKG = "application/geopackage+sqlite3"
CACHE_S = 600.0  # how long a report is kept; the revision in its key already keeps it from going stale
CACHE_SIZE = 4  # a report and its pages are a few MB: today's, masked and not, and two more

Reader = Annotated[Principal | None, Depends(reader)]
At = Annotated[dt.date | None, Query(description="As of this date (default: today).")]
Norm = Annotated[
    str | None,
    Query(pattern=r"^\d{1,6}-\d{1,6}$", description="Households per grid, LOW-HIGH (default 300-500)."),
]
MapKind = Literal["responsibility", "gaps", "service"]


@dataclass
class _Kept:
    """A report as one kind of caller sees it, when it was made, and the map pages drawn from it."""

    made: float
    report: CoverageReport
    pages: dict[tuple[str, str | None, str], str] = field(default_factory=dict)


_cache: OrderedDict[tuple[Any, ...], _Kept] = OrderedDict()
_lock = threading.Lock()


def sees_phones(principal: Principal | None) -> bool:
    """True when the caller may see full phone numbers."""
    return principal is not None and principal.may(Action.contact)


def report_for(
    state: ServiceState, set_name: str, at: dt.date | None, norm: str | None, principal: Principal | None
) -> CoverageReport:
    """The coverage report of ``set_name`` on ``at`` as this caller may see it, from the cache if fresh."""
    return _kept(state, set_name, at, norm, principal).report


def _kept(
    state: ServiceState, set_name: str, at: dt.date | None, norm: str | None, principal: Principal | None
) -> _Kept:
    day = at or dt.date.today()
    version = in_force(state.versions(set_name), set_name, day).number
    revision = state.store.revision(set_name)
    settings = state.settings
    minutes, speed = settings.reach_minutes, settings.walking_speed_kmh
    low_high = parse_norm(norm)
    masked = not sees_phones(principal)
    key = (state.store.identity, set_name, version, day, revision, low_high, minutes, speed, masked)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and now - hit.made < CACHE_S:
            _cache.move_to_end(key)
            return hit
    report = coverage_of(
        state.store.engine,
        set_name,
        day,
        norm=low_high,
        minutes=minutes,
        speed_kmh=speed,
        mask=mask_phone if masked else None,
    )
    kept = _Kept(now, report)
    with _lock:
        _cache[key] = kept
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return kept


@router.get(
    "/coverage",
    summary="Where nobody is: gaps, grids without people, worker load, households beyond reach",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, GPKG: {}}}},
)
def coverage(
    state: StateDep,
    principal: Reader,
    set_name: str,
    at: At = None,
    norm: Norm = None,
    format: Annotated[
        Literal["json", "gpkg"], Query(description="json: summary and rows; gpkg: the layers.")
    ] = "json",
) -> Response:
    """The coverage report: a JSON summary with a row per grid, community and worker, or a GeoPackage."""
    report = report_for(state, set_name, at, norm, principal)
    if format == "gpkg":
        with tempfile.TemporaryDirectory(prefix="geogrid-coverage-") as folder:
            data = report.to_gpkg(Path(folder) / "coverage.gpkg").read_bytes()
        name = f"{set_name}-coverage-{report.at.isoformat()}.gpkg"
        return Response(
            data, media_type=GPKG, headers={"Content-Disposition": f'attachment; filename="{_ascii(name)}"'}
        )
    body = {
        "set": set_name,
        "at": report.at.isoformat(),
        "summary": report.summary(),
        "grids": report.grid_rows(),
        "communities": json_rows(report.communities),
        "workers": json_rows(report.workers),
    }
    return JSONResponse(body)


@router.get(
    "/maps/{kind}",
    summary="A coverage map as one offline HTML page",
    response_class=HTMLResponse,
)
def coverage_map(
    state: StateDep,
    principal: Reader,
    set_name: str,
    kind: MapKind,
    at: At = None,
    norm: Norm = None,
) -> HTMLResponse:
    """The responsibility, gaps or service map: Leaflet inlined, so the page needs no other host."""
    from geogrid.maps import build_map

    kept = _kept(state, set_name, at, norm, principal)
    settings = state.settings
    page = (kind, settings.tile_url, settings.tile_crs)
    html = kept.pages.get(page)
    if html is None:
        html = build_map(kind, kept.report, tile_url=settings.tile_url, tile_crs=settings.tile_crs)
        kept.pages[page] = html
    return HTMLResponse(html)


def _ascii(name: str) -> str:
    return name.encode("ascii", "replace").decode().replace('"', "_")
