"""Open311 GeoReport v2 over GeoGrid's incidents: the catalogue's categories are its services, incidents its requests.

Routes under ``/open311/v2/`` answer ``.json`` or ``.xml`` (https://wiki.open311.org/GeoReport_v2): discovery,
the service list and one service's definition (no attributes beyond the standard fields: ``metadata``
false), POST a request (form-encoded as the spec says, or JSON; ``api_key`` as a field or in the usual
headers), GET requests with the spec's filters, one request, and a token. A report is placed and stored at
once (``type`` realtime), so POST answers the ``service_request_id`` (the incident's id), never a token; a
client that asks ``tokens/{id}`` anyway gets that id back. The one jurisdiction is the default set. An
``Idempotency-Key`` header (a GeoGrid extension) makes a POST safe to retry: the same key and fields answer
200 with the first request's id, the key with other fields is an error.

Every route here answers errors in the spec's shape (``[{"code", "description"}]``, ``<errors><error>``),
GeoGridError and validation errors alike (:class:`Open311Route`): 404 for what does not exist, 403 for a
missing or wrong api_key, 400 for the rest. Requests are public: the reporter's name and phone are stored,
never answered, and phones in texts are masked; GeoGrid's own fields come as ``geogrid_*`` extensions.
The routes stay out of the OpenAPI document, whose contract (problem+json) is not the one they keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import identify, key_of, read_access
from api.dependencies import MAX_INT, StateDep
from api.incidents import placed
from api.state import NotCached, ServiceState
from geogrid.access import Action, Principal
from geogrid.errors import (
    DatabaseUnavailable,
    GeoGridError,
    InvalidParameter,
    NotAuthenticated,
    NotFound,
)
from geogrid.incidents import states
from geogrid.incidents.catalogue import SHIPPED, Service
from geogrid.incidents.intake import Report
from geogrid.people import phones_masked

log = logging.getLogger("geogrid.api")
MEDIA = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
ITEMS = {  # the element each XML list repeats (in JSON, the lists are arrays)
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "endpoints": "endpoint",
    "formats": "format",
}
MAX_REQUESTS = 1000  # the spec's default volume: 90 days or the first 1000 requests, whichever is less
SPAN = dt.timedelta(days=90)
UNITS = ("microgrid", "grid", "community", "street")
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 cannot carry
Format = Annotated[Literal["json", "xml"], Path(description="json or xml.")]
Jurisdiction = Annotated[str | None, Query(max_length=100, description="The boundary set (optional).")]
Listed = Annotated[str | None, Query(max_length=20_000, description="Comma delimited.")]
When = Annotated[str | None, Query(max_length=40, description="w3 format: 2010-01-01T00:00:00Z.")]


class Open311Route(APIRoute):
    """A route whose errors are answered in the spec's shape, in the format its path asked for."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The usual handler, with GeoGrid's, validation and HTTP errors turned into Open311 errors."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except GeoGridError as exc:
                return error_response(request, exc)
            except RequestValidationError as exc:
                return error_response(request, InvalidParameter(_first_error(exc.errors())))
            except OperationalError as exc:  # as api.errors does: the database is away, say so
                log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
                away = DatabaseUnavailable("the database is not answering; try again shortly")
                return error_response(request, away)
            except StarletteHTTPException as exc:  # a malformed multipart body, for one
                status = 400 if exc.status_code < 500 else exc.status_code
                return error_response(request, GeoGridError(str(exc.detail)), status)

        return route


router = APIRouter(route_class=Open311Route, include_in_schema=False, tags=["open311"])


def error_response(request: Request, exc: GeoGridError, status: int | None = None) -> Response:
    """``exc`` as the spec's error list: 404 stays, a missing or wrong key is 403, other refusals 400."""
    headers = {} if isinstance(exc, NotAuthenticated) else exc.headers()  # 403: no WWW-Authenticate
    if status is None and isinstance(exc, NotAuthenticated):
        status = 403  # the spec: 403 for a missing or invalid api_key
    elif status is None:
        status = exc.status if exc.status in (403, 404, 408, 413, 429) or exc.status >= 500 else 400
    errors = [{"code": status, "description": exc.detail}]
    return _answer(_format_of(request), "errors", errors, status, headers)


def _first_error(found: Sequence[Any]) -> str:
    """The first validation error as 'field: message'."""
    first = found[0] if found else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path"))
    return f"{where or 'request'}: {first.get('msg', 'invalid')}"


