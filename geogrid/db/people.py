"""People and their posts in the database: read them as of a date, create and end posts, import rosters.

History is never lost: a post is never deleted or rewritten; ending it sets ``valid_to`` (with who and
when). A person's name, phone or kind can change, and every change is audited with the phone masked.
Every write bumps the set's revision (its ETag), as boundary writes do, and leaves one audit line.

Which units a row may name: those of the published version in force on the row's ``valid_from``; a row
that starts before the set's first published version is checked against that first version.

A key limited to a street or community (``scope``) names only units under it, and may not change the name,
phone or kind of a person who holds or held a post outside it (a person is one record for the whole set);
it may still give such a person a post inside, their details unchanged.

A row without a person id is the person stored (or named with an id elsewhere in the file) with the same
name and phone, when exactly one is; otherwise it is a new person with an id derived from them.

A roster import keeps good data beside bad: with ``commit`` the good rows are written and the bad ones
reported (row as in the file, field, person id, message: never a phone), all in one transaction, so if
anything fails while writing nothing is written. Importing the same file again changes nothing: a post
already stored is reported as unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from geogrid import people, rosters
from geogrid.db.posts import (
    PERSON_FIELDS,
    end_posts,
    private,
    read_people,
    read_posts,
    records,
    write_plan,
)
from geogrid.db.schema import boundary_version, building, post, unit
from geogrid.db.store import Store, write_audit
from geogrid.errors import GeoGridError, InvalidCode, InvalidPost, NotFound, OutOfScope, VersionConflict
from geogrid.rosters import RowError


@dataclass
class RosterReport:
    """What a roster import writes (or, as a dry run, would write), and the rows it cannot take."""

    set_name: str
    rows: int
    new: list[dict[str, Any]] = field(default_factory=list)  # posts added, as in :meth:`summary` (no phone)
    ended: list[dict[str, Any]] = field(default_factory=list)  # stored open posts the file ends
    unchanged: int = 0
    people_added: int = 0
    people_changed: list[str] = field(default_factory=list)  # person ids whose name, phone or kind change
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    committed: bool = False
    revision: int | None = None  # the set's revision after the import

    def summary(self) -> dict[str, Any]:
        """Counts, the posts that change and the row errors, for printing or JSON (phones never appear)."""
        return {
            "set": self.set_name,
            "rows": self.rows,
            "new": len(self.new),
            "ended": len(self.ended),
            "unchanged": self.unchanged,
            "people_added": self.people_added,
            "people_changed": len(self.people_changed),
            "errors": len(self.errors),
            "committed": self.committed,
            "revision": self.revision,
            "changes": [{**c, "action": "new"} for c in self.new]
            + [{**c, "action": "end"} for c in self.ended],
            "row_errors": [
                {"row": e.row, "field": e.field, "person_id": e.person_id, "message": e.message}
                for e in self.errors
            ],
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class PostWrite:
    """A post as written by :meth:`Roster.create_post` or :meth:`Roster.end_post`, and the set's revision
    that write made (its new ETag: nothing needs reading after the commit)."""

    post: dict[str, Any]
    revision: int


class Roster:
    """The people of a boundary set and the posts they hold, in a PostGIS or SpatiaLite database."""

    def __init__(self, engine: Engine, actor: str = "geogrid") -> None:
        self.engine = engine
        self.actor = actor
        self._store = Store(engine, actor)

    # ---- reads ------------------------------------------------------------------------------------
    def posts(self, set_name: str, at: dt.date | None = None, *, unit: str | None = None) -> pd.DataFrame:
        """Posts as :data:`geogrid.people.POST_COLUMNS`: all of them (history too) unless ``at`` is given,
        then those in force on it; ``unit`` keeps the posts of that unit and the units under it."""
        with self.engine.connect() as conn:
            return read_posts(conn, self._store._set_id(conn, set_name), at, unit)

    def people(self, set_name: str, at: dt.date | None = None, *, unit: str | None = None) -> pd.DataFrame:
        """People (person_id, name, phone, kind, posts: how many), with a post in force on ``at`` and under
        ``unit`` when given (else everyone, past posts too), ordered by person_id."""
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            held = read_posts(conn, set_id, at, unit)
            if at is None and unit is None:
                found = read_people(conn, set_id)
            else:
                found = read_people(conn, set_id, set(held["person_id"]))
        counts = held["person_id"].value_counts()
        rows = [{**p, "posts": int(counts.get(p["person_id"], 0))} for p in found]
        return pd.DataFrame(rows, columns=[*PERSON_FIELDS, "posts"])

    def person(self, set_name: str, person_id: str) -> dict[str, Any]:
        """One person with every post they held or hold (a list of dicts, oldest first); NotFound if none."""
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            found = read_people(conn, set_id, {person_id})
            if not found:
                raise NotFound(f"no person {person_id!r} in {set_name!r}", set=set_name, person_id=person_id)
            held = read_posts(conn, set_id, None, None, person_id=person_id)
        held = held.sort_values(["valid_from", "post_id"]).drop(
            columns=["person_id", "name", "phone", "kind"]
        )
        return {**found[0], "posts": records(held)}

    # ---- writes -----------------------------------------------------------------------------------
    def import_roster(
        self,
        set_name: str,
        rows: pd.DataFrame,
        *,
        commit: bool,
        scope: str | None = None,
        expect_revision: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RosterReport:
        """Check every row of a roster (from :func:`geogrid.rosters.read_roster`) and, with ``commit``, write
        the good ones in one transaction; a dry run writes nothing.

        ``scope`` (a street or community code) refuses rows for units outside it, as row errors;
        ``expect_revision`` refuses the write (VersionConflict) when the set has changed since.
        """
        with private(), self.engine.begin() as conn:
            set_id, seen = self._store._set_row(conn, set_name, lock=commit)
            report, plan = _plan(conn, set_id, set_name, rows, scope)
            if not commit:
                conn.rollback()
                report.revision = seen
                return report
            if plan.empty:  # nothing to write: the revision stays (a re-import is a no-op)
                _check_expected(set_name, seen, expect_revision)
                report.committed, report.revision = True, seen
                return report
            self._store._claim(conn, set_id, set_name, seen, expect_revision)
            changes = write_plan(conn, set_id, self.actor, plan, progress, scope=scope)
            counts = {k: v for k, v in report.summary().items() if type(v) is int and k != "revision"}
            write_audit(conn, self.actor, "import_roster", {**counts, "people": changes}, set_name=set_name)
            report.committed, report.revision = True, seen + 1
        return report

    def create_post(
        self,
        set_name: str,
        *,
        name: str,
        phone: str,
        kind: str,
        role: str,
        unit_code: str,
        valid_from: dt.date,
        valid_to: dt.date | None = None,
        buildings: Sequence[str] = (),
        person_id: str | None = None,
        scope: str | None = None,
        expect_revision: int | None = None,
    ) -> PostWrite:
        """Add a post (and its person, or update their name, phone, kind); the new post as a dict, with the
        set's revision after the write. Without ``person_id``, the person stored with that name and phone
        (when exactly one is), else a new one.

        Refused with the field at fault: InvalidCode (no such unit), OutOfScope (a unit outside ``scope``,
        or a change to a person who holds or held a post outside it),
        VersionConflict (the person already holds that role there then, or a stale ``expect_revision``),
        InvalidPost (anything else: phone, kind, role, dates, buildings).
        """
        cells = {
            "row": 1,
            "person_id": person_id or "",
            "name": name,
            "phone": phone,
            "kind": kind,
            "role": role,
            "unit_code": unit_code,
            "valid_from": valid_from,
            "valid_to": valid_to or "",
            "buildings": ";".join(buildings),
        }
        with private(), self.engine.begin() as conn:
            set_id, seen = self._store._set_row(conn, set_name, lock=True)
            report, plan = _plan(conn, set_id, set_name, pd.DataFrame([cells]), scope)
            if report.errors:
                raise _refusal(report.errors[0])
            if not report.new:  # stored already (or a stored open post it would end): not a new post
                raise VersionConflict(
                    "that post is already stored; end it instead", set=set_name, field="valid_from"
                )
            self._store._claim(conn, set_id, set_name, seen, expect_revision)
            changes = write_plan(conn, set_id, self.actor, plan[plan["action"] != "end"], scope=scope)
            # The set's row is locked until this transaction ends: the newest post of the set is this one.
            post_id = int(
                conn.execute(sa.select(sa.func.max(post.c.id)).where(post.c.set_id == set_id)).scalar_one()
            )
            detail = {**_public(report.new[0]), "post_id": post_id, "people": changes}
            detail.pop("row", None)
            write_audit(conn, self.actor, "create_post", detail, set_name=set_name)
            made = records(read_posts(conn, set_id, None, None, post_id=post_id))[0]
        return PostWrite(made, seen + 1)

    def end_post(
        self,
        set_name: str,
        post_id: int,
        valid_to: dt.date,
        *,
        scope: str | None = None,
        expect_revision: int | None = None,
    ) -> PostWrite:
        """End a post on ``valid_to`` (its first day out of force); the post as a dict, now ended, with the
        set's revision after the write.

        NotFound for no such post in the set, OutOfScope for a unit outside ``scope``, VersionConflict for
        a post already ended or a ``valid_to`` not after its ``valid_from`` (or a stale ``expect_revision``).
        """
        with private(), self.engine.begin() as conn:
            set_id, seen = self._store._set_row(conn, set_name, lock=True)
            found = read_posts(conn, set_id, None, None, post_id=post_id)
            if found.empty:
                raise NotFound(f"no post {post_id} in {set_name!r}", set=set_name, post_id=post_id)
            held = records(found)[0]
            if scope is not None and not held["unit_code"].startswith(scope):
                raise OutOfScope(
                    f"post {post_id} is on {held['unit_code']}, outside {scope}", scope=scope, post_id=post_id
                )
            if held["valid_to"] is not None:
                raise VersionConflict(
                    f"post {post_id} already ended on {held['valid_to']}; history is not rewritten",
                    post_id=post_id,
                    field="valid_to",
                )
            if valid_to <= held["valid_from"]:
                raise VersionConflict(
                    f"valid_to {valid_to} must be after the post's valid_from {held['valid_from']}",
                    post_id=post_id,
                    field="valid_to",
                )
            self._store._claim(conn, set_id, set_name, seen, expect_revision)
            end_posts(conn, [(post_id, valid_to)], self.actor)
            detail = {**_public(held), "post_id": post_id, "valid_to": valid_to.isoformat()}
            write_audit(conn, self.actor, "end_post", detail, set_name=set_name)
        return PostWrite({**held, "valid_to": valid_to}, seen + 1)


# ---- checking --------------------------------------------------------------------------------------
def _plan(
    conn: Connection, set_id: int, set_name: str, rows: pd.DataFrame, scope: str | None
) -> tuple[RosterReport, pd.DataFrame]:
    """Check ``rows`` against the units, buildings and posts stored: the report, and the rows to write
    (with their ``action``: new or end), the people they add or change noted in the report."""
    report = RosterReport(set_name=set_name, rows=len(rows))
    versions = _unit_versions(conn, set_id, set_name)
    rows = _resolve_ids(conn, set_id, rows, report.warnings)
    early: list[RowError] = []
    keep = pd.Series(True, index=rows.index, dtype=bool)
    for index, rec in zip(rows.index, rows.to_dict("records"), strict=True):
        error = _early_error(rec, versions, scope)
        if error is not None:
            keep[index] = False
            early.append(error)
    units = {code: level for _, _, codes in versions for code, level in codes.items()}
    stored = read_posts(conn, set_id, None, None)
    good, errors = rosters.validate_rows(rows[keep], units, stored, _buildings(conn, set_id))
    known = {p["person_id"]: p for p in read_people(conn, set_id, set(good["person_id"]))}
    if scope is not None:
        refused = _changes_outside(good, known, stored, scope)
        good = good[~good["person_id"].isin({e.person_id for e in refused})]
        errors += refused
    report.errors = sorted(early + errors, key=lambda e: (e.row, e.field))
    report.unchanged = int((good["action"] == "unchanged").sum())
    first_kind = _first_kinds(good, report.warnings)
    report.warnings += _nested(good, stored)
    for rec in good.to_dict("records"):
        if rec["action"] == "new":
            report.new.append(_public(rec))
        elif rec["action"] == "end":
            report.ended.append(_public(rec))
    by_row = {rec["row"]: rec for rec in good.to_dict("records")}
    for pid, (kind, row) in first_kind.items():
        was = known.get(pid)
        if was is None:
            report.people_added += 1
        elif _changed(was, by_row[row], kind):
            report.people_changed.append(pid)
    plan = good[good["action"].isin(["new", "end"])]
    touched = set(plan["person_id"]) | set(report.people_changed)
    people_rows = good[good["person_id"].isin(touched)].drop_duplicates("person_id")
    people_rows = people_rows.assign(kind=people_rows["person_id"].map(lambda p: first_kind[p][0]))
    # The plan carries the people to add or change as rows of action "person" (one per person).
    persons = people_rows.assign(action="person")
    return report, pd.concat([persons, plan], ignore_index=True) if len(plan) or len(persons) else plan


def _resolve_ids(conn: Connection, set_id: int, rows: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """``rows`` with the person id filled in where a row has none and exactly one person has its name and
    phone: one stored, as the file's rows with ids leave them (so the duplicate checks see the same person
    twice); a warning (no phone) where several have."""
    blank = [not str(v or "").strip() for v in rows["person_id"]]
    if not any(blank):
        return rows
    current = {p["person_id"]: (p["name"], p["phone"]) for p in read_people(conn, set_id)}
    in_file: set[str] = set()
    for rec, empty in zip(rows.to_dict("records"), blank, strict=True):
        pid, who = str(rec["person_id"] or "").strip(), _who(rec)
        if not empty and who is not None and pid not in in_file:  # the first row of an id says who it is
            current[pid] = who
            in_file.add(pid)
    owners: dict[tuple[str, str], set[str]] = {}
    for pid, who in current.items():
        owners.setdefault(who, set()).add(pid)
    out = rows.copy()
    for index, rec, empty in zip(rows.index, rows.to_dict("records"), blank, strict=True):
        who = _who(rec) if empty else None
        found = sorted(owners.get(who, ())) if who is not None else []
        if len(found) == 1:
            out.at[index, "person_id"] = found[0]
        elif found:
            warnings.append(
                f"row {rec['row']}: no person id, and {', '.join(found)} have this name and phone; "
                "the row is taken as another person (give the id to say which)"
            )
    return out


def _who(rec: dict[str, Any]) -> tuple[str, str] | None:
    """A row's name and phone as stored, or None when either is missing or not a phone."""
    name = str(rec.get("name") or "").strip()
    phone = rosters.normalize_phone(str(rec.get("phone") or ""))
    return (name, phone) if name and phone is not None else None


