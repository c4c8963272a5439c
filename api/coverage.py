"""The coverage report and the coverage maps of a set: JSON, a GeoPackage download, offline HTML maps.

Phones in either are masked (138****1234) unless the caller's role may contact people (Action.contact).
A report takes seconds on the demo county (most of it the walks along the roads), so reports are kept per
(set, version, date, revision, parameters, masking): every write to a set (units, posts, layers) bumps its
revision, so a kept report is never stale; they are kept a while and a few at a time only to bound memory. The map
pages and the GeoPackage drawn from a report are kept with it.

These routes are open to anonymous readers and every new ``at`` or ``norm`` is a miss, so what they compute
is gated: requests for the same thing (a report, a page, a file) wait for the one computing it (a lock per
key: different keys do not wait for each other), and at most :data:`COMPUTING` things are computed at once
(the rest wait their turn). The waiting is done on the event loop, holding no worker thread, and never
past the request's deadline: a request still waiting then is over, answered 503 like any slow request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import reader
from api.dependencies import StateDep
from api.state import ServiceState
from geogrid import deadline
from geogrid.access import Action, Principal
from geogrid.coverage import CoverageReport, json_rows, parse_norm
from geogrid.db.coverage import coverage_of
from geogrid.db.store import in_force
from geogrid.people import mask_phone

router = APIRouter(prefix="/v1/sets/{set_name}", tags=["coverage"], dependencies=[Depends(reader)])
GPKG = "application/geopackage+sqlite3"
CACHE_S = 600.0  # how long a report is kept; the revision in its key already keeps it from going stale
CACHE_SIZE = 4  # a report and its pages are a few MB: today's, masked and not, and two more
COMPUTING = 2  # reports, pages or files computed at once, whoever asks: the machine has 2 cores
GRACE_S = 0.25  # a request waiting for a gate gives up this long after its deadline (answered 503 by then)

Reader = Annotated[Principal | None, Depends(reader)]
At = Annotated[dt.date | None, Query(description="As of this date (default: today).")]
Norm = Annotated[
    str | None,
    Query(pattern=r"^\d{1,6}-\d{1,6}$", description="Households per grid, LOW-HIGH (default 300-500)."),
]
MapKind = Literal["responsibility", "gaps", "service"]
Key = tuple[Any, ...]
T = TypeVar("T")


@dataclass
class _Kept:
    """A report as one kind of caller sees it, when it was made, and the pages and file drawn from it."""

    made: float
    report: CoverageReport
    pages: dict[tuple[str, str | None, str], str] = field(default_factory=dict)
    gpkg: bytes | None = None


_cache: OrderedDict[Key, _Kept] = OrderedDict()
_lock = threading.Lock()


@dataclass
class _Flight:
    """The lock of one key, and how many requests hold or wait for it (at none, it is dropped)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class _Gates:
    """An event loop's gates (asyncio locks belong to one loop): a lock per key, and the slots to compute."""

    computing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(COMPUTING))
    flights: dict[Key, _Flight] = field(default_factory=dict)


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gates] = weakref.WeakKeyDictionary()


def sees_phones(principal: Principal | None) -> bool:
    """True when the caller may see full phone numbers."""
    return principal is not None and principal.may(Action.contact)


@dataclass(frozen=True)
class _Ask:
    """What a caller asks for: the report's cache key and what ``coverage_of`` is given to make it."""

    key: Key
    set_name: str
    day: dt.date
    norm: tuple[int, int] | None
    minutes: float
    speed: float
    masked: bool

    def make(self, state: ServiceState) -> _Kept:
        """Compute the report (seconds) and keep it."""
        report = coverage_of(
            state.store.engine,
            self.set_name,
            self.day,
            norm=self.norm,
            minutes=self.minutes,
            speed_kmh=self.speed,
            mask=mask_phone if self.masked else None,
        )
        kept = _Kept(time.monotonic(), report)
        with _lock:
            _cache[self.key] = kept
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return kept

    def kept(self) -> _Kept | None:
        """The kept report, if fresh."""
        with _lock:
            hit = _cache.get(self.key)
            if hit is None or time.monotonic() - hit.made >= CACHE_S:
                return None
            _cache.move_to_end(self.key)
            return hit


def _ask(
    state: ServiceState, set_name: str, at: dt.date | None, norm: str | None, principal: Principal | None
) -> _Ask:
    """The report's key (reads the set's versions and revision: the database, so not on the event loop)."""
    day = at or dt.date.today()
    version = in_force(state.versions(set_name), set_name, day).number
    revision = state.store.revision(set_name)
    settings = state.settings
    minutes, speed = settings.reach_minutes, settings.walking_speed_kmh
    low_high = parse_norm(norm)
    masked = not sees_phones(principal)
    key = (state.store.identity, set_name, version, day, revision, low_high, minutes, speed, masked)
    return _Ask(key, set_name, day, low_high, minutes, speed, masked)


