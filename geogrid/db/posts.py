"""The person and post tables: rows in and out, a query or a statement each, for :mod:`geogrid.db.people`.

Posts are only ever added or ended (``valid_to`` set once, with who and when), never deleted or rewritten.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection

from geogrid.db.schema import person, post, valid_on
from geogrid.db.store import _now
from geogrid.errors import OutOfScope, VersionConflict
from geogrid.people import POST_COLUMNS, mask_phone

PERSON_FIELDS = ("person_id", "name", "phone", "kind")


@contextmanager
def private() -> Iterator[None]:
    """A database error raised while writing people goes on without its parameters (phones among them),
    so no log line or traceback repeats one."""
    try:
        yield
    except sa.exc.StatementError as exc:
        exc.hide_parameters = True
        raise


# ---- reading ---------------------------------------------------------------------------------------
def read_posts(
    conn: Connection,
    set_id: int,
    at: dt.date | None,
    unit_code: str | None,
    *,
    person_id: str | None = None,
    post_id: int | None = None,
) -> pd.DataFrame:
    """Posts joined with their people, ordered by unit, role, person, start (as Python orders text)."""
    query = (
        sa.select(
            post.c.id.label("post_id"),
            person.c.person_id,
            person.c.name,
            person.c.phone,
            person.c.kind,
            post.c.role,
            post.c.unit_code,
            post.c.valid_from,
            post.c.valid_to,
            post.c.buildings,
        )
        .join(person, person.c.id == post.c.person_ref)
        .where(post.c.set_id == set_id)
    )
    if at is not None:
        query = query.where(valid_on(post, at))
    if unit_code is not None:
        query = query.where(post.c.unit_code.startswith(unit_code, autoescape=True))
    if person_id is not None:
        query = query.where(person.c.person_id == person_id)
    if post_id is not None:
        query = query.where(post.c.id == post_id)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    rows.sort(key=lambda r: (r["unit_code"], r["role"], r["person_id"], r["valid_from"], r["post_id"]))
    for r in rows:
        r["buildings"] = list(r["buildings"] or [])
    frame = pd.DataFrame(rows, columns=POST_COLUMNS, dtype=object)
    frame["post_id"] = frame["post_id"].astype(int)
    return frame


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a posts frame as plain dicts (Python ints, dates, lists)."""
    out = frame.to_dict("records")
    for rec in out:
        if "post_id" in rec:
            rec["post_id"] = int(rec["post_id"])
    return out


def read_people(conn: Connection, set_id: int, only: set[str] | None = None) -> list[dict[str, Any]]:
    """The set's people (of the ids ``only``, when given) as dicts, ordered by person_id."""
    query = sa.select(*(person.c[f] for f in PERSON_FIELDS)).where(person.c.set_id == set_id)
    if only is not None:
        if not only:
            return []
        query = query.where(person.c.person_id.in_(sorted(only)))
    return sorted((dict(r) for r in conn.execute(query).mappings()), key=lambda p: p["person_id"])


# ---- writing ---------------------------------------------------------------------------------------
def write_plan(
    conn: Connection,
    set_id: int,
    actor: str,
    plan: pd.DataFrame,
    progress: Callable[[int, int], None] | None = None,
    *,
    scope: str | None = None,
) -> dict[str, Any]:
    """Write a plan from :func:`_plan` (people, new posts, ended posts); what changed about people.
    ``scope``: as for :func:`write_people`."""
    persons = plan[plan["action"] == "person"].to_dict("records")
    changes = write_people(conn, set_id, persons, scope=scope)
    refs = {
        pid: ref
        for pid, ref in conn.execute(
            sa.select(person.c.person_id, person.c.id).where(person.c.set_id == set_id)
        )
    }
    new = plan[plan["action"] == "new"].to_dict("records")
    now = _now()
    rows = [
        {
            "set_id": set_id,
            "person_ref": refs[r["person_id"]],
            "role": r["role"],
            "unit_code": r["unit_code"],
            "valid_from": r["valid_from"],
            "valid_to": r["valid_to"],
            "buildings": list(r["buildings"]),
            "created_at": now,
            "created_by": actor,
        }
        for r in new
    ]
    total = len(rows) + int((plan["action"] == "end").sum())
    for start in range(0, len(rows), 500):
        insert_posts(conn, rows[start : start + 500])
        if progress is not None:
            progress(min(start + 500, len(rows)), total)
    ends = plan[plan["action"] == "end"].to_dict("records")
    end_posts(conn, open_posts(conn, set_id, refs, ends), actor)
    if progress is not None:
        progress(total, total)
    return changes