def _changed(was: dict[str, Any], rec: dict[str, Any], kind: str) -> list[str]:
    """The person's fields a row changes: name, phone, kind (``kind`` as the file gives it first)."""
    now = {"name": rec["name"], "phone": rec["phone"], "kind": kind}
    return [f for f in ("name", "phone", "kind") if was[f] != now[f]]


def _first_kinds(good: pd.DataFrame, warnings: list[str]) -> dict[str, tuple[str, int]]:
    """Each person's kind and the row that first gives it; a warning for a row that gives another."""
    first: dict[str, tuple[str, int]] = {}
    for rec in good.to_dict("records"):
        kind, row = first.setdefault(rec["person_id"], (rec["kind"], rec["row"]))
        if rec["kind"] != kind:
            warnings.append(
                f"row {rec['row']}: {rec['person_id']} is {rec['kind']} here but {kind} in row {row}; "
                f"a person has one kind, so {kind} is kept"
            )
    return first


def _changes_outside(
    good: pd.DataFrame, known: dict[str, dict[str, Any]], stored: pd.DataFrame, scope: str
) -> list[RowError]:
    """Row errors for every row of a person whose name, phone or kind the rows change although they hold
    or held a post outside ``scope``: a scoped key answers for its units, not for people set-wide."""
    outside = {
        p
        for p, code in zip(stored["person_id"], stored["unit_code"], strict=True)
        if not code.startswith(scope)
    }
    first = _first_kinds(good, [])
    refused: list[RowError] = []
    rows = good.to_dict("records")
    by_row = {rec["row"]: rec for rec in rows}
    for pid, (kind, row) in first.items():
        was = known.get(pid)
        changed = _changed(was, by_row[row], kind) if was is not None and pid in outside else []
        if not changed:
            continue
        message = (
            f"{pid} holds or held a post outside {scope}, the key's scope, so their {changed[0]} is not "
            "changed by it; a key for the whole set may change it"
        )
        refused += [RowError(int(r["row"]), changed[0], message, pid) for r in rows if r["person_id"] == pid]
    return refused


