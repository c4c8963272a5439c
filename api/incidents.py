"""Incidents over HTTP: report one (idempotent), read them, move them through the loop, read the log.

``POST /v1/incidents`` takes a report with coordinates in any CRS the lookup takes and/or an address
text; it is placed with the boundary version in force on the day it was reported and answered 201 with
its ``Location``. An ``Idempotency-Key`` header makes a retry safe: the same key and request answer 200
with the first incident (``Idempotent-Replayed: true``); the same key with another request is 422.
Actions (``POST /v1/incidents/{id}/actions``) are checked against the loop: an illegal one is 409 naming
the allowed ones; ``If-Match`` with the incident's ETag (its ``seq``) guards against acting on a stale
read. Workers and commanders act only on incidents in their scope (a key limited to a unit sees and moves
only incidents under it). Reporter names and phones are shown only to roles that may contact people.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, Field

from api.auth import KeyHolder, reader, require
from api.dependencies import MAX_INT, StateDep
from api.lookup import SET_HELP
from api.state import NotCached, ServiceState
from geogrid.access import Action, Principal
from geogrid.crs import GCJ02, wgs84_to_gcj02
from geogrid.errors import Forbidden, InvalidIncident, NotFound, PreconditionRequired
from geogrid.incidents import kpis, states
from geogrid.incidents.intake import CHANNELS, Report, locate
from geogrid.incidents.placement import Placement
from geogrid.people import mask_name, mask_phone, phones_masked

router = APIRouter(tags=["incidents"])
Reader = KeyHolder  # incidents are no public data: a key reads them
Anyone = Annotated[Principal | None, Depends(reader)]  # the catalogue is public where reads are
Reporter = Annotated[Principal, Depends(require(Action.report))]
Handler = Annotated[Principal, Depends(require(Action.handle))]
IdPath = Path(ge=1, le=MAX_INT, description="The incident's id.")
SetQuery = Query(max_length=100, description=SET_HELP)
PERSONAL = ("reporter_name", "reporter_phone")
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(9000, 1, 1)  # the days a period may start or end on
FormatQuery = Query(pattern="^(json|csv)$", description="json or csv.")
ByQuery = Query(description="microgrid, grid, community, street, department or county.")
EndQuery = Query(description="The day after the period (exclusive); default: tomorrow.")
StartQuery = Query(description="First day of the period (reported on or after), in the calendar's zone.")


def _no_nul(text: str) -> str:
    """A text without U+0000 (no database keeps it in text: PostgreSQL refuses it)."""
    if "\x00" in text:
        raise ValueError("holds a NUL character (\\0)")
    return text


Text = Annotated[str, AfterValidator(_no_nul)]


class Coordinates(BaseModel):
    """Where the reporter was: x/y (lon/lat for geographic CRSs) in a CRS the lookup takes."""

    x: float = Field(allow_inf_nan=False, description="Longitude, or easting in a projected CRS.")
    y: float = Field(allow_inf_nan=False, description="Latitude, or northing in a projected CRS.")
    crs: Text = Field("wgs84", max_length=40, description="wgs84, gcj02, bd09, cgcs2000 or EPSG:NNNN.")


class Reporter_(BaseModel):
    """Who reported it (optional; shown only to roles that may contact people)."""

    name: Text | None = Field(None, max_length=100)
    phone: Text | None = Field(None, max_length=40)


class IncidentIn(BaseModel):
    """A report from any channel."""

    category: Text = Field(
        max_length=40, description="A catalogue code (E0102) or name (暴露垃圾); GET /v1/services."
    )
    description: Text = Field(min_length=1, max_length=4000)
    coordinates: Coordinates | None = None
    address: Text | None = Field(None, max_length=200, description="An address text, matched to a building.")
    reported_at: dt.datetime | None = Field(
        None,
        description="When it was reported, with a time zone (default: now). A backdated report is placed "
        "with the boundaries of its date.",
    )
    media: list[Annotated[Text, Field(max_length=2000)]] = Field(default_factory=list, max_length=20)
    reporter: Reporter_ | None = None
    channel: Literal[CHANNELS] = "api"  # type: ignore[valid-type]


class ActionIn(BaseModel):
    """One step of the loop."""

    action: Text = Field(max_length=20, description=", ".join(states.STEPS))
    note: Text | None = Field(None, max_length=4000)
    attachments: list[Annotated[Text, Field(max_length=2000)]] = Field(default_factory=list, max_length=20)
    level: Text | None = Field(None, max_length=120, description="dispatch: to which level of the route.")
    satisfaction: int | None = Field(
        None, ge=1, le=5, description="close: the reporter's rating (回访), 1–5."
    )
    duplicate_of: int | None = Field(None, ge=1, le=MAX_INT, description="void: the incident this repeats.")
    coordinates: Coordinates | None = Field(
        None, description="place: where the incident is (a point inside a micro-grid), in any CRS."
    )


def shown_incident(item: dict[str, Any], principal: Principal | None) -> dict[str, Any]:
    """An incident as this caller may see it: reporter masked unless their role may contact people."""
    out = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in item.items()}
    out["state_zh"] = states.STATES[item["state"]]
    out["overdue"] = bool(
        item["deadline"] is not None
        and item["state"] in states.RUNNING
        and item["deadline"] <= dt.datetime.now(dt.UTC)
    )
    if principal is None or not principal.may(Action.contact):
        out["reporter_name"] = mask_name(item.get("reporter_name"))
        out["reporter_phone"] = mask_phone(item.get("reporter_phone"))
        out["description"] = phones_masked(item["description"])
        out["address"] = phones_masked(item["address"]) if item.get("address") else item.get("address")
    return out


def _in_scope(item: dict[str, Any], principal: Principal | None) -> bool:
    """Whether a caller limited to a unit may see this incident (it lies under that unit)."""
    if principal is None or principal.scope is None:
        return True
    return any(
        (item.get(k) or "").startswith(principal.scope) for k in ("microgrid", "grid", "community", "street")
    )


def _visible(
    state: ServiceState, set_name: str, incident_id: int, principal: Principal | None
) -> dict[str, Any]:
    """The incident, or 404 for a caller who may not see it (as for one that does not exist)."""
    item = state.incidents.get(set_name, incident_id)
    if not _in_scope(item, principal):
        raise NotFound(f"no incident {incident_id}", incident_id=incident_id)
    return item


def placed(
    state: ServiceState, set_name: str, report: Report, principal: Principal, *, build: bool = True
) -> Placement:
    """Where a report lies (the version of its day, the service's settings); 403 outside the caller's scope.
    With ``build=False`` only from memory: NotCached where an index or the matcher is not loaded yet."""
    settings = state.settings
    placement = locate(
        report,
        (lambda day: state.index(set_name, day))
        if build
        else (lambda day: state.loaded_index(set_name, day)),
        state.matcher(set_name, build=build) if report.address else None,
        tz=state.incidents.calendar.tz,
        disagree_m=settings.incident_disagree_m,
        near_m=settings.incident_near_m,
        outside=settings.incident_outside,
    )
    scope, where = principal.scope, placement.microgrid
    if scope is not None and where and not where.startswith(scope):
        raise Forbidden(f"the incident lies in {where}, outside {scope}", scope=scope, code=where)
    return placement


@router.post("/v1/incidents", status_code=201, summary="Report an incident (idempotent with Idempotency-Key)")
async def report(  # async: placing is from memory and the write is the incident writer's (no thread hop)
    body: IncidentIn,
    state: StateDep,
    principal: Reporter,
    idempotency_key: Annotated[str | None, Header(max_length=200, description="Makes a retry safe.")] = None,
    set: Annotated[str | None, SetQuery] = None,
) -> Response:
    """Take a report, place it in the micro-grid of the version in force on its day, and store it."""
    set_name = set or state.settings.default_set
    if idempotency_key is not None and not (idempotency_key.strip() and idempotency_key.isprintable()):
        raise InvalidIncident("Idempotency-Key must be printable and not blank", field="Idempotency-Key")
    got = Report(
        category=body.category,
        description=body.description,
        reported_at=body.reported_at or dt.datetime.now(dt.UTC),
        channel=body.channel,
        crs=body.coordinates.crs if body.coordinates else None,
        x=body.coordinates.x if body.coordinates else None,
        y=body.coordinates.y if body.coordinates else None,
        address=body.address,
        media=tuple(body.media),
        reporter_name=body.reporter.name if body.reporter else None,
        reporter_phone=body.reporter.phone if body.reporter else None,
        key=idempotency_key,
    )
    state.incidents.catalogue.get(got.category)  # an unknown category is 422 before any placing
    try:
        placement = placed(state, set_name, got, principal, build=False)
    except NotCached:  # the first report of a day or set: read and build off the event loop
        placement = await run_in_threadpool(placed, state, set_name, got, principal)
    sent = hashlib.sha256(orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()
    committed = state.incidents.submit(
        set_name, got, placement, principal.name, request_hash=sent, duplicates_m=state.settings.duplicate_m
    )
    item, created = await asyncio.wrap_future(committed)  # answered once the incident is committed
    headers = {
        "Location": f"/v1/incidents/{item['id']}" + (f"?set={set}" if set else ""),
        "ETag": f'"{item["seq"]}"',
    }
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return Response(  # serialised once, by orjson (FastAPI's encoder took a millisecond an incident)
        orjson.dumps(shown_incident(item, principal), option=orjson.OPT_NON_STR_KEYS),  # column names
        status_code=201 if created else 200,
        headers=headers,
        media_type="application/json",
    )


@router.get("/v1/incidents", summary="Incidents, newest first")
def list_incidents(
    state: StateDep,
    principal: Reader,
    status: Annotated[str | None, Query(max_length=20, description="Only incidents in this state.")] = None,
    queued: Annotated[
        bool, Query(description="Only the manual-placement queue: open incidents in no micro-grid.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    format: Annotated[str, FormatQuery] = "json",
    set: Annotated[str | None, SetQuery] = None,
) -> Any:
    """The incidents the caller may see (under their scope), newest first, as JSON or CSV; reporters masked
    as for reads."""
    if status is not None and status not in states.STATES:
        raise InvalidIncident(f"no state {status[:20]!r}: {', '.join(states.STATES)}", field="status")
    set_name = set or state.settings.default_set
    scope = [principal.scope] if principal is not None and principal.scope else None
    items = state.incidents.incidents(
        set_name, state=status, units=scope, queued=queued, limit=limit, offset=offset
    )
    shown = [shown_incident(i, principal) for i in items]
    if format == "csv":
        flat = [
            {k: orjson.dumps(v).decode() if isinstance(v, list | dict) else v for k, v in i.items()}
            for i in shown
        ]
        return _csv(flat, f"incidents-{set_name}")
    return {"incidents": shown, "limit": limit, "offset": offset}


def _period(
    state: ServiceState, start: dt.date | None, end: dt.date | None
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) as instants in the calendar's zone; default the 30 days up to today."""
    zone = ZoneInfo(state.incidents.calendar.tz)
    for name, day in (("start", start), ("end", end)):
        if day is not None and not EARLIEST <= day <= LATEST:  # an instant of it must exist in UTC too
            raise InvalidIncident(f"{name} {day} is not between {EARLIEST} and {LATEST}", field=name)
    end = end or dt.datetime.now(zone).date() + dt.timedelta(days=1)
    start = start or end - dt.timedelta(days=30)
    if start >= end:
        raise InvalidIncident(f"start {start} is not before end {end}", field="start")
    return dt.datetime.combine(start, dt.time(), zone), dt.datetime.combine(end, dt.time(), zone)


UnitQuery = Query(max_length=32, pattern="^[0-9]+$", description="Only under this unit's code.")


def _under(principal: Principal | None, unit: str | None) -> list[str] | None:
    """The units a read counts under: the key's scope and the asked ``unit``, the narrower if it lies under
    the other, else none ("-" is no code); None for all."""
    units = [code for code in (principal.scope if principal is not None else None, unit) if code]
    if len(units) == 2:
        wide, narrow = sorted(units, key=len)
        units = [narrow] if narrow.startswith(wide) else ["-"]
    return units or None


def _csv(rows: list[dict[str, Any]], name: str) -> Response:
    """Rows as a UTF-8 CSV download (with a BOM, so spreadsheet programs read the Chinese)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/v1/incidents/kpis", summary="Incident figures per unit for a period (JSON or CSV)")
def incident_kpis(
    state: StateDep,
    principal: Reader,
    by: Annotated[str, ByQuery] = "grid",
    start: Annotated[dt.date | None, StartQuery] = None,
    end: Annotated[dt.date | None, EndQuery] = None,
    unit: Annotated[str | None, UnitQuery] = None,
    format: Annotated[str, FormatQuery] = "json",
    set: Annotated[str | None, SetQuery] = None,
) -> Any:
    """Received, accepted, resolved, on time, closed, escalations, time to close, satisfaction, open and
    overdue per unit (under ``unit`` if given), with the resolution and on-time rates; a scoped key counts
    only its incidents."""
    set_name = set or state.settings.default_set
    first, stop = _period(state, start, end)
    rows = state.incidents.kpis(set_name, by, first, stop, units=_under(principal, unit))
    if format == "csv":
        return _csv(rows, f"kpis-{by}-{first.date()}-{stop.date()}")
    return {"by": by, "start": first.isoformat(), "end": stop.isoformat(), "units": rows}


@router.get("/v1/incidents/points", summary="A period's incidents as columns of points, for maps")
def incident_points(
    state: StateDep,
    principal: Reader,
    start: Annotated[dt.date | None, StartQuery] = None,
    end: Annotated[dt.date | None, EndQuery] = None,
    category: Annotated[str | None, Query(max_length=40, description="Only this catalogue code.")] = None,
    unit: Annotated[str | None, UnitQuery] = None,
    since: Annotated[
        dt.datetime | None, Query(description="Only those changed after this instant (live updates).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200_000)] = 100_000,
    crs: Annotated[
        Literal["wgs84", "gcj02"],
        Query(description="The datum of lon and lat: gcj02 to line up with a GCJ-02 base map."),
    ] = "wgs84",
    set: Annotated[str | None, SetQuery] = None,
) -> Response:
    """One list per column (id, lon, lat, state, category, micro-grid, grid, community, street, overdue) of
    the incidents with a point that the caller may see; ``as_of`` is the latest change among them (poll
    with ``since`` a few seconds before it). No reporter is named."""
    if since is not None and since.tzinfo is None:
        raise InvalidIncident("since needs a time zone (2026-12-03T09:30:00+08:00)", field="since")
    if since is not None and not EARLIEST <= since.date() <= LATEST:
        raise InvalidIncident(f"since {since.date()} is not between {EARLIEST} and {LATEST}", field="since")
    first, stop = _period(state, start, end)
    if category is not None:  # a code or a name of the catalogue; another is 422 naming it
        category = state.incidents.catalogue.get(category).code
    found = state.incidents.points(
        set or state.settings.default_set, first, stop,
        units=_under(principal, unit), category=category, since=since, limit=limit,
    )  # fmt: skip
    found["as_of"] = found["as_of"].isoformat() if found["as_of"] is not None else None
    if crs == GCJ02 and found["id"]:
        lon, lat = wgs84_to_gcj02(found["lon"], found["lat"])
        found["lon"], found["lat"] = lon.tolist(), lat.tolist()
    body = {"start": first.isoformat(), "end": stop.isoformat(), "count": len(found["id"]), **found}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/v1/incidents/ranking", summary="The red/black ranking (红黑榜) of units for a period")
def incident_ranking(
    state: StateDep,
    principal: Reader,
    by: Annotated[str, ByQuery] = "grid",
    start: Annotated[dt.date | None, StartQuery] = None,
    end: Annotated[dt.date | None, EndQuery] = None,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
    min_received: Annotated[int, Query(ge=1, le=MAX_INT, description="Units with fewer are not judged.")] = 5,
    unit: Annotated[str | None, UnitQuery] = None,
    set: Annotated[str | None, SetQuery] = None,
) -> dict[str, Any]:
    """The best ``top`` units (red) and the worst (black) by resolution, on-time rate and satisfaction
    (of those under ``unit`` if given)."""
    set_name = set or state.settings.default_set
    first, stop = _period(state, start, end)
    rows = state.incidents.kpis(set_name, by, first, stop, units=_under(principal, unit))
    return {
        "by": by,
        "start": first.isoformat(),
        "end": stop.isoformat(),
        **kpis.ranking(rows, top=top, min_received=min_received),
    }


@router.get("/v1/incidents/log.csv", summary="The raw transition log as CSV (for recounting every figure)")
def export_log(
    state: StateDep,
    principal: Reader,
    after_id: Annotated[int, Query(ge=0, le=MAX_INT, description="Lines after this log id (paging).")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=50_000, description="Lines per page (page on with after_id).")
    ] = 50_000,
    set: Annotated[str | None, SetQuery] = None,
) -> Response:
    """Every transition with its incident's day, category and units, oldest first; notes masked for
    roles that may not contact people."""
    set_name = set or state.settings.default_set
    scope = [principal.scope] if principal is not None and principal.scope else None
    contact = principal is not None and principal.may(Action.contact)
    rows = []
    for line in state.incidents.export_log(set_name, units=scope, after_id=after_id, limit=limit):
        if "to" in (line["detail"] or {}):
            line["detail"] = {**line["detail"], "to": _people_shown(line["detail"]["to"], principal)}
        line["detail"] = orjson.dumps(line["detail"]).decode()
        line["attachments"] = orjson.dumps(line["attachments"]).decode()
        if not contact and line.get("note"):
            line["note"] = phones_masked(line["note"])
        rows.append({k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in line.items()})
    return _csv(rows, f"incident-log-{set_name}")


@router.get(
    "/v1/incidents/{incident_id}/reporters", summary="Whom to answer: the reporter and merged duplicates'"
)
def incident_reporters(
    state: StateDep,
    principal: Annotated[Principal, Depends(require(Action.contact))],
    incident_id: Annotated[int, IdPath],
    set: Annotated[str | None, SetQuery] = None,
) -> dict[str, Any]:
    """The reporter of the incident and of every report merged into it as a duplicate (结果回复)."""
    set_name = set or state.settings.default_set
    _visible(state, set_name, incident_id, principal)
    return {"incident_id": incident_id, "reporters": state.incidents.reporters(set_name, incident_id)}


@router.get("/v1/incidents/{incident_id}", summary="One incident")
def get_incident(
    response: Response,
    state: StateDep,
    principal: Reader,
    incident_id: Annotated[int, IdPath],
    set: Annotated[str | None, SetQuery] = None,
) -> dict[str, Any]:
    """One incident with its ETag (its seq: how many steps it has taken)."""
    item = _visible(state, set or state.settings.default_set, incident_id, principal)
    response.headers["ETag"] = f'"{item["seq"]}"'
    return shown_incident(item, principal)


@router.get("/v1/incidents/{incident_id}/log", summary="Every step the incident took, oldest first")
def incident_log(
    state: StateDep,
    principal: Reader,
    incident_id: Annotated[int, IdPath],
    set: Annotated[str | None, SetQuery] = None,
) -> dict[str, Any]:
    """The append-only log of one incident: who did what, when, with which note."""
    set_name = set or state.settings.default_set
    _visible(state, set_name, incident_id, principal)
    contact = principal is not None and principal.may(Action.contact)
    steps = []
    for line in state.incidents.log(set_name, incident_id):
        line = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in line.items()}
        if not contact and line.get("note"):
            line["note"] = phones_masked(line["note"])
        if "to" in (line.get("detail") or {}):
            line["detail"] = {**line["detail"], "to": _people_shown(line["detail"]["to"], principal)}
        steps.append(line)
    return {"incident_id": incident_id, "log": steps}


@router.post("/v1/incidents/{incident_id}/actions", summary="Take one step of the loop")
async def act(
    body: ActionIn,
    response: Response,
    state: StateDep,
    principal: Handler,
    incident_id: Annotated[int, IdPath],
    if_match: Annotated[str | None, Header(description="The incident's ETag as last read.")] = None,
    set: Annotated[str | None, SetQuery] = None,
) -> dict[str, Any]:
    """Move the incident (409 naming the allowed actions if this one is not); the incident after it."""
    set_name = set or state.settings.default_set
    step = states.STEPS.get(body.action)
    if step is None:
        raise InvalidIncident(f"no action {body.action[:20]!r}: {', '.join(states.STEPS)}", field="action")
    principal.require(step.permission)
    expect = _seq(if_match)
    if body.action == "escalate" and expect is None:  # a second click (or the job) must not skip a level
        raise PreconditionRequired(
            "escalate needs If-Match with the incident's ETag: each escalation climbs one level from the "
            "level the caller saw",
            field="If-Match",
        )

    def run() -> dict[str, Any]:
        item = _visible(state, set_name, incident_id, principal)
        if body.duplicate_of is not None:  # merged into an incident the caller may see, or none
            _visible(state, set_name, body.duplicate_of, principal)
        where = None
        if body.action == "place":  # on the boundaries of its day, within the caller's scope
            where = _placed_by_hand(state, set_name, item, body.coordinates, principal)
        to = (
            _people_at(state, set_name, item, body.level or item["level"])
            if body.action == "dispatch"
            else None
        )
        return state.incidents.act(
            set_name,
            incident_id,
            body.action,
            actor=principal.name,
            note=body.note,
            attachments=body.attachments,
            expect=expect,
            level=body.level,
            satisfaction=body.satisfaction,
            duplicate_of=body.duplicate_of,
            placement=where,
            to=to,
        )

    item = await run_in_threadpool(run)
    response.headers["ETag"] = f'"{item["seq"]}"'
    out = shown_incident(item, principal)
    if "dispatched_to" in item:
        out["dispatched_to"] = _people_shown(item["dispatched_to"], principal)
    return out


def _people_at(state: ServiceState, set_name: str, item: dict[str, Any], level: str) -> list[dict[str, Any]]:
    """Who a dispatch to ``level`` reaches: the people posted today on the incident's micro-grid and grid,
    its community or its street (none for a department or the county: they have no roster here)."""
    codes = {"grid": ("microgrid", "grid"), "community": ("community",), "street": ("street",)}.get(level, ())
    units = [item[c] for c in codes if item.get(c)]
    if not units:
        return []
    today = dt.datetime.now(ZoneInfo(state.incidents.calendar.tz)).date()  # the county's day, not the host's
    cards = orjson.loads(state.directory(set_name, today).json(units, full_phones=False))
    return [{"name": c["name"], "role": c["role"], "unit_code": c["unit_code"]} for c in cards]


def _people_shown(people: list[dict[str, Any]], principal: Principal | None) -> list[dict[str, Any]]:
    """People named in an incident's log, names masked for roles that may not contact people."""
    if principal is not None and principal.may(Action.contact):
        return people
    return [{**p, "name": mask_name(p.get("name"))} for p in people]


def _placed_by_hand(
    state: ServiceState,
    set_name: str,
    item: dict[str, Any],
    at: Coordinates | None,
    principal: Principal,
) -> Placement:
    """Where a commander puts an incident: the micro-grid of the point on the boundaries of its day."""
    if at is None:
        raise InvalidIncident("place needs coordinates: where the incident is", field="coordinates")
    where = Report(
        category=item["category"],
        description=item["description"],
        reported_at=item["reported_at"],
        crs=at.crs,
        x=at.x,
        y=at.y,
    )
    placement = placed(state, set_name, where, principal)
    if placement.microgrid is None:
        raise InvalidIncident(f"({at.x}, {at.y}) lies in no micro-grid of {set_name}", field="coordinates")
    return placement


@router.get("/v1/services", summary="The incident categories: events and components, limits, owners")
def services(state: StateDep, principal: Anyone) -> dict[str, Any]:
    """The service catalogue: each category's code, name, kind, group, limit and route."""
    if principal is not None:
        principal.require(Action.read)
    return {
        "services": [
            {
                "code": s.code,
                "name": s.name,
                "kind": s.kind,
                "group": s.group,
                "limit": s.limit,
                "unit": s.unit,
                "owner": s.owner,
                "route": list(s.route()),
            }
            for s in state.incidents.catalogue
        ]
    }


def _seq(if_match: str | None) -> int | None:
    """The seq an If-Match names ("3" or 3), None without one; 422 for anything else."""
    if if_match is None:
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidIncident(
            f'If-Match {if_match[:20]!r} is not an incident ETag such as "3"', field="If-Match"
        )
    return int(text)


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ gets a leading quote."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value
