"""Where are the incidents? A period's incidents as columns of points, for maps (the dashboard's clusters
and heat layer), and those changed since a moment, for live updates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from geogrid.db.incident_kpis import under
from geogrid.db.schema import incident
from geogrid.db.store import _utc
from geogrid.incidents import states

COLUMNS = ("id", "lon", "lat", "state", "category", "microgrid", "grid", "community", "street")


def points(
    conn: Connection,
    set_id: int,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    *,
    units: Sequence[str] | None = None,
    category: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100_000,
) -> dict[str, Any]:
    """The incidents reported in [``start``, ``end``) (UTC) that have a point, under ``units`` and of
    ``category`` if given, changed after ``since`` if given: one list per column (``COLUMNS``, ``overdue``),
    in id order, at most ``limit`` (``truncated`` says whether more were left out); ``as_of`` is the latest
    change among them (poll with it, less a few seconds: a write committing late may carry an earlier time),
    None when some were left out."""
    c = incident.c
    query = sa.select(*(c[name] for name in COLUMNS), c.deadline, c.updated_at).where(
        c.set_id == set_id, c.reported_at >= start, c.reported_at < end, c.lon.is_not(None)
    )
    if units is not None:
        query = query.where(under(incident, units))
    if category is not None:
        query = query.where(c.category == category)
    if since is not None:
        query = query.where(c.updated_at > since)
    rows = conn.execute(query.order_by(c.id).limit(limit + 1)).all()
    out: dict[str, Any] = {name: [r[i] for r in rows[:limit]] for i, name in enumerate(COLUMNS)}
    width = len(COLUMNS)
    out["overdue"] = [
        r.state in states.OPEN and r[width] is not None and _utc(r[width]) < now for r in rows[:limit]
    ]
    changed = [_utc(r[width + 1]) for r in rows[:limit]]
    out["truncated"] = len(rows) > limit
    # rows left out may have changed before the latest shown: no moment to poll from (narrow the period)
    out["as_of"] = None if out["truncated"] else max(changed, default=since)
    return out