def _nested(good: pd.DataFrame, stored: pd.DataFrame) -> list[str]:
    """Warnings (no phone) for a new post whose holder has the same role at once on a unit inside or
    around its unit (a worker on grid G and on its micro-grid G001): stored posts as the rows leave them."""
    ends = {
        (r["person_id"], r["role"], r["unit_code"], r["valid_from"]): r["valid_to"]
        for r in good.to_dict("records")
        if r["action"] == "end"
    }
    held: dict[tuple[str, str], list[tuple[str, dt.date, dt.date | None, str]]] = {}
    for r in stored.to_dict("records"):
        valid_to = None if pd.isna(r["valid_to"]) else r["valid_to"]
        if valid_to is None:
            valid_to = ends.get((r["person_id"], r["role"], r["unit_code"], r["valid_from"]))
        where = f"stored post {r['post_id']}"
        held.setdefault((r["person_id"], r["role"]), []).append(
            (r["unit_code"], r["valid_from"], valid_to, where)
        )
    warnings = []
    for r in good.to_dict("records"):
        if r["action"] != "new":
            continue
        code, start, end = r["unit_code"], r["valid_from"], r["valid_to"]
        mine = held.setdefault((r["person_id"], r["role"]), [])
        for other, o_start, o_end, where in mine:
            nested = other != code and (other.startswith(code) or code.startswith(other))
            if nested and people.overlaps(start, end, o_start, o_end):
                label = people.ROLE_LABELS[people.Role(r["role"])]
                warnings.append(
                    f"row {r['row']}: {r['person_id']} is {label} on {code} and on {other} ({where}), "
                    f"one unit inside the other, at once from {max(start, o_start)}; is one of them meant?"
                )
        mine.append((code, start, end, f"row {r['row']}"))
    return warnings


