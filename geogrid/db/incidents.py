"""Incidents in the database: taken once per idempotency key, moved through the loop, logged forever.

``create`` (or ``submit``, its future) writes the incident and its first log line (``report``): reports
arriving together are committed together by one writer thread (:mod:`geogrid.db.group_commit`), each
answered only once committed, a failed batch retried report by report. A second request with the same key
finds the first one's incident (``created`` False) — also when a hundred arrive at once, in one process or
several: the unique key decides, the losers read the winner's row. A key reused for another request is
refused.
``act`` checks the step against the loop (:mod:`geogrid.incidents.states`), the incident's ``seq`` (its
ETag) when the caller gives one, and appends one line to ``incident_event``, which the database itself
keeps append-only. Deadlines come from the catalogue's limit on the working calendar, counted from the
report; escalation gives the next level a fresh limit; parking stops the clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from geogrid.db import incident_kpis, incident_points
from geogrid.db.dialects import DIALECTS, dialect_of
from geogrid.db.group_commit import GroupCommit
from geogrid.db.schema import incident, incident_event
from geogrid.db.store import Store, _now, _utc
from geogrid.deadline import Deadline
from geogrid.deadline import current as request_deadline
from geogrid.errors import IllegalTransition, InvalidIncident, NotFound, RequestTimeout, VersionConflict
from geogrid.incidents import kpis, states
from geogrid.incidents.calendar import WorkingCalendar
from geogrid.incidents.catalogue import Catalogue, Service
from geogrid.incidents.intake import Report
from geogrid.incidents.placement import Placement
from geogrid.incidents.placement import metres as metres_between

INCIDENT_COLUMNS = [c.name for c in incident.columns if c.name not in ("set_id", "idem_key", "request_hash")]
EVENT_COLUMNS = [c.name for c in incident_event.columns]
INSERT_EVENT = sa.insert(incident_event)
NEARBY_BOX = [("qid", "integer"), ("set_id", "integer"), ("category", "text")] + [
    (c, "float") for c in ("lat0", "lat1", "lon0", "lon1", "lat", "lon", "k")
]  # a new incident's box in the query for its likely duplicates
REUSED_KEY = (
    "this idempotency key was used for another report; a retry must repeat its request exactly, a new "
    "report needs a new key"
)


PENDING: Any = object()  # a place held in a batch's answers


@dataclass(frozen=True, slots=True)
class _New:
    """A report waiting for its batch's transaction."""

    set_name: str
    report: Report
    placement: Placement
    service: Service
    digest: str
    actor: str
    duplicates_m: float | None
    deadline: Deadline | None  # the request's: a report whose client was told it timed out is not written


