"""Geocoding: address text to building and micro-grid, coordinates to the nearest address, and the queue.

``GET /v1/geocode`` answers one text and never writes; ``POST /v1/geocode`` answers up to 10,000 texts in
order, each bad one as its own problem (the others kept), and puts the texts the matcher is not sure of in
the set's manual-placement queue. ``GET /v1/reverse`` names the standard address nearest a point. The
queue is listed and resolved by commanders and planners (a key limited to a street or community sees the
items with a candidate inside it, and places only inside it); a resolved text becomes an alias. Planners
upload registries (a dry run unless ``commit``, If-Match as for rosters). The micro-grid in every answer
comes from the index of the version in force, never from the registry. Address texts are never logged (the
access log keeps paths only) nor repeated in an error except masked (:func:`geogrid.people.shown`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from api.auth import reader, require
from api.batch import geographic
from api.dependencies import MAX_INT, StateDep
from api.drafts import IfMatch, etag
from api.lookup import CRS_HELP, SET_HELP, Crs, Decimal, known_parameters
from api.people import XLSX, _expected, _written
from api.state import ServiceState
from geogrid.access import Action, Principal
from geogrid.addresses.matcher import Match
from geogrid.addresses.registry import read_addresses
from geogrid.coordinates import out_of_range
from geogrid.crs import WGS84, earth_point, normalize_crs
from geogrid.db.addresses import AddressStore, RegistryReport
from geogrid.errors import (
    InvalidAddress,
    InvalidRegistry,
    MissingColumn,
    PayloadTooLarge,
    UnknownCRS,
)
from geogrid.index import GridIndex
from geogrid.people import shown

router = APIRouter(tags=["addresses"])
Reader = Annotated[Principal | None, Depends(reader)]
Reporter = Annotated[Principal, Depends(require(Action.report))]
Placer = Annotated[Principal, Depends(require(Action.place))]
Registrar = Annotated[Principal, Depends(require(Action.register))]
MAX_TEXTS = 10_000  # texts a batch may carry
MAX_CHARS = 200  # as geogrid.addresses.text.MAX_CHARS: longer is refused before any matching
BODY_BYTES = MAX_TEXTS * (MAX_CHARS * 4 + 64) + 4096  # the largest body a full batch of long texts needs
QUEUE_SOURCE = "api"


def _check_length(text: str, field: str) -> None:
    """Refuse a text longer than any address before it reaches the matcher (nor repeat it)."""
    if len(text) > MAX_CHARS:
        raise InvalidAddress(
            f"{field}: {len(text):,} characters; an address has at most {MAX_CHARS}", field=field
        )


def _named(exc: InvalidAddress, field: str) -> InvalidAddress:
    """The matcher's refusal, naming the field it came from."""
    detail = exc.detail if exc.detail.startswith(f"{field}:") else f"{field}: {exc.detail}"
    return InvalidAddress(shown(detail), field=field)  # not the text itself: the caller has it


def _microgrids(index: GridIndex, points: Sequence[tuple[float, float]]) -> list[str | None]:
    """The micro-grid holding each WGS-84 point (None outside every unit), from the loaded index."""
    if not points:
        return []
    lon = np.fromiter((p[0] for p in points), dtype=np.float64, count=len(points))
    lat = np.fromiter((p[1] for p in points), dtype=np.float64, count=len(points))
    return [str(c) or None for c in index.assign(lon, lat).code]


def _with_microgrids(index: GridIndex, answers: Sequence[dict[str, Any]]) -> None:
    """Add ``microgrid`` to every address and candidate of ``answers`` (Match.to_dict() bodies), in place."""
    places = [a["address"] for a in answers if a.get("address")]
    places += [c for a in answers for c in a.get("candidates", ())]
    for place, code in zip(places, _microgrids(index, [(p["lon"], p["lat"]) for p in places]), strict=True):
        place["microgrid"] = code


def _version(index: GridIndex) -> Any:
    return index.meta.get("version")


def _address_store(state: ServiceState, actor: str = "geogrid") -> AddressStore:
    """The set's registry and queue, its micro-grids (for scopes) from the service's loaded index."""
    return AddressStore(state.store.engine, actor=actor, index=state.index)