def insert_posts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert post rows (one statement for many)."""
    if rows:
        conn.execute(sa.insert(post), rows)


def write_people(
    conn: Connection, set_id: int, persons: Iterable[dict[str, Any]], *, scope: str | None = None
) -> dict[str, Any]:
    """Add or update people; what changed, for the audit log (counts, and each change with phones masked).

    With ``scope`` (a key's street or community code), a change to a person who holds or held a post outside
    it is refused (OutOfScope, naming the person and field, never a phone): a person is one record for the
    whole set, so a scoped key may not rewrite the details another community relies on.
    """
    persons = list(persons)
    known = {p["person_id"]: p for p in read_people(conn, set_id, {p["person_id"] for p in persons})}
    if scope is not None:
        _refuse_outside(conn, set_id, scope, persons, known)
    added, changed = [], []
    for p in persons:
        values = {"name": p["name"], "phone": p["phone"], "kind": p["kind"]}
        was = known.get(p["person_id"])
        if was is None:
            added.append({"set_id": set_id, "person_id": p["person_id"], "created_at": _now(), **values})
            continue
        diff = {k: {"old": was[k], "new": v} for k, v in values.items() if was[k] != v}
        if not diff:
            continue
        conn.execute(
            sa.update(person)
            .where(person.c.set_id == set_id, person.c.person_id == p["person_id"])
            .values(**values)
        )
        if "phone" in diff:  # the audit log never holds a full phone number
            diff["phone"] = {"old": mask_phone(was["phone"]), "new": mask_phone(p["phone"])}
        changed.append({"person_id": p["person_id"], **diff})
    if added:
        conn.execute(sa.insert(person), added)
    return {"added": len(added), "changed": changed}


def _refuse_outside(
    conn: Connection, set_id: int, scope: str, persons: list[dict[str, Any]], known: dict[str, dict[str, Any]]
) -> None:
    changing = {
        p["person_id"]: next(f for f in ("name", "phone", "kind") if known[p["person_id"]][f] != p[f])
        for p in persons
        if p["person_id"] in known
        and any(known[p["person_id"]][f] != p[f] for f in ("name", "phone", "kind"))
    }
    if not changing:
        return
    query = (
        sa.select(person.c.person_id)
        .join(post, post.c.person_ref == person.c.id)
        .where(
            person.c.set_id == set_id,
            person.c.person_id.in_(sorted(changing)),
            sa.not_(post.c.unit_code.startswith(scope, autoescape=True)),
        )
        .order_by(person.c.person_id)
        .limit(1)
    )
    pid = conn.execute(query).scalar()
    if pid is not None:
        raise OutOfScope(
            f"{pid} holds or held a post outside {scope}, the key's scope, so their {changing[pid]} is not "
            "changed by it",
            scope=scope,
            person_id=pid,
            field=changing[pid],
        )


def open_posts(
    conn: Connection, set_id: int, refs: dict[str, int], ends: list[dict[str, Any]]
) -> list[tuple[int, dt.date]]:
    """The stored open posts that rows of action ``end`` close: (post id, valid_to)."""
    out = []
    for r in ends:
        found = conn.execute(
            sa.select(post.c.id, post.c.buildings).where(
                post.c.set_id == set_id,
                post.c.person_ref == refs[r["person_id"]],
                post.c.role == r["role"],
                post.c.unit_code == r["unit_code"],
                post.c.valid_from == r["valid_from"],
                post.c.valid_to.is_(None),
            )
        ).all()
        out += [(int(i), r["valid_to"]) for i, b in found if list(b or []) == list(r["buildings"])][:1]
    return out


def end_posts(conn: Connection, ends: list[tuple[int, dt.date]], actor: str) -> None:
    """End open posts: (post id, valid_to) each, with who and when; VersionConflict if one has ended meanwhile."""
    now = _now()
    for post_id, valid_to in ends:
        done = conn.execute(
            sa.update(post)
            .where(post.c.id == post_id, post.c.valid_to.is_(None))
            .values(valid_to=valid_to, ended_at=now, ended_by=actor)
        ).rowcount
        if done != 1:
            raise VersionConflict(
                f"post {post_id} was ended by another write meanwhile; retry", post_id=post_id
            )
