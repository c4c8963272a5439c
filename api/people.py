"""People and posts: list, read, create, end a post, import a roster.

Reads are open to every reader; phones come masked (138****1234) unless the caller's role may contact
people. Writes need a staff role (planner, admin); a key limited to a street or community writes only
posts under it, and changes the name, phone or kind only of people who never held a post outside it.
Every write names the set's revision it is based on (``If-Match``): 428 without one, 409 when it is stale
(as drafts), and answers with the revision it made as the new ETag. No phone is ever taken from a query
string (the access log keeps those) nor repeated in an error."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile  # what a parsed form holds (FastAPI's subclasses it)

from api.auth import reader, require
from api.dependencies import MAX_INT, StateDep
from api.drafts import IfMatch, etag, expected_revision
from api.state import ServiceState
from geogrid import people, rosters
from geogrid.access import Action, Principal
from geogrid.db.people import Roster, RosterReport
from geogrid.errors import InvalidRoster, MissingColumn, VersionConflict

router = APIRouter(prefix="/v1/sets/{set_name}", tags=["people"])
Reader = Annotated[Principal | None, Depends(reader)]
Staff = Annotated[Principal, Depends(require(Action.staff))]
AtQuery = Query(None, description="Posts in force on this date (default: every post, ended ones too).")
UnitQuery = Query(None, max_length=32, description="Only this unit and the units under it (a code prefix).")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class PostIn(BaseModel):
    """A new post, and the person who holds it (added, or their name, phone and kind updated)."""

    person_id: str | None = Field(
        None, max_length=32, description="The office's id for the person; derived when absent."
    )
    name: str = Field(max_length=100)
    phone: str = Field(max_length=32, description="Mobile or landline; shown masked to most callers.")
    kind: str = Field(max_length=32, description="leader, worker_fulltime … or 网格长, 专职网格员 …")
    role: str = Field(max_length=32, description="leader, worker, secretary … or 网格长, 网格员 …")
    unit_code: str = Field(max_length=32)
    valid_from: dt.date
    valid_to: dt.date | None = Field(None, description="The first day out of force (exclusive).")
    buildings: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=1000, description="Building ids the person answers for (1+X)."
    )


class EndIn(BaseModel):
    """When a post ends."""

    valid_to: dt.date = Field(description="The first day the post is no longer in force.")


def full_phones(principal: Principal | None) -> bool:
    """True when the caller may see people's full phone numbers."""
    return principal is not None and principal.may(Action.contact)


def _shown(record: dict[str, Any], full: bool) -> dict[str, Any]:
    return record if full else {**record, "phone": people.mask_phone(record["phone"])}


def _roster(state: ServiceState, actor: str = "geogrid") -> Roster:
    return Roster(state.store.engine, actor=actor)


def _read(principal: Principal | None) -> bool:
    if principal is not None:
        principal.require(Action.read)
    return full_phones(principal)


# ---- reads -----------------------------------------------------------------------------------------
@router.get("/people", summary="People with posts in the set (in force on a date, under a unit)")
def list_people(
    state: StateDep,
    principal: Reader,
    set_name: str,
    at: dt.date | None = AtQuery,
    unit: str | None = UnitQuery,
) -> dict[str, Any]:
    """Every person of the set (with a post in force on ``at`` and under ``unit`` when given)."""
    full = _read(principal)
    found = _roster(state).people(set_name, at, unit=unit)
    rows = [_shown(r, full) for r in found.to_dict("records")]
    return {"set": set_name, "at": at, "unit": unit, "phones": "full" if full else "masked", "people": rows}


@router.get("/people/{person_id}", summary="One person and every post they held or hold")
def read_person(
    state: StateDep, principal: Reader, set_name: str, person_id: Annotated[str, Path(max_length=32)]
) -> dict[str, Any]:
    """A person with their posts, oldest first (history included)."""
    full = _read(principal)
    return _shown(_roster(state).person(set_name, person_id), full)


@router.get("/posts", summary="Posts of the set (in force on a date, under a unit)")
def list_posts(
    state: StateDep,
    principal: Reader,
    set_name: str,
    at: dt.date | None = AtQuery,
    unit: str | None = UnitQuery,
) -> dict[str, Any]:
    """Posts with their holders; every post (ended ones too) unless ``at`` is given."""
    full = _read(principal)
    posts = _roster(state).posts(set_name, at, unit=unit)
    rows = [_shown(r, full) for r in posts.to_dict("records")]
    for r in rows:
        r["post_id"] = int(r["post_id"])
    return {"set": set_name, "at": at, "unit": unit, "phones": "full" if full else "masked", "posts": rows}