Versions = list[tuple[dt.date, dt.date | None, dict[str, str]]]


def _unit_versions(conn: Connection, set_id: int, set_name: str) -> Versions:
    """The set's published versions, oldest first: (valid_from, valid_to, {unit code: level})."""
    query = (
        sa.select(boundary_version.c.valid_from, boundary_version.c.valid_to, unit.c.code, unit.c.level)
        .join(unit, unit.c.version_id == boundary_version.c.id)
        .where(boundary_version.c.set_id == set_id, boundary_version.c.status == "published")
        .order_by(boundary_version.c.valid_from)
    )
    versions: dict[dt.date, tuple[dt.date | None, dict[str, str]]] = {}
    for valid_from, valid_to, code, level in conn.execute(query):
        versions.setdefault(valid_from, (valid_to, {}))[1][code] = level
    if not versions:
        raise NotFound(f"{set_name!r} has no published version to name units from", set=set_name)
    return [(start, end, codes) for start, (end, codes) in sorted(versions.items())]


def _early_error(rec: dict[str, Any], versions: Versions, scope: str | None) -> RowError | None:
    """A row's unit outside ``scope``, or not in the version in force on its ``valid_from``."""
    code = str(rec.get("unit_code") or "").strip()
    pid = str(rec.get("person_id") or "").strip() or None
    if not code:
        return None  # validate_rows says it is empty
    if scope is not None and not code.startswith(scope):
        return RowError(int(rec["row"]), "unit_code", f"{code} lies outside {scope}, the key's scope", pid)
    start = rosters.parse_date(rec.get("valid_from"))
    if start is None:
        return None  # validate_rows says what is wrong with the date
    codes = next((c for s, e, c in versions if s <= start and (e is None or start < e)), versions[0][2])
    if code in codes:
        return None
    when = next((s for s, e, c in versions if c is codes), None)
    return RowError(
        int(rec["row"]),
        "unit_code",
        f"no unit {people.shown(code)!r} in the version in force from {when}",
        pid,
    )


