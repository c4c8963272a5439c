"""The versioned boundary store: boundary sets, draft and published versions, units and the audit log.

A set's history is a sequence of versions. Imports (:mod:`geogrid.db.imports`) write into the set's one
open *draft*, which starts as a copy of the latest published version so that a planner can replace one
level at a time. Publishing a draft gives it ``valid_from`` and closes the validity of the version before
it (``valid_to``); nothing is ever overwritten, so a read "as of" any date returns the units in force on
that day. Every write runs in one transaction and leaves a line in the audit log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from geogrid import deadline
from geogrid.changes import compare
from geogrid.db.schema import audit_log, boundary_set, boundary_version, unit
from geogrid.errors import HierarchyViolation, NotFound, TopologyProblems, VersionConflict
from geogrid.hierarchy import MAX_VERTICES, Level, check_parents, parse_level
from geogrid.io import echo
from geogrid.topology import INFO_KINDS, check

if TYPE_CHECKING:
    from geogrid.db.imports import ImportReport

DRAFT, PUBLISHED = "draft", "published"
UNIT_FIELDS = ("code", "name", "level", "parent_code", "households", "population", "attributes")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@overload
def _utc(value: dt.datetime) -> dt.datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every GeoGrid timestamp is UTC."""
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class VersionInfo:
    """One version of a boundary set."""

    set_name: str
    number: int
    status: str
    base_number: int | None
    valid_from: dt.date | None
    valid_to: dt.date | None
    created_at: dt.datetime
    created_by: str
    published_at: dt.datetime | None
    published_by: str | None
    note: str | None
    units: dict[str, int] = field(default_factory=dict)

    def in_force(self, at: dt.date) -> bool:
        """True when this version is the published one in force on ``at``."""
        return (
            self.status == PUBLISHED
            and self.valid_from is not None
            and self.valid_from <= at
            and (self.valid_to is None or at < self.valid_to)
        )


def in_force(versions: list[VersionInfo], set_name: str, at: dt.date | None = None) -> VersionInfo:
    """The version among ``versions`` in force on ``at`` (default: today), or NotFound."""
    at = at or dt.date.today()
    for version in reversed(versions):
        if version.in_force(at):
            return version
    raise NotFound(
        f"no published version of {set_name!r} is in force on {at.isoformat()}",
        set=set_name,
        at=at.isoformat(),
    )