# ---- geocode ---------------------------------------------------------------------------------------
@router.get(
    "/v1/geocode",
    summary="Where is this address? (one text; never queues)",
    dependencies=[Depends(known_parameters("q", "set"))],
)
def geocode(
    state: StateDep,
    principal: Reader,
    q: Annotated[str, Query(description=f"The address text, at most {MAX_CHARS} characters.")],
    set: Annotated[str | None, Query(max_length=100, description=SET_HELP)] = None,
) -> dict[str, Any]:
    """Match one address text against the set's registry: the building, its point and micro-grid, the
    calibrated confidence and which parts matched. Below the threshold ``placed`` is false and the
    candidates (best first, each with its micro-grid) and the reason are given; nothing is queued (POST
    queues). An empty, too long or control-character text is 422 naming ``q``; Latin or emoji text is
    answered unplaced."""
    if principal is not None:
        principal.require(Action.read)
    _check_length(q, "q")
    matcher = state.matcher(set)
    try:
        found = matcher.match(q)
    except InvalidAddress as exc:
        raise _named(exc, "q") from None
    index = state.index(set)
    answer = {**found.to_dict(), "queue_id": None}
    _with_microgrids(index, [answer])
    return {"set": index.meta["set"], "version": _version(index), **answer}


class GeocodeIn(BaseModel):
    """A batch of address texts."""

    texts: list[Any] = Field(max_length=MAX_TEXTS, description=f"Address texts, at most {MAX_TEXTS:,}.")
    set: str | None = Field(None, max_length=100, description=SET_HELP)


async def _body(request: Request) -> GeocodeIn:
    """The batch, refused (413) once it is larger than a full batch of the longest texts can be."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > BODY_BYTES:
            raise PayloadTooLarge(
                f"a geocode batch is at most {MAX_TEXTS:,} texts of {MAX_CHARS} characters "
                f"({BODY_BYTES // 1_000_000} MB)",
                field="body",
            )
        chunks.append(chunk)
    try:
        return GeocodeIn.model_validate(orjson.loads(b"".join(chunks)))
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError([{"loc": ("body",), "msg": f"not JSON: {exc.msg}"}]) from None
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None


@router.post(
    "/v1/geocode",
    summary="Where are these addresses? (a batch; unsure texts are queued)",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": GeocodeIn.model_json_schema()}},
            "required": True,
        }
    },
)
async def geocode_batch(request: Request, state: StateDep, principal: Reporter) -> dict[str, Any]:
    """Match up to 10,000 address texts; ``results`` keeps their order, each with its ``index`` (0-based).
    A text that cannot be matched (not a string, empty, only punctuation, control characters, over 200
    characters) is answered with a ``problem`` naming ``texts[i]``, and the others are answered. Texts
    below the threshold go to the set's manual-placement queue (once per text: a repeat counts as seen
    again) and carry its ``queue_id``."""
    body = await _body(request)
    return await run_in_threadpool(_batch, state, principal, body)


def _batch(state: ServiceState, principal: Principal, body: GeocodeIn) -> dict[str, Any]:
    matcher = state.matcher(body.set)
    index = state.index(body.set)
    name = str(index.meta["set"])
    problems: dict[int, InvalidAddress] = {}
    texts: list[str] = []
    at: list[int] = []  # the index in the batch of each text matched
    for i, text in enumerate(body.texts):
        field = f"texts[{i}]"
        if not isinstance(text, str):
            kind = "null" if text is None else type(text).__name__
            problems[i] = InvalidAddress(f"{field}: not a text ({kind})", field=field)
            continue
        try:
            _check_length(text, field)
        except InvalidAddress as exc:
            problems[i] = exc
            continue
        texts.append(text)
        at.append(i)
    found = matcher.match_many(texts)
    results: list[dict[str, Any] | None] = [None] * len(body.texts)
    unsure: list[tuple[int, Match]] = []
    for i, match in zip(at, found, strict=True):
        if isinstance(match, InvalidAddress):
            problems[i] = _named(match, f"texts[{i}]")
            continue
        results[i] = {"index": i, **match.to_dict(), "queue_id": None}
        if not match.placed:
            unsure.append((i, match))
    if unsure:
        ids = _address_store(state, principal.name).enqueue(name, [m for _, m in unsure], QUEUE_SOURCE)
        for (i, _), queue_id in zip(unsure, ids, strict=True):
            answer = results[i]
            assert answer is not None
            answer["queue_id"] = int(queue_id)
    answers = [r for r in results if r is not None]
    _with_microgrids(index, answers)
    for i, error in problems.items():
        results[i] = {"index": i, "placed": False, "problem": error.to_problem()}
    return {
        "set": name,
        "version": _version(index),
        "threshold": state.settings.geocode_threshold,
        "placed": sum(1 for a in answers if a["placed"]),
        "queued": len(unsure),
        "errors": len(problems),
        "results": results,
    }


# ---- reverse ---------------------------------------------------------------------------------------
@router.get(
    "/v1/reverse",
    summary="Which standard address is nearest this point?",
    dependencies=[Depends(known_parameters("lon", "lat", "crs", "max_m", "set"))],
)
def reverse(
    state: StateDep,
    principal: Reader,
    lon: Annotated[Decimal, Query(description="Longitude, -180..180 (or x in a projected CRS).")],
    lat: Annotated[Decimal, Query(description="Latitude, -90..90 (or y in a projected CRS).")],
    crs: Annotated[Crs, Query(description=CRS_HELP)] = "wgs84",
    max_m: Annotated[
        float, Query(ge=0, le=1000, description="Look this far (metres), at most 1 km.")
    ] = 100.0,
    set: Annotated[str | None, Query(max_length=100, description=SET_HELP)] = None,
) -> dict[str, Any]:
    """The standard address nearest a point within ``max_m`` metres (``address`` null when none), its
    distance, and the micro-grid holding the point (null outside every unit). The point may be in any CRS
    the lookup takes; the answer's lon/lat are WGS-84."""
    if principal is not None:
        principal.require(Action.read)
    if geographic(crs) and not (abs(lon) <= 180 and abs(lat) <= 90):
        name = "lon" if abs(lon) > 180 else "lat"
        raise RequestValidationError([{"loc": ("query", name), "msg": out_of_range(lon, lat)}])
    point = (float(lon), float(lat)) if crs == WGS84 else earth_point(float(lon), float(lat), crs)
    if point is None:
        raise RequestValidationError(
            [{"loc": ("query", "lon"), "msg": f"({lon}, {lat}) is not a point in {crs}"}]
        )
    x, y = point
    index = state.index(set)
    nearest = state.matcher(set).nearest(x, y, max_m)
    address, distance = (nearest[0].to_dict(), round(float(nearest[1]), 2)) if nearest else (None, None)
    points = [(x, y)] + ([(address["lon"], address["lat"])] if address else [])
    codes = _microgrids(index, points)
    if address is not None:
        address["microgrid"] = codes[1]
    return {
        "set": index.meta["set"],
        "version": _version(index),
        "lon": x,
        "lat": y,
        "microgrid": codes[0],
        "address": address,
        "distance_m": distance,
        "max_m": max_m,
    }