# ---- writes ----------------------------------------------------------------------------------------
def _expected(state: ServiceState, set_name: str, if_match: str | None) -> int | None:
    """The revision If-Match names: 428 without one, 409 when the set has moved on since (as drafts)."""
    expected = expected_revision(if_match, set_name)
    current = state.store.revision(set_name)
    if expected is not None and expected != current:
        raise VersionConflict(
            f"{set_name!r} has changed since revision {expected} (it is at {current}); reload and retry",
            set=set_name,
            revision=current,
            header="If-Match",
        )
    return expected


def _written(state: ServiceState, response: Response, set_name: str, revision: int) -> None:
    """After a write: forget what is cached of the set and send its new ETag."""
    state.changed(set_name)
    response.headers["ETag"] = etag(revision)


@router.post("/posts", status_code=201, summary="Add a post (and its person)")
def create_post(
    state: StateDep,
    principal: Staff,
    response: Response,
    set_name: str,
    body: PostIn,
    if_match: str | None = IfMatch,
) -> dict[str, Any]:
    """Add a post; a key limited to a street or community may name only units under it."""
    expected = _expected(state, set_name, if_match)
    made = _roster(state, principal.name).create_post(
        set_name, **body.model_dump(), scope=principal.scope, expect_revision=expected
    )
    _written(state, response, set_name, made.revision)  # from the write: no query after the commit
    return _shown(made.post, full_phones(principal))


@router.post("/posts/{post_id}/end", summary="End a post on a date (the post is kept, as history)")
def end_post(
    state: StateDep,
    principal: Staff,
    response: Response,
    set_name: str,
    post_id: Annotated[int, Path(ge=1, le=MAX_INT)],
    body: EndIn,
    if_match: str | None = IfMatch,
) -> dict[str, Any]:
    """Set the post's ``valid_to``; it stays readable as of earlier dates. An ended post cannot be ended again."""
    expected = _expected(state, set_name, if_match)
    ended = _roster(state, principal.name).end_post(
        set_name, post_id, body.valid_to, scope=principal.scope, expect_revision=expected
    )
    _written(state, response, set_name, ended.revision)
    return _shown(ended.post, full_phones(principal))


ROSTER_BODY = {
    "requestBody": {
        "description": "The roster file, as the form field `file` or as the raw body (CSV or .xlsx).",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/roster", summary="Import a roster (a dry run unless commit)", openapi_extra=ROSTER_BODY)
async def import_roster(
    request: Request,
    state: StateDep,
    principal: Staff,
    response: Response,
    set_name: str,
    commit: bool = Query(False, description="Write the good rows; without it, only report."),
    if_match: str | None = IfMatch,
) -> dict[str, Any]:
    """Check every row of a roster (CSV in UTF-8, UTF-8 with BOM or GBK, or .xlsx; Chinese or English
    headers) and, with ``commit``, write the good rows in one transaction. Bad rows are reported by row,
    field and person id (never a phone); a key limited to a street or community has rows outside it
    refused as row errors. A roster with no good row at all is 422."""
    data, filename = await _upload(request)
    report = await run_in_threadpool(_import, state, principal, set_name, data, filename, commit, if_match)
    summary = report.summary()
    if report.errors and not (report.new or report.ended or report.unchanged):  # nothing was written
        raise InvalidRoster(
            f"none of the {report.rows} row(s) can be taken; the first: {report.errors[0]}",
            set=set_name,
            row_errors=summary["row_errors"],
        )
    if commit:
        _written(state, response, set_name, report.revision or 0)
    return summary


def _import(
    state: ServiceState,
    principal: Principal,
    set_name: str,
    data: bytes,
    filename: str,
    commit: bool,
    if_match: str | None,
) -> RosterReport:
    expected = _expected(state, set_name, if_match) if commit else None
    rows: pd.DataFrame = rosters.read_roster(data, filename=filename)
    return _roster(state, principal.name).import_roster(
        set_name, rows, commit=commit, scope=principal.scope, expect_revision=expected
    )


async def _upload(request: Request) -> tuple[bytes, str]:
    """The roster's bytes and a name for it: a multipart form's ``file``, or the raw body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise MissingColumn("send the roster as the form field 'file'", field="file")
            return await upload.read(), people_filename(upload.filename, kind)
    return await request.body(), people_filename(None, kind)


def people_filename(sent: str | None, content_type: str) -> str:
    """The name errors call an upload: as sent (cut short), else ``roster.xlsx`` or ``roster.csv``."""
    if sent:
        return sent[-100:]
    return "roster.xlsx" if content_type == XLSX else "roster.csv"
