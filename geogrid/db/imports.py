"""Importing a layer into a set's draft: prepare the units, compare them with the draft, write them.

One core function shared by the CLI, the API and notebooks (through :meth:`Store.import_units`). A dry
run unless told to commit: the :class:`ImportReport` says what would be added, removed and changed, with
warnings for units outside their parents (and a hint when the file's datum looks mislabelled). A commit
creates the set and its draft as needed (the draft a copy of the latest published version) and replaces
one level of it, in one transaction, with a line in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from sqlalchemy import Connection

from geogrid import deadline
from geogrid.changes import carry_over, compare
from geogrid.crs import transform_geometries
from geogrid.db.schema import boundary_set, boundary_version, unit
from geogrid.db.store import DRAFT, UNIT_FIELDS, _now
from geogrid.errors import NotFound, OutOfScope, VersionConflict
from geogrid.hierarchy import MAX_VERTICES, Level, check_parents, parse_level, prepare_units
from geogrid.io import echo

if TYPE_CHECKING:
    from geogrid.db.store import Store


@dataclass
class ImportReport:
    """What an import changes (or, as a dry run, would change) in a set's draft, level by level."""

    set_name: str
    level: str
    rows: int
    draft_number: int | None
    base_number: int | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    committed: bool = False
    # What changed per unit, in the order of ``changed``: {"code", "name": {"old", "new"}, "attributes":
    # {field: {"old", "new"}}, "dropped": [fields that lose their value], "geometry": {"area_m2", "shift_m"}}
    changes: list[dict[str, Any]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # count fields the file lacks, kept from the draft

    def summary(self) -> dict[str, Any]:
        """Counts for printing or JSON, with what changed per unit and which fields were kept."""
        return {
            "set": self.set_name,
            "level": self.level,
            "rows": self.rows,
            "draft": self.draft_number,
            "base": self.base_number,
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
            "unchanged": len(self.unchanged),
            "warnings": len(self.warnings),
            "committed": self.committed,
            "dropped": sum(1 for c in self.changes if c.get("dropped")),
            "kept": self.kept,
            "changes": self.changes,
        }


def import_units(
    store: Store,
    set_name: str,
    frame: gpd.GeoDataFrame,
    level: str | Level,
    *,
    commit: bool = False,
    actor: str | None = None,
    title: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    within: str | None = None,
    expect_revision: int | None = None,
    max_vertices: int = MAX_VERTICES,
) -> ImportReport:
    """Replace one level of the set's draft with ``frame`` (code, name, geometry in WGS-84).

    A dry run unless ``commit``: the report says what would be added, removed and changed against
    the draft (or, with no draft yet, against the latest published version). With ``commit`` the
    set and draft are created as needed, all in one transaction. ``within`` (a street or community
    code) replaces only the units under it, and refuses rows outside it; ``expect_revision`` refuses
    the write (VersionConflict) when the set has changed since that revision.

    What the file does not carry (households, population, attributes: columns it lacks) is kept from
    the units it replaces, matched by code; geometry that moved by less than a millimetre keeps the
    draft's. The report says per unit what changes (``changes``), and a commit writes exactly that. A
    unit of more than ``max_vertices`` vertices is refused (TooManyVertices) before any other work.
    """
    level = parse_level(level)
    units = prepare_units(frame, level, max_vertices=max_vertices)
    if within is not None:
        _check_within(units, within)
    actor = actor or store.actor
    with store.engine.begin() as conn:
        try:
            set_id: int | None
            set_id, seen = store._set_row(conn, set_name, lock=commit)
        except NotFound:
            set_id, seen = None, 0
        draft = store._draft(conn, set_id) if set_id is not None else None
        base = store._latest_published(conn, set_id) if set_id is not None else None
        source_id = (draft or base or {}).get("id")
        current = store._units(conn, source_id) if source_id else None
        if current is not None and within is not None:
            current = current[current["code"].str.startswith(within)]
        report = ImportReport(
            set_name=set_name,
            level=level.name,
            rows=len(units),
            draft_number=draft["number"] if draft else None,
            base_number=(draft["base_number"] if draft else (base["number"] if base else None)),
        )
        before = current[current["level"] == level.name] if current is not None else units.iloc[:0]
        units, report.kept = carry_over(before, units, frame.columns)
        found = compare(before, units)
        units = units.set_geometry(found.geometry, crs=4326)
        report.added, report.removed = found.added, found.removed
        report.changed, report.unchanged, report.changes = found.changed, found.unchanged, found.changes
        deadline.check()  # a request whose client was told it timed out stops here
        if current is not None:
            report.warnings += _hierarchy_warnings(units, current, level, frame.attrs.get("source_crs"))
        if not commit:
            conn.rollback()
            return report
        set_id = set_id if set_id is not None else _ensure_set(store, conn, set_name, title, actor)
        store._claim(conn, set_id, set_name, seen, expect_revision)
        if draft is None:
            draft = _new_draft(store, conn, set_id, base, actor)
            report.draft_number = draft["number"]
        replaced = sa.and_(unit.c.version_id == draft["id"], unit.c.level == level.name)
        if within is not None:
            replaced = sa.and_(replaced, unit.c.code.startswith(within, autoescape=True))
        conn.execute(sa.delete(unit).where(replaced))
        _insert_units(conn, draft["id"], units, progress)
        counts = {k: v for k, v in report.summary().items() if k != "changes"}
        store._audit(conn, actor, "import", set_name, draft["number"], {**counts, "within": within})
        report.committed = True
    return report


def _ensure_set(store: Store, conn: Connection, name: str, title: str | None, actor: str) -> int:
    try:
        return store._set_id(conn, name, lock=True)
    except NotFound:
        pass
    if not name.strip() or len(name) > 100 or not name.isprintable():
        raise NotFound(f"invalid boundary set name {echo(name)!r}", set=echo(name))
    try:
        set_id = conn.execute(
            sa.insert(boundary_set)
            .values(name=name, title=title, created_at=_now())
            .returning(boundary_set.c.id)
        ).scalar_one()
    except sa.exc.IntegrityError:
        raise VersionConflict(f"{name!r} was created by another write meanwhile; retry", set=name) from None
    store._audit(conn, actor, "create_set", name, None, {"title": title})
    return int(set_id)


def _new_draft(
    store: Store, conn: Connection, set_id: int, base: dict[str, Any] | None, actor: str
) -> dict[str, Any]:
    number = (
        conn.execute(
            sa.select(sa.func.max(boundary_version.c.number)).where(boundary_version.c.set_id == set_id)
        ).scalar()
        or 0
    ) + 1
    version_id = conn.execute(
        sa.insert(boundary_version)
        .values(
            set_id=set_id,
            number=number,
            status=DRAFT,
            base_number=base["number"] if base else None,
            created_at=_now(),
            created_by=actor,
        )
        .returning(boundary_version.c.id)
    ).scalar_one()
    if base is not None:
        # Copy in SQL: geometries never leave the database, so they come back bit for bit.
        cols = "code, name, level, parent_code, households, population, attributes, geom"
        conn.execute(
            sa.text(
                f"INSERT INTO unit (version_id, {cols}) SELECT :new, {cols} FROM unit WHERE version_id = :old"
            ),
            {"new": version_id, "old": base["id"]},
        )
    return store._version_row(conn, set_id, number)


def _insert_units(
    conn: Connection,
    version_id: int,
    units: gpd.GeoDataFrame,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 500,
) -> None:
    rows = []
    for record, geom in zip(units[list(UNIT_FIELDS)].to_dict("records"), units.geometry, strict=True):
        for key in ("households", "population"):
            record[key] = None if record[key] is None or pd.isna(record[key]) else int(record[key])
        rows.append({**record, "version_id": version_id, "geom": from_shape(geom, srid=4326, extended=True)})
    for start in range(0, len(rows), chunk):
        conn.execute(sa.insert(unit), rows[start : start + chunk])
        if progress is not None:
            progress(min(start + chunk, len(rows)), len(rows))


def _check_within(units: gpd.GeoDataFrame, within: str) -> None:
    outside = [i for i, code in enumerate(units["code"]) if not str(code).startswith(within)]
    if outside:
        shown = ", ".join(f"row {i} ({units['code'].iloc[i]})" for i in outside[:5])
        raise OutOfScope(
            f"{len(outside)} unit(s) lie outside {within}: {shown}"
            + (f" and {len(outside) - 5} more" if len(outside) > 5 else ""),
            row=outside[0],
            code=str(units["code"].iloc[outside[0]]),
            scope=within,
        )


def _hierarchy_warnings(
    units: gpd.GeoDataFrame, current: gpd.GeoDataFrame, level: Level, source_crs: str | None = None
) -> list[str]:
    """Warnings for a dry run: parents that do not contain the new units, children left orphaned.

    When many units lie outside their parents in a layer read as WGS-84 (or with no label known), and
    they fit far better once read as GCJ-02 (or BD-09), the first warning says so.
    """
    warnings: list[str] = []
    if level.parent is not None:
        parents = current[current["level"] == level.parent.name]
        if not parents.empty:
            violations = check_parents(units, parents)
            if source_crs in (None, "wgs84", "cgcs2000"):
                hint = _datum_hint(units, parents, sum(v.outside_m2 == v.outside_m2 for v in violations))
                warnings += [hint] if hint else []
            warnings += [str(v) for v in violations]
    if level.child is not None:
        children = current[current["level"] == level.child.name]
        orphans = sorted(set(children["parent_code"]) - set(units["code"]))
        warnings += [f"{level.child.name} units of {code} would lose their parent" for code in orphans]
    return warnings


HINT_MIN_SHARE = 0.1  # a datum hint is considered when at least this share of units lies outside its parent


def _datum_hint(units: gpd.GeoDataFrame, parents: gpd.GeoDataFrame, outside: int) -> str | None:
    """A hint to import with --crs gcj02 (or bd09) when that makes far more units fit their parent.

    ``outside`` counts the units that stick out of an existing parent (NaN outside_m2 marks a missing one).
    """
    if outside < max(3, HINT_MIN_SHARE * len(units)):
        return None
    best: tuple[int, str] | None = None
    for name in ("gcj02", "bd09"):
        deadline.check()
        moved = units.set_geometry(transform_geometries(units.geometry.to_numpy(), name), crs=4326)
        n = len([v for v in check_parents(moved, parents) if v.outside_m2 == v.outside_m2])  # not NaN
        if n <= outside / 4 and (best is None or n < best[0]):
            best = (n, name)
    if best is None:
        return None
    n, name = best
    label = {"gcj02": "GCJ-02 (Amap, Tencent)", "bd09": "BD-09 (Baidu)"}[name]
    return (
        f"{outside} of {len(units)} units lie outside their parent as read, but only {n} if the file is "
        f"{label} labelled WGS-84: import it again with --crs {name}"
    )