def _buildings(conn: Connection, set_id: int) -> dict[str, str] | None:
    """Building id -> micro-grid code; None when the set has no buildings yet (then ids are not checked)."""
    query = sa.select(building.c.id, building.c.microgrid_code).where(building.c.set_id == set_id)
    found = {str(i): str(m) for i, m in conn.execute(query)}
    return found or None


def _check_expected(set_name: str, seen: int, expect: int | None) -> None:
    if expect is not None and expect != seen:
        raise VersionConflict(
            f"{set_name!r} has changed since revision {expect} (it is at {seen}); reload and retry",
            set=set_name,
            revision=seen,
        )


def _refusal(error: RowError) -> GeoGridError:
    """The error a single post's first row error stands for (no phone value in it)."""
    where = {"field": error.field, "person_id": error.person_id}
    if "the key's scope" in error.message:  # a unit outside it, or a person who holds a post outside it
        return OutOfScope(error.message, **where)
    if error.field == "unit_code":
        return InvalidCode(error.message, **where)
    if "already holds" in error.message:
        return VersionConflict(error.message, **where)
    return InvalidPost(error.message, **where)


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    """A post as reports and the audit log show it: no phone."""
    keys = ("row", "person_id", "name", "role", "unit_code", "valid_from", "valid_to")
    out = {k: rec[k].isoformat() if isinstance(rec[k], dt.date) else rec[k] for k in keys if k in rec}
    return {**out, "row": int(rec["row"])} if "row" in rec else out