class IncidentStore:
    """Incidents of the boundary sets in a database, with their log."""

    def __init__(
        self, engine: Engine, catalogue: Catalogue, calendar: WorkingCalendar, actor: str = "geogrid"
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.calendar = calendar
        self.actor = actor
        self._set_ids: dict[str, int] = {}
        self._store = Store(engine, actor)  # the set lookup every store shares
        dialect = DIALECTS[engine.dialect.name]
        self._insert_new = dialect.insert_rows(  # a key taken before (a retry) is skipped, then found
            incident, unique=("set_id", "idem_key"), returning=(*INCIDENT_COLUMNS, "set_id", "idem_key")
        )
        self._insert_events = dialect.insert_rows(incident_event)
        self._nearby_sql: dict[str, sa.TextClause] = {}
        self._held = threading.local()  # the writer thread's connection: no pool check-out, ping or reset
        self._writer: GroupCommit[_New, tuple[dict[str, Any], bool]] = GroupCommit(
            self._write, "geogrid-incident-writer", finish=self._hang_up
        )

    # ---- intake -----------------------------------------------------------------------------------
    def create(
        self,
        set_name: str,
        report: Report,
        placement: Placement,
        actor: str | None = None,
        *,
        request_hash: str | None = None,
        duplicates_m: float | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store a new incident (or find the one its key made before): the incident and whether it is new.

        ``request_hash`` identifies the request as sent (default: the report's fingerprint); a channel that
        fills in defaults (the time of receipt) gives the hash of what the client sent, so a retry matches.
        With ``duplicates_m`` a new incident comes with ``duplicate_candidates`` (see :meth:`nearby`), found
        in the same transaction. Reports arriving together are committed together (:meth:`submit`).
        """
        return self.submit(
            set_name, report, placement, actor, request_hash=request_hash, duplicates_m=duplicates_m
        ).result()

    def submit(
        self,
        set_name: str,
        report: Report,
        placement: Placement,
        actor: str | None = None,
        *,
        request_hash: str | None = None,
        duplicates_m: float | None = None,
    ) -> Future[tuple[dict[str, Any], bool]]:
        """:meth:`create` as a future that answers once the incident is committed (with the reports that
        arrived with it, in one transaction) — or with the error that kept it out."""
        new = _New(
            set_name=set_name,
            report=report,
            placement=placement,
            service=self.catalogue.get(report.category),
            digest=request_hash or report.fingerprint(),
            actor=actor or self.actor,
            duplicates_m=duplicates_m,
            deadline=request_deadline(),
        )
        return self._writer.submit(new)

    def close(self) -> None:
        """Commit the reports queued and stop the writer thread."""
        self._writer.close()

    def _write(self, batch: Sequence[_New]) -> list[tuple[dict[str, Any], bool] | BaseException]:
        """Commit a batch of new reports: those whose request has not timed out (from now on their clients
        wait for this answer), in one transaction; if it fails, each one alone, so that only the report at
        fault fails (and nothing of a failed one is written)."""
        out: list[tuple[dict[str, Any], bool] | BaseException] = []
        live: list[_New] = []
        for new in batch:
            try:
                if new.deadline is not None:
                    new.deadline.begin_commit()
                live.append(new)
                out.append(PENDING)
            except RequestTimeout as error:  # the client was told 503: nothing of it may be written
                out.append(error)
        answers = self._write_all(live) if live else []
        assert len(answers) == len(live), "a batch answers every report it wrote"
        given = iter(answers)
        return [next(given) if o is PENDING else o for o in out]

    def _write_all(self, batch: Sequence[_New]) -> list[tuple[dict[str, Any], bool] | BaseException]:
        try:
            return self._in_transaction(batch)
        except (IntegrityError, DataError) as error:  # one report's fault (a value refused)
            if len(batch) == 1:
                return [error]
        except Exception as error:  # the database's (locked, gone) or a commit whose outcome is unknown:
            return [error] * len(batch)  # every report fails alike, none is written twice
        out: list[tuple[dict[str, Any], bool] | BaseException] = []
        for one in batch:
            try:
                out += self._in_transaction([one])
            except Exception as error:
                out.append(error)
        return out

    def _in_transaction(
        self, batch: Sequence[_New], *, again: bool = True
    ) -> list[tuple[dict[str, Any], bool] | BaseException]:
        """``_write_in`` in one transaction on the writer thread's own connection; a connection found dead
        before the commit was sent is replaced once."""
        conn = getattr(self._held, "conn", None)
        if conn is None:
            conn = self._held.conn = self.engine.connect()
        sent = False  # once the commit is sent the outcome of a failure is unknown: never written again
        try:
            with conn.begin() as transaction:
                out = self._write_in(conn, batch)
                sent = True
                transaction.commit()
                return out
        except DBAPIError as error:
            self._hang_up()
            if again and error.connection_invalidated and not sent:
                return self._in_transaction(batch, again=False)  # idle too long, or the server restarted
            raise
        except Exception:
            self._hang_up()  # the next batch starts on a fresh connection, whatever state this one is in
            raise

    def _hang_up(self) -> None:
        conn, self._held.conn = getattr(self._held, "conn", None), None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _write_in(
        self, conn: Connection, batch: Sequence[_New]
    ) -> list[tuple[dict[str, Any], bool] | BaseException]:
        """Insert the batch's reports in a few statements, whatever its size (a key twice in the batch is
        answered from its first report); a report whose key was taken before (a retry) gets the key's incident."""
        now = _now()
        out: list[tuple[dict[str, Any], bool] | BaseException | None] = [None] * len(batch)
        set_ids = {name: self._set_id_in(conn, name) for name in {new.set_name for new in batch}}
        first: dict[tuple[str, str], int] = {}  # (set, key) → position of its first report in the batch
        for pos, new in enumerate(batch):
            if new.report.key is not None:
                first.setdefault((new.set_name, new.report.key), pos)
        fresh: list[tuple[int, _New, dict[str, Any], dict[str, Any]]] = []  # (position, report, row, detail)
        rows: list[dict[str, Any]] = []  # the incidents made, as fresh
        for pos, new in enumerate(batch):
            key = new.report.key
            if key is not None and first[new.set_name, key] != pos:
                continue  # answered below from its first report
            row, detail = self._new_row(
                set_ids[new.set_name], new.report, new.placement, new.service, new.digest, new.actor, now
            )
            fresh.append((pos, new, row, detail))
        if fresh:  # a key another writer holds is waited for: taken (a retry), its incident is found
            inserted = self._insert_new(conn, [row for _, _, row, _ in fresh])
            by_key = {(r["set_id"], r["idem_key"]): r for r in inserted if r["idem_key"] is not None}
            keyless, kept = iter(r for r in inserted if r["idem_key"] is None), []  # in the order given
            for pos, new, row, detail in fresh:
                key = new.report.key
                made = next(keyless) if key is None else by_key.get((row["set_id"], key))
                if made is not None:
                    item = _record(made)
                    del item["set_id"], item["idem_key"]  # matched: the incident is what the API shows
                    rows.append(item)
                    kept.append((pos, new, row, detail))
                    continue
                assert key is not None  # a row without a key is never skipped
                try:
                    before = self._by_key(conn, row["set_id"], key, new.digest)
                    assert before is not None, f"key {key!r} conflicts but finds no incident"
                    out[pos] = (before, False)
                except InvalidIncident as error:
                    out[pos] = error
            fresh = kept
        if fresh:
            self._insert_events(
                conn,
                [
                    _first_line(item["id"], new.actor, now, detail)
                    for item, (_, new, _, detail) in zip(rows, fresh, strict=True)
                ],
            )
            asked = [
                (row["set_id"], item, new.duplicates_m)
                for item, (_, new, row, _) in zip(rows, fresh, strict=True)
                if new.duplicates_m is not None and item["lon"] is not None and item["lat"] is not None
            ]
            near = self._nearby_many(conn, asked) if asked else {}
            incident_kpis.tally(  # last: its rows stay locked until the commit
                conn, after=[(row["set_id"], item) for item, (_, _, row, _) in zip(rows, fresh, strict=True)]
            )
            for item, (pos, _, _, _) in zip(rows, fresh, strict=True):
                if item["id"] in near:
                    item["duplicate_candidates"] = near[item["id"]]
                out[pos] = (item, True)
        for pos, new in enumerate(batch):
            if out[pos] is None:  # the same key earlier in the batch: a retry of that report, or a misuse
                was = first[new.set_name, str(new.report.key)]
                answer = out[was]
                assert answer is not None
                if isinstance(answer, BaseException):
                    out[pos] = answer
                elif new.digest != batch[was].digest:
                    out[pos] = InvalidIncident(REUSED_KEY, field="idempotency_key")
                else:
                    out[pos] = (answer[0], False)
        assert all(o is not None for o in out), "every report of the batch is answered"
        return [o for o in out if o is not None]

    def _set_id_in(self, conn: Connection, set_name: str) -> int:
        """:meth:`_set_of` on a connection the caller holds."""
        found = self._set_ids.get(set_name)
        if found is None:
            found = self._set_ids[set_name] = self._store._set_id(conn, set_name)
        return found

    def _new_row(
        self,
        set_id: int,
        report: Report,
        placement: Placement,
        service: Service,
        digest: str,
        actor: str,
        now: dt.datetime,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The incident row of a new report, and the detail of its first log line."""
        reported = report.reported_at.astimezone(dt.UTC)
        deadline = self.calendar.deadline(reported, service.limit, service.unit).astimezone(dt.UTC)
        row: dict[str, Any] = {
            "set_id": set_id,
            "idem_key": report.key,
            "request_hash": digest,
            "channel": report.channel,
            "category": service.code,
            "kind": service.kind,
            "description": report.description,
            "reported_at": reported,
            "received_at": now,
            "crs": report.crs,
            "x": report.x,
            "y": report.y,
            "lon": placement.lon,
            "lat": placement.lat,
            "address": report.address,
            "address_id": placement.address_id,
            "address_confidence": placement.address_confidence,
            "placed_by": placement.placed_by,
            "version_number": placement.version_number,
            "microgrid": placement.microgrid,
            "grid": placement.units.get("grid"),
            "community": placement.units.get("community"),
            "street": placement.units.get("street"),
            "flags": list(placement.flags),
            "media": list(report.media),
            "reporter_name": report.reporter_name,
            "reporter_phone": report.reporter_phone,
            "state": "reported",
            "level": service.route()[0],
            "deadline": deadline,
            "escalations": 0,
            "seq": 1,
            "created_by": actor,
            "updated_at": now,
        }
        detail = {
            "channel": report.channel,
            "reported_at": reported.isoformat(),
            "deadline": deadline.isoformat(),
            "level": row["level"],
            "placement": placement.to_dict(),
        }
        return row, detail

    def _set_of(self, set_name: str) -> int:
        """The id of a set (remembered: a set with incidents is never deleted or renumbered)."""
        found = self._set_ids.get(set_name)
        if found is None:
            with self.engine.connect() as conn:
                found = self._set_id_in(conn, set_name)
        return found

    def _by_key(self, conn: Connection, set_id: int, key: str, digest: str) -> dict[str, Any] | None:
        row = conn.execute(
            sa.select(incident.c.id, incident.c.request_hash).where(
                incident.c.set_id == set_id, incident.c.idem_key == key
            )
        ).first()
        if row is None:
            return None
        if row[1] != digest:
            raise InvalidIncident(REUSED_KEY, field="idempotency_key")
        return self._get(conn, set_id, int(row[0]))

    # ---- reading ----------------------------------------------------------------------------------
    def get(self, set_name: str, incident_id: int) -> dict[str, Any]:
        """One incident as a dict of :data:`INCIDENT_COLUMNS` (UTC timestamps)."""
        with self.engine.connect() as conn:
            return self._get(conn, self._store._set_id(conn, set_name), incident_id)

    def _get(self, conn: Connection, set_id: int, incident_id: int, *, lock: bool = False) -> dict[str, Any]:
        query = sa.select(*(incident.c[c] for c in INCIDENT_COLUMNS)).where(
            incident.c.set_id == set_id, incident.c.id == incident_id
        )
        row = conn.execute(query.with_for_update() if lock else query).mappings().first()
        if row is None:
            raise NotFound(f"no incident {incident_id}", incident_id=incident_id)
        return _record(row)

    def incidents(
        self,
        set_name: str,
        *,
        state: str | None = None,
        units: Sequence[str] | None = None,
        queued: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """The set's incidents, newest first; ``units`` keeps those under any of these codes, ``queued``
        those waiting for a commander to place them (in no micro-grid, not final)."""
        with self.engine.connect() as conn:
            query = sa.select(*(incident.c[c] for c in INCIDENT_COLUMNS)).where(
                incident.c.set_id == self._store._set_id(conn, set_name)
            )
            if state is not None:
                query = query.where(incident.c.state == state)
            if units is not None:
                query = query.where(incident_kpis.under(incident, units))
            if queued:
                query = query.where(incident.c.microgrid.is_(None), incident.c.state.in_(sorted(states.OPEN)))
            query = query.order_by(incident.c.id.desc()).limit(max(limit, 0)).offset(max(offset, 0))
            return [_record(r) for r in conn.execute(query).mappings()]

    def search(
        self,
        set_name: str,
        *,
        ids: Sequence[int] | None = None,
        categories: Sequence[str] | None = None,
        states_in: Sequence[str] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        units: Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Incidents by ids, categories, states and reported in [start, end], under ``units``; newest first."""
        c = incident.c
        with self.engine.connect() as conn:
            query = sa.select(*(c[name] for name in INCIDENT_COLUMNS)).where(
                c.set_id == self._store._set_id(conn, set_name)
            )
            if ids is not None:
                query = query.where(c.id.in_(list(ids)))
            if categories is not None:
                query = query.where(c.category.in_(list(categories)))
            if states_in is not None:
                query = query.where(c.state.in_(list(states_in)))
            if start is not None:
                query = query.where(c.reported_at >= start.astimezone(dt.UTC))  # SQLite compares text
            if end is not None:
                query = query.where(c.reported_at <= end.astimezone(dt.UTC))
            if units is not None:
                query = query.where(incident_kpis.under(incident, units))
            query = query.order_by(c.reported_at.desc(), c.id.desc()).limit(max(limit, 0))
            return [_record(r) for r in conn.execute(query).mappings()]

    def last_notes(self, ids: Sequence[int]) -> dict[int, str]:
        """The last note in the log of each of ``ids`` that has one."""
        notes: dict[int, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                lines = conn.execute(
                    sa.select(incident_event.c.incident_id, incident_event.c.note)
                    .where(
                        incident_event.c.incident_id.in_(list(ids[i : i + 500])),
                        incident_event.c.note.is_not(None),
                    )
                    .order_by(incident_event.c.incident_id, incident_event.c.seq)
                )
                notes |= {int(r[0]): str(r[1]) for r in lines}  # the last one per incident stays
        return notes

    def log(self, set_name: str, incident_id: int | None = None) -> list[dict[str, Any]]:
        """The transition log (every incident's, or one's), oldest first: the raw data KPIs are counted from."""
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            query = (
                sa.select(*(incident_event.c[c] for c in EVENT_COLUMNS))
                .join(incident, incident.c.id == incident_event.c.incident_id)
                .where(incident.c.set_id == set_id)
            )
            if incident_id is not None:
                self._get(conn, set_id, incident_id)
                query = query.where(incident_event.c.incident_id == incident_id)
            rows = conn.execute(query.order_by(incident_event.c.id)).mappings()
            return [{**r, "at": _utc(r["at"])} for r in rows]

    def export_log(
        self,
        set_name: str,
        *,
        units: Sequence[str] | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The raw transition log for recounting, oldest first: each line with what never changes about
        its incident (reported_at, category, kind and the units it was placed in); ``after_id`` pages."""
        static = ("reported_at", "category", "kind", "microgrid", "grid", "community", "street")
        with self.engine.connect() as conn:
            query = (
                sa.select(*(incident_event.c[c] for c in EVENT_COLUMNS), *(incident.c[c] for c in static))
                .join(incident, incident.c.id == incident_event.c.incident_id)
                .where(
                    incident.c.set_id == self._store._set_id(conn, set_name), incident_event.c.id > after_id
                )
                .order_by(incident_event.c.id)
            )
            if units is not None:
                query = query.where(incident_kpis.under(incident, units))
            if limit is not None:
                query = query.limit(limit)
            return [
                {**r, "at": _utc(r["at"]), "reported_at": _utc(r["reported_at"])}
                for r in conn.execute(query).mappings()
            ]

    # ---- the loop ---------------------------------------------------------------------------------
    def act(
        self,
        set_name: str,
        incident_id: int,
        action: str,
        *,
        actor: str | None = None,
        note: str | None = None,
        attachments: Sequence[str] = (),
        expect: int | None = None,
        level: str | None = None,
        satisfaction: int | None = None,
        duplicate_of: int | None = None,
        placement: Placement | None = None,
        to: Sequence[Mapping[str, Any]] | None = None,
        at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """Take one step of the loop; the incident after it. ``expect``: the seq the caller last saw;
        ``placement``: where ``place`` puts it; ``to``: whom a dispatch reaches (logged, and answered as
        ``dispatched_to``)."""
        actor = actor or self.actor
        now = (at or _now()).astimezone(dt.UTC)
        with self.engine.begin() as conn:
            set_id = self._store._set_id(conn, set_name)
            if action == "void" and duplicate_of is not None and duplicate_of < incident_id:
                self._get(conn, set_id, duplicate_of, lock=True)  # both locked in id order: no deadlock
            was = self._get(conn, set_id, incident_id, lock=True)
            if expect is not None and expect != was["seq"]:
                raise VersionConflict(
                    f"incident {incident_id} changed since (seq {was['seq']}, not {expect}); read it again",
                    incident_id=incident_id,
                    seq=was["seq"],
                )
            step = states.step(was["state"], action)
            change: dict[str, Any] = {"state": step.target or was["state"]}
            detail: dict[str, Any] = {}
            service = self.catalogue.get(was["category"])
            route = service.route()
            if action == "escalate":
                here = route.index(was["level"]) if was["level"] in route else 0
                if here + 1 >= len(route):
                    raise IllegalTransition(
                        f"incident {incident_id} is with {was['level']} already, the last level of its route",
                        incident_id=incident_id,
                        allowed=[a for a in states.allowed(was["state"]) if a != "escalate"],
                    )
                change["level"] = route[here + 1]
                change["deadline"] = self.calendar.deadline(now, service.limit, service.unit)
                detail = {"from_level": was["level"], "to_level": change["level"]}
            elif action == "dispatch":
                if level is not None and level not in route:
                    raise InvalidIncident(
                        f"level {level!r} is not on this category's route: {', '.join(route)}", field="level"
                    )
                if level is not None:
                    change["level"] = level
                    detail = {"from_level": was["level"], "to_level": level}
                if to is not None:
                    detail["to"] = [dict(p) for p in to]
            elif action in ("park", "resolve"):  # the clock stops: what was left of the limit is kept
                left = self.calendar.working_hours_between(now, was["deadline"]) if was["deadline"] else None
                detail = {"hours_left": left}
            elif action in ("resume", "reject"):  # and runs again from here with what was left
                stopped = self._last(conn, incident_id, "park" if action == "resume" else "resolve") or {}
                left = stopped.get("detail", {}).get("hours_left")
                if left is not None:
                    change["deadline"] = self.calendar.add_working_hours(now, float(left))
                if action == "resume" and stopped.get("from_state") in (
                    "accepted",
                    "dispatched",
                    "in_progress",
                ):
                    change["state"] = stopped["from_state"]  # back where it was parked, not handled by nobody
            elif action == "place":
                if placement is None or placement.microgrid is None:
                    raise InvalidIncident("place needs a point inside a micro-grid", field="coordinates")
                change |= {
                    "lon": placement.lon, "lat": placement.lat, "version_number": placement.version_number,
                    "microgrid": placement.microgrid, "grid": placement.units.get("grid"),
                    "community": placement.units.get("community"), "street": placement.units.get("street"),
                    "placed_by": "manual", "flags": list(placement.flags),
                }  # fmt: skip
                detail = {
                    "from_microgrid": was["microgrid"],
                    "to_microgrid": placement.microgrid,
                    "placement": placement.to_dict(),
                }
            elif action == "close" and satisfaction is not None:
                if not 1 <= satisfaction <= 5:
                    raise InvalidIncident(f"satisfaction {satisfaction} is not 1 to 5", field="satisfaction")
                change["satisfaction"] = satisfaction
                detail = {"satisfaction": satisfaction}
            elif action == "void" and duplicate_of is not None:
                if duplicate_of == incident_id:
                    raise InvalidIncident("an incident is not its own duplicate", field="duplicate_of")
                kept = self._get(conn, set_id, duplicate_of, lock=True)
                if kept["state"] == "void":
                    raise InvalidIncident(
                        f"incident {duplicate_of} is void itself; merge into the one it repeats",
                        field="duplicate_of",
                    )
                if kept["state"] == "closed":
                    raise InvalidIncident(
                        f"incident {duplicate_of} is closed: a new report of it is a new case",
                        field="duplicate_of",
                    )
                change["duplicate_of"] = duplicate_of
                detail = {"duplicate_of": duplicate_of}
            if "deadline" in change:
                change["deadline"] = change["deadline"].astimezone(dt.UTC)
                detail["deadline"] = change["deadline"].isoformat()
            change |= self._tallies(was, action, now)
            seq = was["seq"] + 1
            updated = conn.execute(
                sa.update(incident)
                .where(incident.c.id == incident_id, incident.c.seq == was["seq"])
                .values(**change, seq=seq, updated_at=now)
            ).rowcount
            if updated != 1:  # SpatiaLite takes no row lock: the seq check is the lock
                raise VersionConflict(
                    f"incident {incident_id} changed meanwhile; read it again", incident_id=incident_id
                )
            _log(
                conn,
                incident_id,
                seq,
                action,
                was["state"],
                change["state"],
                actor,
                now,
                note,
                attachments,
                detail,
            )
            if action == "void" and duplicate_of is not None:  # the kept one's log says what joined it
                kept = self._get(conn, set_id, duplicate_of)
                moved = conn.execute(  # unless it changed meanwhile (SpatiaLite has no row lock to take)
                    sa.update(incident)
                    .where(
                        incident.c.id == duplicate_of,
                        incident.c.seq == kept["seq"],
                        incident.c.state.in_(sorted(states.OPEN)),
                    )
                    .values(seq=kept["seq"] + 1, updated_at=now)
                ).rowcount
                if moved != 1:
                    raise VersionConflict(
                        f"incident {duplicate_of} changed meanwhile; read it again", incident_id=duplicate_of
                    )
                _log(
                    conn, duplicate_of, kept["seq"] + 1, "merge", kept["state"], kept["state"], actor, now,
                    note, (), {"duplicate": incident_id},
                )  # fmt: skip
            after = self._get(conn, set_id, incident_id)
            incident_kpis.tally(conn, [(set_id, was)], [(set_id, after)])
            if "to" in detail:
                after["dispatched_to"] = detail["to"]
            return after

    def nearby(
        self,
        set_name: str,
        category: str,
        lon: float,
        lat: float,
        metres: float,
        *,
        exclude: int | None = None,
        limit: int = 5,
    ) -> list[dict[str, Any]]:
        """The ``limit`` open incidents of ``category`` nearest a point within ``metres``: likely duplicates
        (a place reported a hundred times offers the nearest few, not all of them)."""
        with self.engine.connect() as conn:
            return self._nearby(conn, self._set_of(set_name), category, lon, lat, metres, exclude, limit)

    def _nearby(
        self,
        conn: Connection,
        set_id: int,
        category: str,
        lon: float,
        lat: float,
        metres: float,
        exclude: int | None = None,
        limit: int = 5,
    ) -> list[dict[str, Any]]:
        dlat = metres / 111_195.0
        dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
        k = math.cos(math.radians(lat)) ** 2  # degrees of longitude are shorter: the planar order of metres
        c = incident.c
        rows = conn.execute(
            sa.select(c.id, c.lon, c.lat, c.state)
            .where(
                c.set_id == set_id,
                c.category == category,
                c.lat.between(lat - dlat, lat + dlat),
                c.lon.between(lon - dlon, lon + dlon),
                c.state.in_(sorted(states.OPEN)),
                c.id != (exclude or 0),
            )
            .order_by((c.lat - lat) * (c.lat - lat) + k * (c.lon - lon) * (c.lon - lon), c.id)
            .limit(limit)
        ).mappings()
        found = []
        for r in rows:
            apart = metres_between((lon, lat), (r["lon"], r["lat"]))
            if apart <= metres:
                found.append({"id": r["id"], "distance_m": round(apart, 1), "state": r["state"]})
        return sorted(found, key=lambda f: (f["distance_m"], f["id"]))

    def _nearby_many(
        self, conn: Connection, asked: Sequence[tuple[int, Mapping[str, Any], float]], limit: int = 5
    ) -> dict[int, list[dict[str, Any]]]:
        """:meth:`_nearby` for many new incidents in one query: for each, the ``limit`` nearest open incidents
        of its category within its metres that were reported before it (asked: set id, incident, metres)."""
        boxes = []
        for set_id, made, metres in asked:
            dlat = metres / 111_195.0
            dlon = dlat / max(math.cos(math.radians(made["lat"])), 0.01)
            boxes.append({
                "qid": made["id"], "set_id": set_id, "category": made["category"],
                "lat0": made["lat"] - dlat, "lat1": made["lat"] + dlat,
                "lon0": made["lon"] - dlon, "lon1": made["lon"] + dlon,
                "lat": made["lat"], "lon": made["lon"], "k": math.cos(math.radians(made["lat"])) ** 2,
            })  # fmt: skip
        rows_of = dialect_of(conn).json_rows("q", NEARBY_BOX)
        rows: Sequence[Any]
        if rows_of is not None:  # one fixed statement whatever the batch, an index scan per new incident
            query = self._nearby_sql.get(conn.dialect.name)
            if query is None:
                open_states = ", ".join(repr(s) for s in sorted(states.OPEN))
                query = self._nearby_sql[conn.dialect.name] = sa.text(
                    f"SELECT q.qid, i.id, i.lon, i.lat, i.state FROM {rows_of} CROSS JOIN LATERAL ("
                    "SELECT id, lon, lat, state FROM incident WHERE set_id = q.set_id "
                    "AND category = q.category AND lat BETWEEN q.lat0 AND q.lat1 "
                    f"AND lon BETWEEN q.lon0 AND q.lon1 AND id < q.qid AND state IN ({open_states}) "
                    "ORDER BY (lat - q.lat) * (lat - q.lat) + q.k * (lon - q.lon) * (lon - q.lon), id "
                    "LIMIT :limit) AS i"  # the nearest few of a place reported a hundred times
                )
            rows = conn.execute(query, {"q": orjson.dumps(boxes).decode(), "limit": limit}).all()
        else:
            c = incident.c
            rows = []
            for box in boxes:
                rows += conn.execute(
                    sa.select(sa.literal(box["qid"]), c.id, c.lon, c.lat, c.state)
                    .where(
                        c.set_id == box["set_id"],
                        c.category == box["category"],
                        c.lat.between(box["lat0"], box["lat1"]),
                        c.lon.between(box["lon0"], box["lon1"]),
                        c.id < box["qid"],
                        c.state.in_(sorted(states.OPEN)),
                    )
                    .order_by(
                        (c.lat - box["lat"]) * (c.lat - box["lat"])
                        + box["k"] * (c.lon - box["lon"]) * (c.lon - box["lon"]),
                        c.id,
                    )
                    .limit(limit)
                ).all()
        where = {made["id"]: (made, metres) for _, made, metres in asked}
        found: dict[int, list[dict[str, Any]]] = {made["id"]: [] for _, made, _ in asked}
        for qid, other, lon, lat, state in rows:
            made, metres = where[qid]
            apart = metres_between((made["lon"], made["lat"]), (lon, lat))
            if apart <= metres:
                found[qid].append({"id": other, "distance_m": round(apart, 1), "state": state})
        return {k: sorted(v, key=lambda f: (f["distance_m"], f["id"]))[:limit] for k, v in found.items()}

    def reporters(self, set_name: str, incident_id: int) -> list[dict[str, Any]]:
        """Whom to answer (结果回复) about an incident: its reporter and those of the duplicates merged into it."""
        c = incident.c
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            self._get(conn, set_id, incident_id)
            rows = conn.execute(
                sa.select(c.id, c.channel, c.reporter_name, c.reporter_phone)
                .where(c.set_id == set_id, sa.or_(c.id == incident_id, c.duplicate_of == incident_id))
                .order_by(c.id)
            ).mappings()
            return [dict(r) for r in rows]

    def kpis(
        self,
        set_name: str,
        by: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        units: Sequence[str] | None = None,
        now: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The figures of :mod:`geogrid.incidents.kpis` per unit ``by`` for incidents reported in
        [``start``, ``end``), added up from the tallies (:mod:`geogrid.db.incident_kpis`); ``units`` limits
        them to incidents under these codes."""
        if by not in kpis.BY:
            raise InvalidIncident(f"by {by[:20]!r}: one of {', '.join(kpis.BY)}", field="by")
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidIncident("a period's start and end need a time zone", field="start")
        with self.engine.connect() as conn:
            dialect_of(conn).read_snapshot(conn)  # tallies and rows as of one moment: the parts add up
            return incident_kpis.figures(
                conn,
                self._store._set_id(conn, set_name),
                by,
                start.astimezone(dt.UTC),  # SQLite compares them as text
                end.astimezone(dt.UTC),
                (now or _now()).astimezone(dt.UTC),
                units,
            )

    def points(
        self,
        set_name: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        units: Sequence[str] | None = None,
        category: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100_000,
    ) -> dict[str, Any]:
        """The incidents reported in [``start``, ``end``) as columns of points (:mod:`geogrid.db.incident_points`)."""
        with self.engine.connect() as conn:
            return incident_points.points(
                conn,
                self._store._set_id(conn, set_name),
                start.astimezone(dt.UTC),  # SQLite compares them as text
                end.astimezone(dt.UTC),
                _now().astimezone(dt.UTC),
                units=units,
                category=category,
                since=since.astimezone(dt.UTC) if since is not None else None,
                limit=limit,
            )

    def _tallies(self, was: dict[str, Any], action: str, now: dt.datetime) -> dict[str, Any]:
        """The columns the KPIs are counted from, as this step changes them (each also follows from the log)."""
        out: dict[str, Any] = {}
        if action == "accept" and was["accepted_at"] is None:
            out["accepted_at"] = now
        elif action == "resolve" and was["resolved_at"] is None:
            out["resolved_at"] = now
            # on time: by the deadline then in force, never escalated (an escalation is a limit missed)
            out["on_time"] = was["escalations"] == 0 and (was["deadline"] is None or now <= was["deadline"])
        elif action == "close":
            out["closed_at"] = now
            out["hours_to_close"] = self.calendar.working_hours_between(was["reported_at"], now)
        elif action == "escalate":
            out["escalations"] = was["escalations"] + 1
        return out

    def overdue(self, set_name: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Open incidents whose limit has passed and whose clock is running, oldest deadline first."""
        now = (now or _now()).astimezone(dt.UTC)
        with self.engine.connect() as conn:
            query = (
                sa.select(*(incident.c[c] for c in INCIDENT_COLUMNS))
                .where(
                    incident.c.set_id == self._store._set_id(conn, set_name),
                    incident.c.state.in_(sorted(states.RUNNING)),
                    incident.c.deadline <= now,
                )
                .order_by(incident.c.deadline, incident.c.id)
            )
            return [_record(r) for r in conn.execute(query).mappings()]

    def escalate_overdue(
        self, set_name: str, now: dt.datetime | None = None, actor: str = "system"
    ) -> list[int]:
        """Escalate every overdue incident one level up (the periodic job): the ids escalated."""
        now = now or _now()
        done = []
        for item in self.overdue(set_name, now):
            route = self.catalogue.get(item["category"]).route()
            if item["level"] in route and route.index(item["level"]) + 1 >= len(route):
                continue  # at the top already: stays overdue, shown in red
            try:
                self.act(
                    set_name,
                    item["id"],
                    "escalate",
                    actor=actor,
                    at=now,
                    expect=item["seq"],
                    note="overdue: the limit passed",
                )
            except (VersionConflict, IllegalTransition):
                continue  # someone acted on it meanwhile
            done.append(item["id"])
        return done

    def _last(self, conn: Connection, incident_id: int, action: str) -> dict[str, Any] | None:
        row = (
            conn.execute(
                sa.select(*(incident_event.c[c] for c in EVENT_COLUMNS))
                .where(incident_event.c.incident_id == incident_id, incident_event.c.action == action)
                .order_by(incident_event.c.seq.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        return dict(row) if row is not None else None


def _log(
    conn: Connection,
    incident_id: int,
    seq: int,
    action: str,
    before: str | None,
    after: str,
    actor: str,
    at: dt.datetime,
    note: str | None,
    attachments: Sequence[str],
    detail: dict[str, Any],
) -> None:
    """Append one line to the incident's log (the database refuses to change or delete it later)."""
    conn.execute(
        INSERT_EVENT, _line(incident_id, seq, action, before, after, actor, at, note, attachments, detail)
    )


def _line(
    incident_id: int,
    seq: int,
    action: str,
    before: str | None,
    after: str,
    actor: str,
    at: dt.datetime,
    note: str | None,
    attachments: Sequence[str],
    detail: dict[str, Any],
) -> dict[str, Any]:
    """A row of the incident log."""
    return {
        "incident_id": incident_id, "seq": seq, "action": action, "from_state": before, "to_state": after,
        "actor": actor, "at": at, "note": note, "attachments": list(attachments), "detail": detail,
    }  # fmt: skip


def _first_line(incident_id: int, actor: str, at: dt.datetime, detail: dict[str, Any]) -> dict[str, Any]:
    """The log line of a new incident: reported."""
    return _line(incident_id, 1, "report", None, "reported", actor, at, None, (), detail)


def _record(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    for c in (
        "reported_at",
        "received_at",
        "deadline",
        "updated_at",
        "accepted_at",
        "resolved_at",
        "closed_at",
    ):
        out[c] = _utc(out[c])
    return out
