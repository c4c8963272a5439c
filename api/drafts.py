"""Writes to a boundary set: upload a file into the draft (dry run first), validate, publish, discard.

Every write names the revision it is based on (``If-Match`` with the set's ETag); a stale one gets 409
and nothing is written, so two planners cannot overwrite each other's work.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

import shapely
from fastapi import APIRouter, File, Header, Query, Response, UploadFile
from pydantic import BaseModel, Field

from api.auth import Planner, Publisher
from api.dependencies import StateDep
from api.state import ServiceState
from geogrid import io
from geogrid.errors import GeoGridError, NotFound, PreconditionRequired, VersionConflict
from geogrid.hierarchy import Level
from geogrid.topology import check

router = APIRouter(prefix="/v1/sets", tags=["drafts"])
LevelName = Literal["county", "street", "community", "grid", "microgrid"]
IfMatch = Header(
    None,
    alias="If-Match",
    description='The set\'s ETag (from GET /v1/sets/{name}) this write is based on, e.g. "r7"; * for any.',
)
ETAG = re.compile(r'(?:W/)?"r(\d+)"')


def etag(revision: int) -> str:
    """The ETag of a set at ``revision``."""
    return f'"r{revision}"'


def expected_revision(if_match: str | None, set_name: str) -> int | None:
    """The revision an If-Match header names (None for ``*``); 428 without one, 409 if unreadable."""
    if if_match is None:
        raise PreconditionRequired(
            f"send If-Match with {io.echo(set_name)!r}'s ETag (GET /v1/sets/{io.echo(set_name)}) so no one's "
            "work is overwritten",
            header="If-Match",
        )
    if if_match.strip() == "*":
        return None
    found = ETAG.fullmatch(if_match.strip())
    if found is None:
        raise VersionConflict(
            f"If-Match {io.echo(if_match)!r} is not an ETag of {io.echo(set_name)!r}", header="If-Match"
        )
    return int(found.group(1))


def _written(state: ServiceState, response: Response, set_name: str, expected: int | None) -> None:
    """After a write: forget cached versions and send the new ETag."""
    state.changed(set_name)
    revision = expected + 1 if expected is not None else state.store.revision(set_name)
    response.headers["ETag"] = etag(revision)


@router.post("/{name}/draft/{level}", summary="Upload a level into the draft (a dry run unless commit)")
def upload(
    state: StateDep,
    principal: Planner,
    response: Response,
    name: str,
    level: LevelName,
    file: UploadFile = File(..., description="GeoJSON, zipped Shapefile (.zip), GeoPackage or KML."),
    commit: bool = Query(False, description="Write the draft; without it, only report what would change."),
    crs: str | None = Query(None, description="The file's CRS when it has none or a wrong one (gcj02 …)."),
    layer: str | None = Query(None, description="The layer of a multi-layer file."),
    code_field: str = Query("code", description="The column holding unit codes."),
    name_field: str = Query("name", description="The column holding unit names."),
    if_match: str | None = IfMatch,
) -> dict[str, Any]:
    """Replace one level of the set's draft with the file's units; a planner limited to a street or
    community replaces only the units under it. The report lists what is added, removed and changed."""
    expected = expected_revision(if_match, name) if commit else None
    sent = io.echo(file.filename or "upload")  # errors name the file as the client sent it
    suffix = "".join(Path(file.filename or "upload").suffixes[-2:]).lower() or ".geojson"
    with tempfile.TemporaryDirectory(prefix="geogrid-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix if re.fullmatch(r'[.a-z0-9]{1,16}', suffix) else ''}"
        try:
            with path.open("wb") as out:
                while chunk := file.file.read(1 << 20):
                    out.write(chunk)
            frame = io.read_boundaries(
                path,
                crs=crs,
                layer=layer,
                code=code_field,
                name=name_field,
                max_unpacked_mb=state.settings.max_unpacked_mb,
                max_compression_ratio=state.settings.max_compression_ratio,
            )
            report = state.store.import_units(
                name,
                frame,
                level,
                commit=commit,
                actor=principal.name,
                within=principal.scope,
                expect_revision=expected,
            )
        except GeoGridError as exc:  # the file as sent, never a server path; no long echoes
            io.relabel(exc, path, sent)
            raise
    if commit:
        _written(state, response, name, expected)
    return {
        **report.summary(),
        "added": report.added,
        "removed": report.removed,
        "changed": report.changed,
        "warnings": report.warnings,
    }


@router.get("/{name}/draft/problems", summary="Validate the draft: gaps, overlaps, slivers per level")
def problems(
    state: StateDep,
    principal: Planner,
    name: str,
    tolerance_m: float = Query(
        1.0, gt=0, le=100, description="Gaps and overlaps thinner than this are slivers."
    ),
) -> dict[str, Any]:
    """Check each level of the draft against the level above it (the topology checks of publishing).

    ``ok`` is true when no level has a fault; units in several parts (islands) are listed among the
    problems for information (``summary.information``) and, as in publishing, block nothing."""
    draft = next((v for v in state.store.versions(name) if v.status == "draft"), None)
    if draft is None:
        raise NotFound(f"{name!r} has no draft", set=name)
    units = state.store.units(name, version=draft.number)
    levels: dict[str, Any] = {}
    for level in Level:
        children = units[units["level"] == level.name]
        if children.empty:
            continue
        parents = units[units["level"] == level.parent.name] if level.parent is not None else None
        report = check(
            children, parents if parents is not None and len(parents) else None, tolerance_m=tolerance_m
        )
        levels[level.name] = {
            "summary": report.summary,
            "faults": len(report.faults),
            "problems": _features(report.problems),
        }
    return {
        "set": name,
        "draft": draft.number,
        # a unit in several parts (an island) is reported among the problems but is no fault: still ok
        "ok": all(v["faults"] == 0 for v in levels.values()),
        "levels": levels,
    }


def _features(problems: Any) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "kind": row["kind"],
                    "codes": list(row["codes"]),
                    "area_m2": float(row["area_m2"]),
                    "detail": row["detail"],
                },
                "geometry": shapely.geometry.mapping(row["geometry"]),
            }
            for _, row in problems.iterrows()
        ],
    }


class PublishIn(BaseModel):
    """What publishing needs."""

    valid_from: dt.date = Field(description="The first day the new version is in force.")
    note: str | None = Field(None, max_length=2000, description="Why: kept with the version.")
    force: str | None = Field(
        None, max_length=2000, description="Publish although levels do not tile: the reason, audited."
    )


@router.post("/{name}/publish", summary="Publish the draft from a date")
def publish(
    state: StateDep,
    principal: Publisher,
    response: Response,
    name: str,
    body: PublishIn,
    if_match: str | None = IfMatch,
) -> dict[str, Any]:
    """Publish the set's draft from ``valid_from``; the version before stays readable as of earlier dates."""
    expected = expected_revision(if_match, name)
    version = state.store.publish(
        name,
        body.valid_from,
        actor=principal.name,
        note=body.note,
        force=body.force,
        expect_revision=expected,
    )
    _written(state, response, name, expected)
    return {"set": name, "number": version.number, "valid_from": version.valid_from, "units": version.units}


@router.delete("/{name}/draft", status_code=204, summary="Discard the draft")
def discard(state: StateDep, principal: Publisher, name: str, if_match: str | None = IfMatch) -> Response:
    """Delete the set's draft; published versions are never deleted."""
    expected = expected_revision(if_match, name)
    state.store.discard_draft(name, actor=principal.name, expect_revision=expected)
    response = Response(status_code=204)
    _written(state, response, name, expected)
    return response