class Store:
    """Read and write versioned boundary sets in a PostGIS or SpatiaLite database."""

    def __init__(self, engine: Engine, actor: str = "geogrid") -> None:
        self.engine = engine
        self.actor = actor

    @property
    def identity(self) -> str:
        """Which database this is (its URL without a password): keys caches of immutable versions."""
        return self.engine.url.render_as_string(hide_password=True)

    # ---- sets -------------------------------------------------------------------------------------
    def sets(self) -> list[str]:
        """Names of all boundary sets."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(boundary_set.c.name).order_by(boundary_set.c.name)).scalars())

    def _set_id(self, conn: Connection, name: str, *, lock: bool = False) -> int:
        return self._set_row(conn, name, lock=lock)[0]

    def _set_row(self, conn: Connection, name: str, *, lock: bool = False) -> tuple[int, int]:
        """The set's id and revision; ``lock`` holds its row (PostGIS) until the transaction ends."""
        if not name.isprintable():  # control characters (NUL breaks PostgreSQL) name no set
            raise NotFound(f"no boundary set named {echo(name)!r}", set=echo(name))
        query = sa.select(boundary_set.c.id, boundary_set.c.revision).where(boundary_set.c.name == name)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no boundary set named {echo(name)!r}", set=echo(name))
        return int(row[0]), int(row[1])

    def revision(self, set_name: str) -> int:
        """The set's revision: bumped by every write, so it serves as the set's ETag."""
        with self.engine.connect() as conn:
            return self._set_row(conn, set_name)[1]

    def _claim(self, conn: Connection, set_id: int, set_name: str, seen: int, expect: int | None) -> None:
        """Bump the set's revision from ``seen`` (compare-and-set), or refuse a stale or concurrent write.

        ``expect`` is the revision the caller based the write on (an HTTP If-Match); the compare-and-set
        also catches a write that landed between this one's read and its update, on either database.
        """
        if expect is not None and expect != seen:
            raise VersionConflict(
                f"{set_name!r} has changed since revision {expect} (it is at {seen}); reload and retry",
                set=set_name,
                revision=seen,
            )
        bumped = conn.execute(
            sa.update(boundary_set)
            .where(boundary_set.c.id == set_id, boundary_set.c.revision == seen)
            .values(revision=seen + 1)
        ).rowcount
        if bumped != 1:
            raise VersionConflict(
                f"{set_name!r} was changed by another write while this one ran; reload and retry",
                set=set_name,
            )

    # ---- versions ---------------------------------------------------------------------------------
    def versions(self, set_name: str) -> list[VersionInfo]:
        """Every version of a set, oldest first, with unit counts per level."""
        with self.engine.connect() as conn:
            return self._versions(conn, self._set_id(conn, set_name), set_name)

    def _versions(self, conn: Connection, set_id: int, set_name: str) -> list[VersionInfo]:
        rows = (
            conn.execute(
                sa.select(boundary_version)
                .where(boundary_version.c.set_id == set_id)
                .order_by(boundary_version.c.number)
            )
            .mappings()
            .all()
        )
        counts: dict[int, dict[str, int]] = {}
        for version_id, level, n in conn.execute(
            sa.select(unit.c.version_id, unit.c.level, sa.func.count())
            .join(boundary_version, boundary_version.c.id == unit.c.version_id)
            .where(boundary_version.c.set_id == set_id)
            .group_by(unit.c.version_id, unit.c.level)
        ):
            counts.setdefault(version_id, {})[level] = n
        order = {lvl.name: lvl.value for lvl in Level}
        return [
            VersionInfo(
                set_name=set_name,
                number=r["number"],
                status=r["status"],
                base_number=r["base_number"],
                valid_from=r["valid_from"],
                valid_to=r["valid_to"],
                created_at=_utc(r["created_at"]),
                created_by=r["created_by"],
                published_at=_utc(r["published_at"]),
                published_by=r["published_by"],
                note=r["note"],
                units=dict(sorted(counts.get(r["id"], {}).items(), key=lambda kv: order.get(kv[0], 99))),
            )
            for r in rows
        ]

    def version_at(self, set_name: str, at: dt.date | None = None) -> VersionInfo:
        """The published version in force on ``at`` (default: today)."""
        return in_force(self.versions(set_name), set_name, at)

    def _first_version(self, conn: Connection, set_id: int, *where: Any) -> dict[str, Any] | None:
        """The set's version matching ``where`` with the highest number, as a dict (None if none)."""
        query = (
            sa.select(boundary_version)
            .where(boundary_version.c.set_id == set_id, *where)
            .order_by(boundary_version.c.number.desc())
            .limit(1)
        )
        row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def _version_row(self, conn: Connection, set_id: int, number: int) -> dict[str, Any]:
        row = self._first_version(conn, set_id, boundary_version.c.number == number)
        if row is None:
            raise NotFound(f"no version {number}", version=number)
        return row

    def _draft(self, conn: Connection, set_id: int) -> dict[str, Any] | None:
        return self._first_version(conn, set_id, boundary_version.c.status == DRAFT)

    def _latest_published(self, conn: Connection, set_id: int) -> dict[str, Any] | None:
        return self._first_version(conn, set_id, boundary_version.c.status == PUBLISHED)

    # ---- units ------------------------------------------------------------------------------------
    def units(
        self,
        set_name: str,
        *,
        at: dt.date | None = None,
        version: int | None = None,
        level: str | Level | None = None,
    ) -> gpd.GeoDataFrame:
        """Units of a set as a GeoDataFrame (WGS-84): of ``version`` if given, else of the one in force ``at``."""
        number = version if version is not None else self.version_at(set_name, at).number
        with self.engine.connect() as conn:
            set_id = self._set_id(conn, set_name)
            version_id = self._version_row(conn, set_id, number)["id"]
            return self._units(conn, version_id, parse_level(level) if level is not None else None)

    def _units(self, conn: Connection, version_id: int, level: Level | None = None) -> gpd.GeoDataFrame:
        query = sa.select(*(unit.c[f] for f in UNIT_FIELDS), sa.func.ST_AsBinary(unit.c.geom).label("wkb"))
        query = query.where(unit.c.version_id == version_id).order_by(unit.c.code)
        if level is not None:
            query = query.where(unit.c.level == level.name)
        rows = conn.execute(query).all()
        table = pd.DataFrame([r[:-1] for r in rows], columns=list(UNIT_FIELDS))
        geoms = shapely.from_wkb(np.array([bytes(r[-1]) for r in rows], dtype=object)) if rows else []
        frame = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms, crs=4326), crs=4326)
        for col in ("households", "population"):
            frame[col] = frame[col].astype("Int64")
        return frame

    def diff(self, set_name: str, old: int, new: int) -> dict[str, dict[str, Any]]:
        """What changed from version ``old`` to ``new``, level by level: codes added, removed, changed."""
        with self.engine.connect() as conn:
            set_id = self._set_id(conn, set_name)
            before = self._units(conn, self._version_row(conn, set_id, old)["id"])
            after = self._units(conn, self._version_row(conn, set_id, new)["id"])
        out: dict[str, dict[str, Any]] = {}
        for level in Level:
            a, b = before[before["level"] == level.name], after[after["level"] == level.name]
            if a.empty and b.empty:
                continue
            found = compare(a, b)
            out[level.name] = {
                "added": found.added,
                "removed": found.removed,
                "changed": found.changed,
                "unchanged": len(found.unchanged),
            }
        return out

    # ---- writes -----------------------------------------------------------------------------------
    def import_units(
        self,
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
        """Replace one level of the set's draft with ``frame``: a dry run unless ``commit``.

        See :func:`geogrid.db.imports.import_units`, which does the work.
        """
        # Imported here: the importer builds on the store, so the module dependency runs one way.
        from geogrid.db.imports import import_units

        return import_units(
            self,
            set_name,
            frame,
            level,
            commit=commit,
            actor=actor,
            title=title,
            progress=progress,
            within=within,
            expect_revision=expect_revision,
            max_vertices=max_vertices,
        )

    def publish(
        self,
        set_name: str,
        valid_from: dt.date,
        *,
        actor: str | None = None,
        note: str | None = None,
        tolerance_m2: float = 1.0,
        force: str | None = None,
        expect_revision: int | None = None,
        allow_multipart: bool = True,
    ) -> VersionInfo:
        """Publish the set's draft from ``valid_from``, closing the previous version's validity.

        Refuses (VersionConflict) when ``valid_from`` is not after the previous version's,
        (HierarchyViolation) when a unit does not lie in the parent its code names, and
        (TopologyProblems) when a level does not tile the level above; ``force`` (the reason, kept in
        the audit log with the problems) publishes it anyway. Units in several parts (islands) are
        reported in the audit log but block nothing unless ``allow_multipart`` is False. The set's row is locked for the
        transaction and its revision compared-and-set, so of concurrent publishes one wins and the
        others get VersionConflict; so does a publish based on a stale ``expect_revision``.
        """
        actor = actor or self.actor
        with self.engine.begin() as conn:
            set_id, seen = self._set_row(conn, set_name, lock=True)
            self._claim(conn, set_id, set_name, seen, expect_revision)
            draft = self._draft(conn, set_id)
            if draft is None:
                raise NotFound(f"{set_name!r} has no draft to publish; import into it first", set=set_name)
            latest = self._latest_published(conn, set_id)
            latest_number = latest["number"] if latest else None
            if latest and latest["valid_from"] and valid_from <= latest["valid_from"]:
                raise VersionConflict(
                    f"valid_from {valid_from.isoformat()} must be after v{latest['number']}'s "
                    f"valid_from {latest['valid_from'].isoformat()}",
                    set=set_name,
                    field="valid_from",
                )
            units = self._units(conn, draft["id"])
            if units.empty:
                raise NotFound(f"draft v{draft['number']} of {set_name!r} holds no units", set=set_name)
            deadline.check()
            violations = _violations(units, tolerance_m2)
            if violations:
                shown = "; ".join(violations[:10]) + (
                    f"; and {len(violations) - 10} more" if len(violations) > 10 else ""
                )
                raise HierarchyViolation(
                    f"{len(violations)} unit(s) do not lie in the parent their code names: {shown}",
                    set=set_name,
                    version=draft["number"],
                )
            deadline.check()
            topology = _topology(units)
            blocking = {
                level: kinds
                for level, counts in topology.items()
                if (kinds := {k: n for k, n in counts.items() if not allow_multipart or k not in INFO_KINDS})
            }
            if blocking and not force:
                shown = "; ".join(
                    f"{level}: {', '.join(f'{n} {k}' for k, n in counts.items())}"
                    for level, counts in blocking.items()
                )
                raise TopologyProblems(
                    f"draft v{draft['number']} of {set_name!r} does not tile: {shown}. Fix it (geogrid validate "
                    "shows where), or publish with a reason to force it",
                    set=set_name,
                    version=draft["number"],
                )
            if latest:
                conn.execute(
                    sa.update(boundary_version)
                    .where(boundary_version.c.id == latest["id"])
                    .values(valid_to=valid_from)
                )
            conn.execute(
                sa.update(boundary_version)
                .where(boundary_version.c.id == draft["id"])
                .values(
                    status=PUBLISHED,
                    valid_from=valid_from,
                    published_at=_now(),
                    published_by=actor,
                    note=note,
                )
            )
            self._audit(
                conn,
                actor,
                "publish",
                set_name,
                draft["number"],
                {
                    "valid_from": valid_from.isoformat(),
                    "closes": latest_number,
                    "note": note,
                    "units": units["level"].value_counts().to_dict(),
                    "forced": force if blocking else None,
                    "topology": topology,
                },
            )
            versions = self._versions(conn, set_id, set_name)
        return next(v for v in versions if v.number == draft["number"])

    def discard_draft(
        self, set_name: str, *, actor: str | None = None, expect_revision: int | None = None
    ) -> int:
        """Delete the set's open draft (published versions are never deleted); return its number."""
        with self.engine.begin() as conn:
            set_id, seen = self._set_row(conn, set_name, lock=True)
            draft = self._draft(conn, set_id)
            if draft is None:
                raise NotFound(f"{set_name!r} has no draft", set=set_name)
            self._claim(conn, set_id, set_name, seen, expect_revision)
            conn.execute(sa.delete(unit).where(unit.c.version_id == draft["id"]))
            conn.execute(sa.delete(boundary_version).where(boundary_version.c.id == draft["id"]))
            self._audit(conn, actor or self.actor, "discard_draft", set_name, draft["number"], {})
            return int(draft["number"])

    # ---- audit ------------------------------------------------------------------------------------
    def _audit(
        self,
        conn: Connection,
        actor: str,
        action: str,
        set_name: str | None,
        number: int | None,
        detail: dict[str, Any],
    ) -> None:
        write_audit(conn, actor, action, detail, set_name=set_name, number=number)

    def audit(self, set_name: str | None = None) -> list[dict[str, Any]]:
        """The audit log (who, when, what), oldest first, optionally for one set."""
        query = sa.select(audit_log).order_by(audit_log.c.id)
        if set_name is not None:
            query = query.where(audit_log.c.set_name == set_name)
        with self.engine.connect() as conn:
            return [{**r, "at": _utc(r["at"])} for r in conn.execute(query).mappings()]


def write_audit(
    conn: Connection,
    actor: str,
    action: str,
    detail: dict[str, Any],
    *,
    set_name: str | None = None,
    number: int | None = None,
) -> None:
    """Add a line to the audit log, in the caller's transaction."""
    conn.execute(
        sa.insert(audit_log).values(
            at=_now(), actor=actor, action=action, set_name=set_name, version_number=number, detail=detail
        )
    )


def _topology(units: gpd.GeoDataFrame) -> dict[str, dict[str, int]]:
    """Problem counts per level (each level checked against the level above it when present)."""
    present = set(units["level"])
    out: dict[str, dict[str, int]] = {}
    for level in Level:
        deadline.check()
        if level.name not in present:
            continue
        children = units[units["level"] == level.name]
        parent = level.parent
        parents = (
            units[units["level"] == parent.name] if parent is not None and parent.name in present else None
        )
        counts = {k: n for k, n in check(children, parents).summary["count"].items() if n}
        if counts:
            out[level.name] = counts
    return out


def _violations(units: gpd.GeoDataFrame, tolerance_m2: float) -> list[str]:
    present = set(units["level"])
    out: list[str] = []
    for level in Level:
        deadline.check()
        if level.parent is None or level.name not in present or level.parent.name not in present:
            continue
        children = units[units["level"] == level.name]
        parents = units[units["level"] == level.parent.name]
        out += [str(v) for v in check_parents(children, parents, tolerance_m2=tolerance_m2)]
    return out