def _format_of(request: Request) -> str:
    """The format asked for: json when the path says so, else XML (the spec's required one)."""
    asked = request.path_params.get("format") or request.url.path.rpartition(".")[2]
    return "json" if asked == "json" else "xml"


def _answer(
    fmt: str, root: str, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``data`` as JSON, or as an XML document under ``root``, UTF-8 as the spec says."""
    if fmt == "json":
        body = orjson.dumps(data)
    else:
        element = ET.Element(root)
        _fill(element, data)
        body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="utf-8")
    return Response(body, status_code=status, media_type=MEDIA[fmt], headers=dict(headers or {}))


def _fill(element: ET.Element, value: Any) -> None:
    """Dict keys as elements, a list's items as repeated ones, None as an empty one, booleans true/false."""
    if isinstance(value, list):
        for item in value:
            _fill(ET.SubElement(element, ITEMS[element.tag]), item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = NOT_XML.sub("", str(value))


# ---- who, and which set ------------------------------------------------------------------------------
def reader(
    request: Request,
    state: StateDep,
    api_key: Annotated[str | None, Query(max_length=200, description="An API key (optional).")] = None,
) -> Principal | None:
    """The caller of a read: a key in the headers or ``api_key``, or anonymous where public reads are on."""
    key = key_of(request.headers.get("authorization"), request.headers.get("x-api-key")) or api_key
    client = request.client.host if request.client else "unknown"
    app = request.app.state
    principal = read_access(state, app.limiter, key, client, failed=app.failed_keys)
    if principal is not None:
        principal.require(Action.read)
    return principal


Reader = Annotated[Principal | None, Depends(reader)]


def request_reader(state: StateDep, principal: Reader) -> Principal | None:
    """The caller of a read of requests: incidents are no public data (descriptions, places), so a key,
    unless GEOGRID_OPEN311_PUBLIC_REQUESTS opens them to any Open311 app."""
    if principal is None and not state.settings.open311_public_requests:
        raise NotAuthenticated(
            "reading service requests needs an api_key (or GEOGRID_OPEN311_PUBLIC_REQUESTS)"
        )
    return principal


RequestReader = Annotated[Principal | None, Depends(request_reader)]


def _set_name(state: ServiceState, jurisdiction_id: str | None) -> str:
    """The set a jurisdiction_id names: the default set (also when absent or empty); 404 for any other."""
    default = state.settings.default_set
    if jurisdiction_id and jurisdiction_id.strip() and jurisdiction_id.strip() != default:
        raise NotFound(
            f"jurisdiction_id {jurisdiction_id[:100]!r} not found; this endpoint serves {default!r}",
            jurisdiction_id=jurisdiction_id[:100],
        )
    return default


def _service(state: ServiceState, code: str) -> Service:
    """The catalogue's service ``code``; 404 naming it if there is none."""
    found = state.incidents.catalogue.services.get(code.strip())
    if found is None:
        raise NotFound(f"service_code {code[:40]!r} not found; GET services.xml lists them", code=code[:40])
    return found


# ---- discovery and services --------------------------------------------------------------------------
@router.get("/open311/v2/discovery.{format}", summary="Open311 service discovery")
def discovery(request: Request, state: StateDep, format: Format) -> Response:
    """Where the GeoReport v2 endpoint is, what it answers, and how to get a key."""
    try:  # the service list changes only with the catalogue file
        changed = FilePath(state.settings.catalogue or SHIPPED).stat().st_mtime
        changeset = dt.datetime.fromtimestamp(changed, dt.UTC).strftime("%Y-%m-%d %H:%M")
    except OSError:
        changeset = ""
    endpoint = {
        "specification": "http://wiki.open311.org/GeoReport_v2",
        "url": str(request.base_url).rstrip("/") + "/open311/v2",
        "changeset": changeset,
        "type": "production" if state.settings.environment == "production" else "test",
        "formats": ["text/xml", "application/json"],
    }
    return _answer(
        format,
        "discovery",
        {
            "changeset": changeset,
            "contact": "The operators of this GeoGrid service (网格化管理中心).",
            "key_service": "Creating requests needs an API key of the reporter role or above, from this "
            "service's operators (geogrid keys new); reads need none where public reads are on.",
            "endpoints": [endpoint],
        },
    )


def _limit(service: Service) -> str:
    """The service's time limit in words: 限时 2 个工作小时."""
    return f"限时 {service.limit:g} 个工作{'小时' if service.unit == 'hours' else '日'}"


def _service_row(service: Service) -> dict[str, Any]:
    kind, owner = "事件" if service.kind == "event" else "部件", service.owner
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": f"{kind}·{service.group}：{_limit(service)}" + (f"，权属 {owner}" if owner else ""),
        "metadata": False,  # no attributes beyond the standard fields: no definition call needed
        "type": "realtime",
        "keywords": ", ".join(w for w in (service.name, service.group, service.kind, owner) if w),
        "group": service.group,
        **{f"geogrid_{k}": getattr(service, k) for k in ("kind", "limit", "unit", "owner")},
    }


@router.get("/open311/v2/services.{format}", summary="Open311 service list")
def services(state: StateDep, _: Reader, format: Format, jurisdiction_id: Jurisdiction = None) -> Response:
    """The catalogue's categories as Open311 services."""
    _set_name(state, jurisdiction_id)
    return _answer(format, "services", [_service_row(s) for s in state.incidents.catalogue])


@router.get("/open311/v2/services/{service_code}.{format}", summary="Open311 service definition")
def service_definition(
    state: StateDep,
    _: Reader,
    service_code: Annotated[str, Path(max_length=40)],
    format: Format,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """One service's definition: its code and no attributes."""
    _set_name(state, jurisdiction_id)
    code = _service(state, service_code).code
    return _answer(format, "service_definition", {"service_code": code, "attributes": []})


# ---- POST a request ----------------------------------------------------------------------------------
class RequestIn(BaseModel):
    """A service request as the spec's POST sends it; an empty field counts as one not sent."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)  # attribute[…]: none are asked

    api_key: str | None = Field(None, max_length=200)
    jurisdiction_id: str | None = Field(None, max_length=100)
    service_code: str | None = Field(None, max_length=40)
    lat: float | None = Field(None, allow_inf_nan=False)
    long: float | None = Field(None, allow_inf_nan=False)
    address_string: str | None = Field(None, max_length=200)
    address_id: str | None = Field(None, max_length=64)
    email: str | None = Field(None, max_length=254)  # taken, not stored: GeoGrid calls, it does not mail
    device_id: str | None = Field(None, max_length=200)
    account_id: str | None = Field(None, max_length=200)
    first_name: str | None = Field(None, max_length=50)
    last_name: str | None = Field(None, max_length=50)
    phone: str | None = Field(None, max_length=40)
    description: str | None = Field(None, max_length=4000)
    media_url: str | None = Field(None, max_length=2000)

    @field_validator("*", mode="before")
    @classmethod
    def empty_is_absent(cls, value: Any) -> Any:
        """The spec: an empty parameter is one not passed."""
        return None if isinstance(value, str) and not value.strip() else value


async def _fields(request: Request) -> dict[str, Any]:
    """The query's fields, overridden by the body's: form-encoded (the spec), multipart or a JSON object."""
    fields: dict[str, Any] = dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise InvalidParameter(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidParameter("a JSON body must be an object of the spec's fields")
        return fields | body
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        async with request.form(max_files=0, max_fields=200) as form:
            fields |= {name: value for name, value in form.items() if isinstance(value, str)}
    return fields


def _reporter(first: str | None, last: str | None) -> str | None:
    """One name: 伟 + 张 → 张伟 (family name first, as GeoGrid masks it: 张*); john + smith → john smith; at
    most the 100 characters the column holds."""
    if all(c.isascii() for c in (first or "") + (last or "")):
        name = " ".join(p for p in (first, last) if p)
    else:
        name = (last or "") + (first or "")
    return name[:100] or None


@router.post("/open311/v2/requests.{format}", status_code=201, summary="Open311: create a service request")
async def create_request(request: Request, state: StateDep, format: Format) -> Response:
    """Place and store a report as an incident of channel open311; its id is the service_request_id."""
    try:
        body = RequestIn.model_validate(await _fields(request))
    except ValidationError as exc:
        raise InvalidParameter(_first_error(exc.errors())) from exc
    key = key_of(request.headers.get("authorization"), request.headers.get("x-api-key")) or body.api_key
    client = request.client.host if request.client else "unknown"
    principal = identify(state, request.app.state.failed_keys, key, client)
    if principal is None:
        raise NotAuthenticated("api_key was not provided: creating a request needs one")
    principal.require(Action.report)
    set_name = _set_name(state, body.jurisdiction_id)
    if body.service_code is None:
        raise InvalidParameter("service_code was not provided", field="service_code")
    service = _service(state, body.service_code)
    if (body.lat is None) != (body.long is None):
        raise InvalidParameter("send both lat and long", field="long" if body.long is None else "lat")
    if body.lat is None and body.address_string is None:
        alone = " (an address_id alone cannot be placed here)" if body.address_id else ""
        raise InvalidParameter(f"a location is needed: lat and long, or address_string{alone}", field="lat")
    report = Report(
        category=service.code,
        description=body.description or service.name,  # optional in the spec; an incident needs one
        reported_at=dt.datetime.now(dt.UTC),
        channel="open311",
        crs="wgs84" if body.lat is not None else None,
        x=body.long,
        y=body.lat,
        address=body.address_string,
        media=(body.media_url,) if body.media_url else (),
        reporter_name=_reporter(body.first_name, body.last_name),
        reporter_phone=body.phone,
        key=_idempotency_key(request),
    )

    try:
        placement = placed(state, set_name, report, principal, build=False)
    except NotCached:  # the first report of a day or set: read and build off the event loop
        placement = await run_in_threadpool(placed, state, set_name, report, principal)
    sent = hashlib.sha256(  # what the client sent (not the time received): a retry matches its first try
        orjson.dumps(body.model_dump(mode="json", exclude={"api_key"}), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    committed = state.incidents.submit(set_name, report, placement, principal.name, request_hash=sent)
    item, new = await asyncio.wrap_future(committed)  # answered once the incident is committed
    created = {
        "service_request_id": str(item["id"]),
        "service_notice": _notice(service, item["deadline"], state.incidents.calendar.tz),
        "account_id": body.account_id,
    }
    headers = {"Location": f"/open311/v2/requests/{item['id']}.{format}"}
    if not new:
        headers["Idempotent-Replayed"] = "true"
    return _answer(format, "service_requests", [created], 201 if new else 200, headers)


def _idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key header (a GeoGrid extension: a retry with it returns the first
    request's service_request_id, 200 rather than 201); 400 if it is blank or not printable."""
    key = request.headers.get("idempotency-key")
    if key is not None and not (key.strip() and key.isprintable() and len(key) <= 200):
        raise InvalidParameter("Idempotency-Key must be 1–200 printable characters", field="Idempotency-Key")
    return key


# ---- reading requests --------------------------------------------------------------------------------
def _w3(value: dt.datetime | None, tz: str) -> str | None:
    """A timestamp in w3 form with its offset, in the calendar's time zone: 2026-07-01T09:30:00+08:00."""
    return value.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds") if value is not None else None


def _notice(service: Service, deadline: dt.datetime | None, tz: str) -> str:
    due = _w3(deadline, tz)
    return f"{service.name}：{_limit(service)}" + (f"，{due} 前办结" if due else "")


def _request_row(state: ServiceState, item: Mapping[str, Any], note: str | None) -> dict[str, Any]:
    """One incident as the spec's request (public: no reporter, phones masked) with geogrid_* extensions."""
    tz = state.incidents.calendar.tz
    service = state.incidents.catalogue.services.get(item["category"])
    level = str(item["level"])  # who has it: a department, or an area level (with its code, where known)
    area = item.get(level) if level in UNITS else None
    return {
        "service_request_id": str(item["id"]),
        "status": "closed" if item["state"] in states.FINAL else "open",
        "status_notes": phones_masked(note) if note else None,
        "service_name": service.name if service else item["category"],
        "service_code": item["category"],
        "description": phones_masked(item["description"]),
        "agency_responsible": f"{level}:{area}" if area else level.removeprefix("department:"),
        "service_notice": _notice(service, item["deadline"], tz) if service else None,
        "requested_datetime": _w3(item["reported_at"], tz),
        "updated_datetime": _w3(item["updated_at"], tz),
        "expected_datetime": _w3(item["deadline"], tz),
        "address": phones_masked(item["address"]) if item.get("address") else None,
        "address_id": item.get("address_id"),
        "zipcode": None,
        "lat": item.get("lat"),
        "long": item.get("lon"),
        "media_url": item["media"][0] if item.get("media") else None,
        **{f"geogrid_{unit}": item.get(unit) for unit in UNITS},
        "geogrid_state": item["state"],
        "geogrid_deadline": _w3(item["deadline"], tz),
    }


def _answer_requests(state: ServiceState, fmt: str, items: Sequence[Mapping[str, Any]]) -> Response:
    """``items`` as the spec's request list, each with the last note of its log as status_notes."""
    notes = state.incidents.last_notes([int(i["id"]) for i in items])
    rows = [_request_row(state, i, notes.get(int(i["id"]))) for i in items]
    return _answer(fmt, "service_requests", rows)


def _when(text: str | None, name: str) -> dt.datetime | None:
    """A w3 date-time with its zone (2010-01-01T00:00:00Z); 400 naming the parameter otherwise."""
    if text is None or not text.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        example = "such as 2010-01-01T00:00:00Z"
        raise InvalidParameter(
            f"{name} {text[:40]!r} is not a w3 date-time with its zone, {example}", field=name
        )
    return value.astimezone(dt.UTC)  # as stored: SQLite compares the text


def _listed(text: str | None) -> list[str] | None:
    """A comma list (the spec's way of declaring a parameter several times); None when absent or empty."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return items or None


@router.get("/open311/v2/requests.{format}", summary="Open311 service requests")
def list_requests(
    state: StateDep,
    principal: RequestReader,
    format: Format,
    jurisdiction_id: Jurisdiction = None,
    service_request_id: Listed = None,
    service_code: Listed = None,
    start_date: When = None,
    end_date: When = None,
    status: Annotated[str | None, Query(max_length=20, description="open, closed or both.")] = None,
) -> Response:
    """Requests newest first: by ids, or by service codes, status and a span (the last 90 days unless given)."""
    filters: dict[str, Any] = {}
    if (ids := _listed(service_request_id)) is not None:  # the spec: ids override every other filter
        if len(ids) > MAX_REQUESTS or not all(i.isdigit() and 0 < int(i) <= MAX_INT for i in ids):
            raise InvalidParameter(
                f"service_request_id: up to {MAX_REQUESTS} request ids, comma delimited",
                field="service_request_id",
            )
        filters["ids"] = [int(i) for i in ids]
    else:
        filters["categories"] = _listed(service_code)
        if (statuses := _listed(status)) is not None:
            if not set(statuses) <= {"open", "closed"}:
                raise InvalidParameter(f"status {status!r} is not open, closed or both", field="status")
            wanted = (states.FINAL if "closed" in statuses else set()) | (
                states.OPEN if "open" in statuses else set()
            )
            filters["states_in"] = sorted(wanted)
        start, end = _when(start_date, "start_date"), _when(end_date, "end_date")
        if start is None:  # the spec's default: the 90 days up to the end (or now)
            start = (end or dt.datetime.now(dt.UTC)) - SPAN
        if end is not None and end < start:
            raise InvalidParameter("end_date is before start_date", field="end_date")
        filters |= {"start": start, "end": end}
    if principal is not None and principal.scope is not None:
        filters["units"] = [principal.scope]
    found = state.incidents.search(_set_name(state, jurisdiction_id), limit=MAX_REQUESTS, **filters)
    return _answer_requests(state, format, found)


def _visible(
    state: ServiceState, jurisdiction_id: str | None, text: str, principal: Principal | None
) -> dict[str, Any]:
    """The incident ``text`` names, or 404 (also for one outside the caller's scope, or no id at all)."""
    set_name, item = _set_name(state, jurisdiction_id), None
    if text.isdigit() and 0 < int(text) <= MAX_INT:
        with contextlib.suppress(NotFound):
            item = state.incidents.get(set_name, int(text))
    scope = principal.scope if principal is not None else None
    if item is None or (scope is not None and not any((item.get(u) or "").startswith(scope) for u in UNITS)):
        raise NotFound(f"service_request_id {text[:40]!r} not found", service_request_id=text[:40])
    return item


@router.get("/open311/v2/requests/{service_request_id}.{format}", summary="Open311: one service request")
def get_request(
    state: StateDep,
    principal: RequestReader,
    service_request_id: Annotated[str, Path(max_length=40)],
    format: Format,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """One request, as a list of one (the spec's shape)."""
    return _answer_requests(state, format, [_visible(state, jurisdiction_id, service_request_id, principal)])


@router.get("/open311/v2/tokens/{token}.{format}", summary="Open311: the request id of a token")
def token(
    state: StateDep,
    principal: RequestReader,
    token: Annotated[str, Path(max_length=40)],
    format: Format,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """GeoGrid answers POST with the id at once, so a token is that id: this answers it back if it exists."""
    item = _visible(state, jurisdiction_id, token, principal)
    return _answer(format, "service_requests", [{"service_request_id": str(item["id"]), "token": token}])


@router.api_route("/open311/v2/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(request: Request, rest: str) -> Response:
    """Anything else under /open311/v2/: 404 in the spec's shape (a path without .json or .xml too)."""
    path = request.url.path[:120]
    raise NotFound(f"no Open311 resource {request.method} {path}; try GET /open311/v2/services.xml")