# ---- the queue -------------------------------------------------------------------------------------
QUEUE = "/v1/sets/{set_name}/addresses/queue"


@router.get(QUEUE, summary="Address texts waiting for a person to place them")
def list_queue(
    state: StateDep,
    principal: Placer,
    set_name: str,
    status: Annotated[str, Query(pattern="^(open|resolved)$", description="open or resolved.")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> dict[str, Any]:
    """The queue's items, oldest first, with their candidates (each with its micro-grid); phones in the
    texts masked. A key limited to a street or community sees the items with a candidate inside it."""
    items = _address_store(state).queue(
        set_name, status=status, scope=principal.scope, limit=limit, offset=offset
    )
    rows = [_item(r) for r in items.to_dict("records")]
    index = state.index(set_name)
    _with_microgrids(index, rows)
    return {"set": set_name, "status": status, "scope": principal.scope, "items": rows}


def _item(record: dict[str, Any]) -> dict[str, Any]:
    """A queue row as JSON: plain numbers and text, no NaN, candidates as a list."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif isinstance(value, np.integer):
            value = int(value)
        elif isinstance(value, np.floating):
            value = float(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    if isinstance(out.get("candidates"), str | bytes):
        out["candidates"] = orjson.loads(out["candidates"])
    out["candidates"] = list(out.get("candidates") or [])
    return out


class ResolveIn(BaseModel):
    """Where a queued text is: a registry address, or a point."""

    address_id: str | None = Field(None, max_length=64, description="The registry address it means.")
    lon: float | None = Field(None, description="Or a point: longitude (or x in a projected CRS).")
    lat: float | None = Field(None, description="Latitude (or y in a projected CRS).")
    crs: str = Field("wgs84", max_length=64, description=CRS_HELP)


@router.post(f"{QUEUE}/{{item_id}}/resolve", summary="Place a queued text (it becomes an alias)")
def resolve(
    state: StateDep,
    principal: Placer,
    set_name: str,
    item_id: Annotated[int, Path(ge=1, le=MAX_INT)],
    body: ResolveIn,
) -> dict[str, Any]:
    """Place a queued text on a registry address in force (``address_id``) or a point (``lon``, ``lat``,
    ``crs``): the text is recorded as an alias, so it matches by itself from the next request on. A key
    limited to a street or community places only inside it (by the micro-grid of the address or point)."""
    point = _resolve_point(body)
    store = _address_store(state, principal.name)
    done = _item(
        store.resolve(set_name, item_id, address_id=body.address_id, point=point, scope=principal.scope)
    )
    target = done["address_id"] or point
    assert target is not None  # resolve names an address or a point
    state.alias_placed(set_name, done["alias"], target)
    where = point or _address_point(store, set_name, done)
    return {**done, "microgrid": _microgrids(state.index(set_name), [where])[0]}


def _resolve_point(body: ResolveIn) -> tuple[float, float] | None:
    """The WGS-84 point a resolution names, or None when it names an address; 422 unless exactly one."""
    has_point = body.lon is not None or body.lat is not None
    if (body.address_id is None) == (not has_point):
        _refuse("address_id", "give either address_id or lon and lat")
    if not has_point:
        return None
    if body.lon is None or body.lat is None:
        _refuse("lat" if body.lat is None else "lon", "a point needs both lon and lat")
    assert body.lon is not None and body.lat is not None
    for name, value in (("lon", body.lon), ("lat", body.lat)):
        if not math.isfinite(value):
            _refuse(name, f"{name} must be a finite number, not {value}")
    try:
        crs = normalize_crs(body.crs)
    except UnknownCRS as exc:
        _refuse("crs", exc.detail)
    if geographic(crs) and not (abs(body.lon) <= 180 and abs(body.lat) <= 90):
        _refuse("lon" if abs(body.lon) > 180 else "lat", out_of_range(body.lon, body.lat))
    if crs == WGS84:
        return (body.lon, body.lat)
    point = earth_point(body.lon, body.lat, crs)
    if point is None:
        _refuse("lon", f"({body.lon}, {body.lat}) is not a point in {body.crs}")
    return point


def _refuse(field: str, message: str) -> NoReturn:
    """A 422 naming a field of the body, as FastAPI's own validation errors are."""
    raise RequestValidationError([{"loc": ("body", field), "msg": message}])


def _address_point(store: AddressStore, set_name: str, item: dict[str, Any]) -> tuple[float, float]:
    """The point of the address an item was placed on: its candidate's, else the registry's."""
    for c in item["candidates"]:
        if c.get("address_id") == item["address_id"]:
            return (float(c["lon"]), float(c["lat"]))
    found = store.addresses(set_name)
    row = found[found["address_id"] == item["address_id"]].iloc[0]
    return (float(row["lon"]), float(row["lat"]))


# ---- registry uploads ------------------------------------------------------------------------------
REGISTRY_BODY = {
    "requestBody": {
        "description": "The registry file, as the form field `file` or as the raw body (CSV or .xlsx).",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/v1/sets/{set_name}/addresses",
    summary="Import standard addresses (a dry run unless commit)",
    openapi_extra=REGISTRY_BODY,
)
async def import_registry(
    request: Request,
    state: StateDep,
    principal: Registrar,
    response: Response,
    set_name: str,
    commit: bool = Query(False, description="Write; without it, only report what would change."),
    if_match: str | None = IfMatch,
) -> dict[str, Any]:
    """Check every row of a registry (CSV in UTF-8, UTF-8 with BOM or GBK, or .xlsx; the Chinese headers
    地址编码, 道路, 门牌号 ... or the English ones) and, with ``commit`` and If-Match, write it in one
    transaction: new, changed, unchanged and ended addresses, each change a new version (history kept).
    Rows that cannot be taken are reported by row and field (``row_errors``) while the good rows beside them
    are taken; a file none of whose rows can be taken is a 422."""
    data, filename = await _upload(request)
    report = await run_in_threadpool(_import, state, principal, set_name, data, filename, commit, if_match)
    summary = report.summary()
    if report.errors and not (report.new or report.changed or report.unchanged or report.ended):
        raise InvalidRegistry(
            f"none of the {report.rows} row(s) can be taken; the first: {report.errors[0]}",
            set=set_name,
            row_errors=summary["row_errors"],
        )
    if report.written:
        _written(state, response, set_name, report.revision or state.store.revision(set_name))
        state.addresses_changed(set_name)
    elif commit:
        response.headers["ETag"] = etag(report.revision or state.store.revision(set_name))
    return summary


def _import(
    state: ServiceState,
    principal: Principal,
    set_name: str,
    data: bytes,
    filename: str,
    commit: bool,
    if_match: str | None,
) -> RegistryReport:
    expected = _expected(state, set_name, if_match) if commit else None
    frame = read_addresses(data, filename=filename)
    return _address_store(state, principal.name).import_addresses(
        set_name, frame, commit=commit, scope=principal.scope, expect_revision=expected
    )


async def _upload(request: Request) -> tuple[bytes, str]:
    """The registry's bytes and a name for it: a multipart form's ``file``, or the raw body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise MissingColumn("send the registry as the form field 'file'", field="file")
            return await upload.read(), (upload.filename or "")[-100:] or "addresses.csv"
    return await request.body(), "addresses.xlsx" if kind == XLSX else "addresses.csv"
