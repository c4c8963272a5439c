"""How did each unit do? The KPI figures, added up from tallies per unit, level and month kept with every write.

Every write of an incident passes the rows before and after it to :func:`tally`, which moves the
incident's share — its counts and, once closed, its working hours to close — between rows of
``incident_tally`` keyed by set, month of report (UTC), micro-grid, grid, community, street and level, in
the write's own transaction. The figures of a period then add up the tallies of the months it covers
(a year: a few thousand rows, not a million incidents); where it covers a month in part, the incidents of
the shorter side are counted from their rows, added or taken away; "overdue now" counts the open ones. Means and medians come from
the hours themselves, kept as float64 arrays, so they are exact. :func:`retally` rebuilds a set's
tallies from its incidents (the migration, a bulk load); a test checks the kept tallies equal it.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection

from geogrid.db.dialects import Dialect, WriteRows, dialect_of
from geogrid.db.engine import UNFLUSHED
from geogrid.db.schema import TALLIED, incident, incident_tally
from geogrid.incidents import kpis, states

UNITS = ("microgrid", "grid", "community", "street")
KEY = ("set_id", "month", *UNITS, "level")
HOURS = np.dtype("<f8")

Key = tuple[Any, ...]
Share = tuple[Key, tuple[int, ...], float | None]


def month_of(at: dt.datetime) -> int:
    """The tally month (yyyymm, UTC) of a report time."""
    utc = at.astimezone(dt.UTC)
    return utc.year * 100 + utc.month


def share(set_id: int, row: Mapping[Any, Any]) -> Share:
    """An incident's part of its tally row: the row's key, the counts it adds and its hours to close."""
    key = (set_id, month_of(row["reported_at"]), *(row.get(u) or "" for u in UNITS), row["level"])
    satisfaction = row.get("satisfaction")
    counts = (
        1,
        int(row["state"] == "void"),
        int(row.get("accepted_at") is not None),
        int(row.get("resolved_at") is not None),
        int(row.get("on_time") is True),
        int(row.get("closed_at") is not None),
        int(row.get("escalations") or 0),
        int(satisfaction is not None),
        int(satisfaction or 0),
    )
    hours = row.get("hours_to_close")
    return key, counts, None if hours is None else float(hours)


def tally(
    conn: Connection,
    before: Iterable[tuple[int, Mapping[str, Any]]] = (),
    after: Iterable[tuple[int, Mapping[str, Any]]] = (),
) -> None:
    """Move incidents' shares from what they were (``before``: (set id, row)) to what they are (``after``),
    in the caller's transaction; rows are locked in key order, so two writers never wait on each other in
    a circle."""
    _apply(conn, *_add_up(before, after))


def _apply(conn: Connection, counts: Mapping[Key, list[int]], hours: Mapping[Key, Counter[float]]) -> None:
    """Add ``counts`` and ``hours`` (taken away where negative) to the tally rows of their keys."""
    changes = []
    for key in sorted(counts):
        net = {value: n for value, n in hours.get(key, {}).items() if n}
        if any(counts[key]) or net:
            changes.append((key, counts[key], net))
    if not changes:
        return
    _upsert(dialect_of(conn))(
        conn,
        [
            dict(zip(KEY, key, strict=True)) | dict(zip(TALLIED, delta, strict=True)) | {"hours": b""}
            for key, delta, _ in changes
        ],
    )
    for key, delta, net in changes:
        if not net and delta[0] >= 0:
            continue
        where = [incident_tally.c[k] == v for k, v in zip(KEY, key, strict=True)]
        if net:  # hours added (a close) or taken away (a closed incident moved): the row is locked already
            kept = conn.execute(sa.select(incident_tally.c.hours).where(*where)).scalar_one()
            values = np.frombuffer(kept, HOURS).tolist()
            for value, n in net.items():
                for _ in range(n):
                    values.append(value)
                for _ in range(-n):
                    values.remove(value)  # ValueError: the tally lost an incident's hours (a bug, not data)
            conn.execute(
                sa.update(incident_tally).where(*where).values(hours=np.asarray(values, HOURS).tobytes())
            )
        if delta[0] < 0:  # an incident left this row: a row of none goes
            conn.execute(sa.delete(incident_tally).where(*where, incident_tally.c.received == 0))


def _add_up(
    before: Iterable[tuple[int, Mapping[Any, Any]]] = (),
    after: Iterable[tuple[int, Mapping[Any, Any]]] = (),
    into: tuple[dict[Key, list[int]], dict[Key, Counter[float]]] | None = None,
) -> tuple[dict[Key, list[int]], dict[Key, Counter[float]]]:
    """The shares of ``after`` less those of ``before``, per tally key (added to ``into``): counts, and
    hours as value → times."""
    counts, hours = into if into is not None else _sums()
    for sign, rows in ((-1, before), (1, after)):
        for set_id, row in rows:
            key, part, value = share(set_id, row)
            into_key = counts[key]
            for i, n in enumerate(part):
                into_key[i] += sign * n
            if value is not None:
                hours[key][value] += sign
    return counts, hours


def _sums() -> tuple[dict[Key, list[int]], dict[Key, Counter[float]]]:
    """Counts and hours per tally key, none yet."""
    return defaultdict(lambda: [0] * len(TALLIED)), defaultdict(Counter)


def defer(conn: Connection, after: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
    """Hold new incidents' shares, added up per tally key, until :func:`flush`, just before the commit: a
    long transaction (an import) then locks its tally rows for an instant, in one key order, not from its
    first chunk on (the engine refuses to commit with shares held)."""
    _add_up(after=after, into=_held(conn))


def defer_received(conn: Connection, received: Mapping[Key, int]) -> None:
    """:func:`defer` for new incidents given as their number per tally key (:func:`share`'s key): all they
    add is that many received (an import's rows, not read back)."""
    counts, _ = _held(conn)
    for key, n in received.items():
        counts[key][0] += n


def _held(conn: Connection) -> tuple[dict[Key, list[int]], dict[Key, Counter[float]]]:
    """The shares held on ``conn`` for :func:`flush`."""
    held = conn.info.get(UNFLUSHED)
    if held is None:
        held = conn.info[UNFLUSHED] = _sums()
    return held


def flush(conn: Connection) -> None:
    """Tally the shares :func:`defer` held."""
    held = conn.info.pop(UNFLUSHED, None)
    if held:
        _apply(conn, *held)


def retally(conn: Connection, set_id: int, *, batch: int = 50_000) -> int:
    """Rebuild a set's tallies from its incidents (after a bulk load, or to check the kept ones): rows written."""
    c = incident.c
    columns = [c.reported_at, *(c[u] for u in UNITS), c.level, c.state, c.accepted_at, c.resolved_at]
    columns += [c.on_time, c.closed_at, c.escalations, c.satisfaction, c.hours_to_close]
    dialect_of(conn).lock_writes(conn, "incident")  # no incident written meanwhile is missed or counted twice
    conn.execute(sa.delete(incident_tally).where(incident_tally.c.set_id == set_id))  # SQLite's write lock
    result = conn.execute(sa.select(*columns).where(c.set_id == set_id).execution_options(yield_per=batch))
    counts, hours = _add_up(after=((set_id, row) for row in result.mappings()))
    rows = [
        dict(zip(KEY, key, strict=True))
        | dict(zip(TALLIED, part, strict=True))
        | {"hours": np.asarray(list(hours[key].elements()) if key in hours else [], HOURS).tobytes()}
        for key, part in sorted(counts.items())
    ]
    for i in range(0, len(rows), 5_000):
        conn.execute(sa.insert(incident_tally), rows[i : i + 5_000])
    return len(rows)


def tallies(conn: Connection, set_id: int) -> dict[Key, tuple[tuple[int, ...], list[float]]]:
    """A set's tallies as they are kept: key → (counts, hours sorted)."""
    t = incident_tally.c
    found = conn.execute(sa.select(incident_tally).where(t.set_id == set_id)).mappings()
    return {
        tuple(r[k] for k in KEY): (
            tuple(r[k] for k in TALLIED),
            sorted(np.frombuffer(r["hours"], HOURS).tolist()),
        )
        for r in found
    }


def figures(
    conn: Connection,
    set_id: int,
    by: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    units: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The KPI rows (:mod:`geogrid.incidents.kpis`) per unit ``by`` of the incidents reported in
    [``start``, ``end``) (UTC), under ``units`` if given: whole months from the tallies, the rest counted."""
    months, parts = _plan(start, end)
    sums: dict[Any, list[int]] = defaultdict(lambda: [0] * len(TALLIED))
    hours: dict[Any, list[np.ndarray[Any, Any]]] = defaultdict(list)
    taken: dict[Any, list[np.ndarray[Any, Any]]] = defaultdict(list)  # hours of incidents subtracted
    if months:
        t = incident_tally.c
        key = _key(incident_tally, by)
        where = [t.set_id == set_id, t.month.in_(months), *_in_units(incident_tally, by, units)]
        join_bytes = dialect_of(conn).join_bytes(t.hours)
        added = conn.execute(
            sa.select(key, join_bytes, *(sa.func.sum(t[n]) for n in TALLIED)).where(*where).group_by(key)
        ).all()
        for unit, kept, *part in added:
            sums[unit] = [int(n) for n in part]
            if kept:
                hours[unit].append(np.frombuffer(kept, HOURS))
    dialect_of(conn).for_a_big_scan(conn)
    c = incident.c
    key = _key(incident, by)
    scope = [c.set_id == set_id, *_in_units(incident, by, units)]
    for lo, hi, sign in parts:
        where = [*scope, c.reported_at >= lo, c.reported_at < hi]
        counted = conn.execute(
            sa.select(
                key,
                sa.func.count(),
                sa.func.count().filter(c.state == "void"),
                sa.func.count(c.accepted_at),
                sa.func.count(c.resolved_at),
                sa.func.count().filter(c.on_time.is_(True)),
                sa.func.count(c.closed_at),
                sa.func.coalesce(sa.func.sum(c.escalations), 0),
                sa.func.count(c.satisfaction),
                sa.func.coalesce(sa.func.sum(c.satisfaction), 0),
            )
            .where(*where)
            .group_by(key)
        ).all()
        for unit, *part in counted:
            into = sums[unit]
            for i, n in enumerate(part):
                into[i] += sign * int(n)
        found: dict[Any, list[float]] = defaultdict(list)
        query = sa.select(key, c.hours_to_close).where(*where, c.hours_to_close.is_not(None))
        for unit, value in conn.execute(query):
            found[unit].append(value)
        for unit, values in found.items():
            (hours if sign > 0 else taken)[unit].append(np.asarray(values, HOURS))
    overdue: dict[Any, int] = dict(
        conn.execute(  # open, the clock running and the limit passed: now, so never tallied
            sa.select(key, sa.func.count())
            .where(
                *scope,
                c.reported_at >= start,
                c.reported_at < end,
                c.closed_at.is_(None),
                c.deadline <= now,
                c.state.in_(sorted(states.RUNNING)),
            )
            .group_by(key)
        ).all()
    )
    out = []
    for unit, part in sums.items():
        if not part[0]:
            continue
        counts = dict(zip(TALLIED, part, strict=True))
        rated, total = counts["rated"], counts.pop("satisfaction")
        closed = np.concatenate(hours[unit]) if hours.get(unit) else np.empty(0, HOURS)
        if taken.get(unit):
            closed = _without(closed, np.concatenate(taken[unit]))
        row = {
            "unit": unit,
            **counts,
            "satisfaction": total / rated if rated else None,
            "hours_to_close_mean": math.fsum(closed) / len(closed)
            if len(closed)
            else None,  # any order alike
            "hours_to_close_median": float(np.median(closed)) if len(closed) else None,
            "open": counts["received"] - counts["closed"] - counts["void"],  # open: neither closed nor void
            "overdue": int(overdue.get(unit, 0)),
        }
        out.append(kpis.rates(row))
    return sorted(out, key=lambda r: str(r["unit"]))


@functools.cache
def _upsert(dialect: Dialect) -> WriteRows:
    """The writer adding shares to tally rows, built once (building it costs more than running it)."""
    return dialect.insert_rows(incident_tally, unique=KEY, adding=TALLIED)


def _key(table: sa.Table, by: str) -> sa.ColumnElement[Any]:
    if by == "county":
        return sa.literal("county")
    return table.c.level if by == "department" else table.c[by]


def _in_units(table: sa.Table, by: str, units: Sequence[str] | None) -> list[sa.ColumnElement[bool]]:
    """The conditions for rows of unit ``by`` (an incident not placed at a level is in no unit of it) under
    any of ``units`` (codes of streets, communities, grids or micro-grids)."""
    out: list[sa.ColumnElement[bool]] = []
    if by == "department":
        out.append(table.c.level.like("department:%"))
    elif by != "county":  # the tallies keep "none" as ''
        out.append(table.c[by] != "" if table is incident_tally else table.c[by].is_not(None))
    if units is not None:
        out.append(under(table, [u for u in units if u]))
    return out


def under(table: sa.Table, codes: Sequence[str]) -> sa.ColumnElement[bool]:
    """Rows of ``table`` (incidents or tallies) under any of ``codes`` (streets, communities, grids or
    micro-grids)."""
    return sa.or_(*(table.c[u].in_(list(codes)) for u in reversed(UNITS)))


def _plan(
    start: dt.datetime, end: dt.datetime
) -> tuple[list[int], list[tuple[dt.datetime, dt.datetime, int]]]:
    """How to add up [start, end): the tally months to take whole, and the spans of incidents to count
    (+1) or to take away (−1). A month the period covers in part is counted over the part inside, or taken
    whole less the part outside, whichever is shorter: a Beijing-time month is a UTC month and 8 hours
    each end, not a month of rows."""
    months: list[int] = []
    parts: list[tuple[dt.datetime, dt.datetime, int]] = []
    month = month_of(start)
    while _month_start(month) < end:
        lo, hi = _month_start(month), _month_start(_next_month(month))
        inside = (max(start, lo), min(end, hi))
        if inside == (lo, hi):
            months.append(month)
        elif inside[1] - inside[0] <= (hi - lo) / 2:
            parts.append((*inside, 1))
        else:
            months.append(month)
            parts += [(a, b, -1) for a, b in ((lo, inside[0]), (inside[1], hi)) if a < b]
        month = _next_month(month)
    return months, parts


def _without(values: np.ndarray[Any, Any], taken: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``values`` less ``taken`` as multisets (each of ``taken`` is among ``values``)."""
    values, taken = np.sort(values), np.sort(taken)
    at = np.searchsorted(values, taken, "left") + (
        np.arange(len(taken)) - np.searchsorted(taken, taken, "left")
    )
    if len(taken) and (at[-1] >= len(values) or not np.array_equal(values[at], taken)):
        raise ValueError("hours to take away that the tally does not hold: tallies and rows disagree")
    keep = np.ones(len(values), bool)
    keep[at] = False
    return values[keep]


def _month_start(month: int) -> dt.datetime:
    return dt.datetime(month // 100, month % 100, 1, tzinfo=dt.UTC)


def _next_month(month: int) -> int:
    return month + 1 if month % 100 < 12 else (month // 100 + 1) * 100 + 1