def report_for(
    state: ServiceState, set_name: str, at: dt.date | None, norm: str | None, principal: Principal | None
) -> CoverageReport:
    """The coverage report of ``set_name`` on ``at`` as this caller may see it, from the cache if fresh.

    For callers off the event loop (scripts, tests): shares the cache, but not the gates of the routes.
    """
    ask = _ask(state, set_name, at, norm, principal)
    return (ask.kept() or ask.make(state)).report


async def _kept(
    state: ServiceState, set_name: str, at: dt.date | None, norm: str | None, principal: Principal | None
) -> _Kept:
    ask = await run_in_threadpool(_ask, state, set_name, at, norm, principal)
    return await _once(ask.key, ask.kept, lambda: ask.make(state))


async def _once(key: Key, look: Callable[[], T | None], make: Callable[[], T]) -> T:
    """What ``look`` finds, else what ``make`` makes (in a worker thread, and keeps, so ``look`` finds it):
    made once however many ask for ``key`` at once, and only in one of the :data:`COMPUTING` slots."""
    found = look()
    if found is not None:
        return found
    with _lock:
        gates = _gates.setdefault(asyncio.get_running_loop(), _Gates())
    async with _one_at_a_time(gates, key):
        found = look()  # made while this request waited for the key
        if found is not None:
            return found
        await _enter(gates.computing)
        try:
            return await run_in_threadpool(make)
        finally:
            gates.computing.release()


@asynccontextmanager
async def _one_at_a_time(gates: _Gates, key: Key) -> AsyncIterator[None]:
    """Hold the lock of ``key``: of the requests for it, one computes while the others wait."""
    flight = gates.flights.setdefault(key, _Flight())
    flight.users += 1
    try:
        await _enter(flight.lock)
        try:
            yield
        finally:
            flight.lock.release()
    finally:
        flight.users -= 1
        if not flight.users:
            del gates.flights[key]


async def _enter(gate: asyncio.Lock | asyncio.Semaphore) -> None:
    """Acquire ``gate``, waiting no longer than the request's deadline (then RequestTimeout: 503)."""
    current = deadline.current()
    if current is None:
        await gate.acquire()
        return
    while True:
        try:
            # A moment past the deadline: the Deadline middleware answers 503 first, then this gives up.
            await asyncio.wait_for(gate.acquire(), max(current.remaining(), 0.0) + GRACE_S)
            return
        except TimeoutError:
            current.check()  # past the deadline: raises RequestTimeout


@router.get(
    "/coverage",
    summary="Where nobody is: gaps, grids without people, worker load, households beyond reach",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, GPKG: {}}}},
)
async def coverage(
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
    kept = await _kept(state, set_name, at, norm, principal)
    report = kept.report
    if format == "gpkg":
        # (keyed by the kept report's id: unique while it is alive, and the wait keeps it alive)
        data = await _once((id(kept), "gpkg"), lambda: kept.gpkg, lambda: _gpkg(kept))
        name = f"{set_name}-coverage-{report.at.isoformat()}.gpkg"
        return Response(
            data, media_type=GPKG, headers={"Content-Disposition": f'attachment; filename="{_ascii(name)}"'}
        )
    return await run_in_threadpool(_json, set_name, report)


def _gpkg(kept: _Kept) -> bytes:
    with tempfile.TemporaryDirectory(prefix="geogrid-coverage-") as folder:
        kept.gpkg = kept.report.to_gpkg(Path(folder) / "coverage.gpkg").read_bytes()
    return kept.gpkg


def _json(set_name: str, report: CoverageReport) -> JSONResponse:
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
async def coverage_map(
    state: StateDep,
    principal: Reader,
    set_name: str,
    kind: MapKind,
    at: At = None,
    norm: Norm = None,
) -> HTMLResponse:
    """The responsibility, gaps or service map: Leaflet inlined, so the page needs no other host."""
    from geogrid.maps import build_map

    kept = await _kept(state, set_name, at, norm, principal)
    settings = state.settings
    page = (kind, settings.tile_url, settings.tile_crs)

    def draw() -> str:
        html = build_map(kind, kept.report, tile_url=settings.tile_url, tile_crs=settings.tile_crs)
        kept.pages[page] = html
        return html

    return HTMLResponse(await _once((id(kept), *page), lambda: kept.pages.get(page), draw))


def _ascii(name: str) -> str:
    return name.encode("ascii", "replace").decode().replace('"', "_")
