"""A hotline export into the incidents of a set: read in chunks, placed by the version of each row's day,
written in one transaction with --commit — good rows kept, bad rows reported, nothing created twice.

Each row's work order number (or, without one, the row itself) is its idempotency key: importing the same
file again finds every incident it made the first time and creates none. A row whose work order number was
imported before with other content is a row error (the office should say which is right), as is a row
that cannot be placed. Address texts are matched in one batch per chunk, each distinct text once per import
(hotline callers repeat the same addresses). Memory stays bounded by the chunk and the memos of matches and
keys (at most MATCHES texts, MEMO_KEYS keys): the file is never read whole.

Rows go column by column from the file to the database, never as an object a row. On PostGIS a chunk's
COPY runs on a thread of its own while the next chunk is read and placed (the server writes on one core
while Python works on the other); ids are drawn from the sequence first, so the rows and their log lines
go together without being read back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from geogrid.addresses.matcher import Match, Matcher
from geogrid.db import incident_kpis
from geogrid.db.dialects import Dialect, dialect_of
from geogrid.db.incidents import IncidentStore
from geogrid.db.schema import incident, incident_event
from geogrid.db.store import Store, _now, in_force
from geogrid.errors import GeoGridError, ImportCollision, InvalidAddress, MissingColumn
from geogrid.incidents import hotline
from geogrid.incidents.intake import ReportColumns, locate_columns
from geogrid.incidents.placement import Placed
from geogrid.index import GridIndex
from geogrid.io.tables import stream_table
from geogrid.people import shown
from geogrid.rosters import RowError

HEADER_NAMES = tuple(name for names in hotline.COLUMNS.values() for name in names[:2])
MATCHES = 50_000  # address texts whose matches an import keeps (then it starts afresh: memory stays bounded)
MEMO_KEYS = 200_000  # keys an import remembers writing (then it looks its own rows up in its transaction)


@dataclass
class ImportReport:
    """What an import did (or, as a dry run, would do): rows, new incidents, ones seen before, row errors."""

    file: str
    set_name: str
    committed: bool
    rows: int = 0
    new: int = 0
    seen_before: int = 0
    queued: int = 0
    errors: list[RowError] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """The counts as a dict (for the CLI's table and the API's answer)."""
        keys = ("file", "set_name", "committed", "rows", "new", "seen_before", "queued")
        return {k: getattr(self, k) for k in keys} | {"errors": len(self.errors)}


class VersionIndexes:
    """The lookup index of the boundary version in force on a day, built once per version."""

    def __init__(self, store: Store, set_name: str, cache_dir: str | None = None) -> None:
        self.store, self.set_name, self.cache_dir = store, set_name, cache_dir
        self.versions = store.versions(set_name)
        self._built: dict[int, GridIndex] = {}

    def __call__(self, day: dt.date) -> GridIndex:
        number = in_force(self.versions, self.set_name, day).number
        found = self._built.get(number)
        if found is None:
            found = self._built[number] = GridIndex.from_version(
                self.store, self.set_name, day, cache_dir=self.cache_dir
            )
        return found


def import_hotline(
    incidents: IncidentStore,
    set_name: str,
    path: Path,
    index_on: Callable[[dt.date], GridIndex],
    matcher: Matcher | None,
    *,
    commit: bool = False,
    actor: str | None = None,
    chunk_rows: int = 5_000,
    outside: str = "refuse",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a hotline export (CSV or .xlsx) into ``set_name``'s incidents: a dry run unless ``commit``."""
    report = ImportReport(str(path), set_name, commit)
    tz = incidents.calendar.tz
    now = dt.datetime.now(ZoneInfo(tz))
    with contextlib.ExitStack() as stack:
        rows_out = stack.enter_context(_Rows.open(incidents, set_name, actor)) if commit else None
        header_at = [1]
        checked = False
        matched: dict[str, Match | InvalidAddress] = {}
        chunks = stream_table(
            path,
            chunk_rows=chunk_rows,
            header_names=HEADER_NAMES,
            on_header=lambda n: header_at.__setitem__(0, n),
        )
        for header, rows in chunks:
            if not checked:
                first_row = header_at[0] + 1  # rows are numbered as in the file
                lacking = hotline.missing(hotline.header_map(header))
                if lacking:
                    raise MissingColumn(f"{path.name} has no column {', '.join(lacking)}", file=str(path))
                checked = True
            numbers, good, errors = hotline.read(
                header, rows, first_row, incidents.catalogue, tz=tz, source=path.name
            )
            first_row += len(rows)
            report.rows += len(numbers) + len(errors)
            report.errors += errors
            placed = _place(numbers, good, index_on, matcher, now, outside, report.errors, matched)
            kept = [i for i in range(len(numbers)) if i not in placed.errors]
            report.queued += sum(placed.placed_by[i] == "queue" for i in kept)
            if rows_out is not None and kept:
                taken = good.take(kept)
                ids, made = rows_out.write(taken, placed.take(kept))
                _written(report, ids, made, [numbers[i] for i in kept], taken)
            else:
                report.new += len(kept)  # a dry run: what would be new is not known without the database
            if progress is not None:
                progress(report.rows)
        if rows_out is not None:
            rows_out.finish()
    report.errors.sort(key=lambda e: e.row)
    return report


def _written(
    report: ImportReport, ids: list[int | None], made: list[int], numbers: list[int], reports: ReportColumns
) -> None:
    """Count a chunk's write: new incidents, ones seen before, work orders imported before as other content."""
    report.new += len(made)
    fresh = set(made)
    for n, extra, incident_id in zip(numbers, reports.extra, ids, strict=True):
        if incident_id is None:
            order = extra.get("order_id")
            said = f"work order {order}" if order else "this row"
            report.errors.append(RowError(n, "工单编号", f"{said} was imported before with other content"))
        elif incident_id not in fresh:
            report.seen_before += 1
    report.ids += made


def _place(
    numbers: list[int],
    good: ReportColumns,
    index_on: Callable[[dt.date], GridIndex],
    matcher: Matcher | None,
    now: dt.datetime,
    outside: str,
    errors: list[RowError],
    matched: dict[str, Match | InvalidAddress],
) -> Placed:
    """Place each report (addresses not in ``matched`` matched as one batch, and added to it); a row that
    cannot be is a row error (and among the Placed's errors)."""
    texts = sorted({a for a in good.address if a and a not in matched})
    if matcher is not None and texts:
        if len(matched) + len(texts) > MATCHES:
            matched.clear()
            texts = sorted({a for a in good.address if a})
        matched.update(zip(texts, matcher.match_many(texts), strict=True))
    placed = locate_columns(good, index_on, matcher, now=now, outside=outside, matched=matched)
    for i, problem in sorted(placed.errors.items()):
        where = problem.where if isinstance(problem, GeoGridError) else {}
        field = str(where.get("field", ""))
        name = hotline.COLUMNS[field][0] if field in hotline.COLUMNS else field
        if isinstance(problem, InvalidAddress) or field == "address":
            name = "事发地址"
        elif field == "coordinates":
            name = "经度"
        detail = problem.detail if isinstance(problem, GeoGridError) else str(problem)
        errors.append(RowError(numbers[i], name, shown(detail)))
    return placed


class _Rows:
    """An import's incidents and first log lines, written into one set in one transaction, chunk by chunk."""

    def __init__(
        self, incidents: IncidentStore, conn: Connection, reader: Connection, set_name: str, actor: str
    ):
        self.incidents, self.conn, self.reader = incidents, conn, reader
        self.dialect: Dialect = dialect_of(conn)
        self.set_id = incidents._set_id_in(conn, set_name)
        self.actor = actor
        self.writer = _Writer(conn, threaded=self.dialect.writes_aside)
        # keys written by this import, seen by no other connection before the commit (None: too many kept;
        # the import's own rows are then looked up in its transaction)
        self.memo: dict[str, tuple[int, str]] | None = {} if self.dialect.writes_aside else None

    @classmethod
    @contextlib.contextmanager
    def open(cls, incidents: IncidentStore, set_name: str, actor: str | None) -> Iterator[_Rows]:
        """A transaction (and, where writes go aside, a second connection to look keys up with)."""
        with contextlib.ExitStack() as stack:
            conn = stack.enter_context(incidents.engine.begin())
            aside = dialect_of(conn).writes_aside
            reader = stack.enter_context(incidents.engine.connect()) if aside else conn
            rows = cls(incidents, conn, reader, set_name, actor or incidents.actor)
            try:
                yield rows
            finally:
                rows.writer.close()

    def finish(self) -> None:
        """Wait for the last COPY and tally what was written (before the commit)."""
        self.writer.wait()
        incident_kpis.flush(self.conn)

    def write(self, reports: ReportColumns, placed: Placed) -> tuple[list[int | None], list[int]]:
        """Write a chunk: each row's incident id (an earlier one's for a key seen before), None where its
        key was used for another report; and the ids made now."""
        digests = reports.fingerprints()  # once each: a key seen again compares them
        keys: list[str] = reports.key  # type: ignore[assignment]  # every hotline row has one
        known = self._known(sorted(set(keys)))
        ids: list[int | None] = [None] * len(keys)
        fresh: list[int] = []
        first_of: dict[str, int] = {}
        again: list[tuple[int, int]] = []  # (position, position of the same key earlier in the chunk)
        for pos, (key, digest) in enumerate(zip(keys, digests, strict=True)):
            hit = known.get(key)
            if hit is not None:
                ids[pos] = hit[0] if hit[1] == digest else None
            elif key in first_of:
                again.append((pos, first_of[key]))
            else:
                first_of[key] = pos
                fresh.append(pos)
        made: list[int] = []
        for i in range(0, len(fresh), PART):  # parts: the writer starts on one while the next is made
            part = fresh[i : i + PART]
            made += self._write_new(reports.take(part), placed.take(part), [digests[p] for p in part])
        if fresh:
            for pos, new_id in zip(fresh, made, strict=True):
                ids[pos] = new_id
            if self.memo is not None:
                self.memo.update((keys[p], (i, digests[p])) for p, i in zip(fresh, made, strict=True))
                if len(self.memo) > MEMO_KEYS:
                    self.memo = None
        for pos, first in again:
            ids[pos] = ids[first] if digests[pos] == digests[first] else None
        return ids, made

    def _known(self, keys: list[str]) -> dict[str, tuple[int, str]]:
        """The incident id and request hash of each of ``keys`` written before (by anyone, this import too)."""
        found: dict[str, tuple[int, str]] = {}
        if self.memo is not None:
            source = self.reader
            for key in keys:
                hit = self.memo.get(key)
                if hit is not None:
                    found[key] = hit
            keys = [k for k in keys if k not in found]
        else:
            self.writer.wait()  # the import's own rows, seen in its transaction once written
            source = self.conn
        c = incident.c
        for i in range(0, len(keys), LOOKUP):
            rows = source.execute(
                sa.select(c.idem_key, c.id, c.request_hash).where(
                    c.set_id == self.set_id, self.dialect.one_of(c.idem_key, keys[i : i + LOOKUP])
                )
            )
            found.update({str(k): (int(v), str(h)) for k, v, h in rows})
        return found

    def _write_new(self, reports: ReportColumns, placed: Placed, digests: list[str]) -> list[int]:
        """Write new incidents and their first log lines (queued for the writer where it runs aside): their ids."""
        n = len(reports)
        now = _now()
        incidents = self.incidents
        services = {code: incidents.catalogue.get(code) for code in set(reports.category)}
        reported = [r.astimezone(dt.UTC) for r in reports.reported_at]
        deadline: list[Any] = [None] * n
        by_service: dict[str, list[int]] = defaultdict(list)
        for i, code in enumerate(reports.category):
            by_service[code].append(i)
        for code, rows in by_service.items():
            service = services[code]
            dues = incidents.calendar.deadlines(
                [reports.reported_at[i] for i in rows], service.limit, service.unit
            )
            for i, due in zip(rows, dues, strict=True):
                deadline[i] = due.astimezone(dt.UTC)
        level_of = {code: s.route()[0] for code, s in services.items()}
        levels = [level_of[code] for code in reports.category]
        flags = _json_column([list(f) for f in placed.flags])
        columns: dict[str, list[Any]] = {
            "set_id": [self.set_id] * n, "idem_key": reports.key, "request_hash": digests,
            "channel": reports.channel, "category": [services[c].code for c in reports.category],
            "kind": [services[c].kind for c in reports.category], "description": reports.description,
            "reported_at": reported, "received_at": [now] * n, "crs": reports.crs, "x": reports.x, "y": reports.y,
            "lon": placed.lon, "lat": placed.lat, "address": reports.address, "address_id": placed.address_id,
            "address_confidence": placed.address_confidence, "placed_by": placed.placed_by,
            "version_number": placed.version_number, "microgrid": placed.microgrid, "grid": placed.grid,
            "community": placed.community, "street": placed.street, "flags": flags,
            "media": _json_column([list(m) for m in reports.media]), "reporter_name": reports.reporter_name,
            "reporter_phone": reports.reporter_phone, "state": ["reported"] * n, "level": levels,
            "deadline": deadline, "escalations": [0] * n, "seq": [1] * n, "created_by": [self.actor] * n,
            "updated_at": [now] * n,
        }  # fmt: skip
        details = [
            orjson.dumps({
                "channel": ch, "reported_at": at.isoformat(), "deadline": due.isoformat(), "level": lv,
                "placement": {
                    "placed_by": by, "lon": x, "lat": y, "version_number": v, "microgrid": mg, "street": st,
                    "community": cm, "grid": gr, "address_id": aid, "address_confidence": conf,
                    "flags": list(fl), "reason": why,
                },
            }).decode()
            for ch, at, due, lv, by, x, y, v, mg, st, cm, gr, aid, conf, fl, why in zip(
                reports.channel, reported, deadline, levels, placed.placed_by, placed.lon, placed.lat,
                placed.version_number, placed.microgrid, placed.street, placed.community, placed.grid,
                placed.address_id, placed.address_confidence, placed.flags, placed.reason, strict=True,
            )
        ]  # fmt: skip  # as the log line of a report made one by one (IncidentStore.create) holds it
        events: dict[str, list[Any]] = {
            "seq": [1] * n, "action": ["report"] * n, "from_state": [None] * n, "to_state": ["reported"] * n,
            "actor": [self.actor] * n, "at": [now] * n, "note": [None] * n, "attachments": ["[]"] * n,
            "detail": details,
        }  # fmt: skip
        tallied = Counter(
            (self.set_id, incident_kpis.month_of(at), mg or "", gr or "", cm or "", st or "", lv)
            for at, mg, gr, cm, st, lv in zip(
                reported, placed.microgrid, placed.grid, placed.community, placed.street, levels, strict=True
            )
        )
        incident_kpis.defer_received(self.conn, tallied)
        dialect, conn = self.dialect, self.conn
        ids = dialect.new_ids(self.reader, incident.name, n)
        if ids is None:  # no sequence to draw from (SQLite): written now, found again by key
            floor = conn.execute(sa.select(sa.func.max(incident.c.id))).scalar() or 0
            try:
                dialect.bulk_insert(conn, incident, columns)(conn)
            except IntegrityError as exc:
                raise _collision() from exc
            c = incident.c
            by_key = dict(
                conn.execute(sa.select(c.idem_key, c.id).where(c.set_id == self.set_id, c.id > floor)).all()
            )
            ids = [int(by_key[k]) for k in reports.key]
            dialect.bulk_insert(conn, incident_event, {"incident_id": ids, **events})(conn)
            return ids
        jobs = [
            dialect.bulk_insert(conn, incident, {"id": ids, **columns}),
            dialect.bulk_insert(conn, incident_event, {"incident_id": ids, **events}),
        ]

        def write(conn: Connection) -> None:
            for job in jobs:
                job(conn)

        self.writer.submit(write)
        return ids


LOOKUP = 10_000  # keys a look-up statement carries
PART = 2_500  # new rows a COPY carries (the last one, written after the rest is read, is short)


class _Writer:
    """An import's writes, on a thread of their own (``threaded``: while the next chunk is read and placed)
    or on the caller's; at most one waiting behind the one being written (memory stays bounded)."""

    def __init__(self, conn: Connection, *, threaded: bool) -> None:
        self.conn = conn
        self._jobs: queue.Queue[Callable[[Connection], None] | None] = queue.Queue(maxsize=1)
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="geogrid-import-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._failed is None:
                    job(self.conn)
            except BaseException as exc:  # handed to the caller at its next call
                self._failed = exc
            finally:
                self._jobs.task_done()

    def submit(self, job: Callable[[Connection], None]) -> None:
        """Write ``job`` (a function of the connection) now or on the thread, after those before it."""
        self._check()
        if self._thread is None:
            job(self.conn)
        else:
            self._jobs.put(job)

    def wait(self) -> None:
        """Return once every job submitted is written; raise what one of them raised."""
        if self._thread is not None:
            self._jobs.join()
        self._check()

    def close(self) -> None:
        """Stop the thread (jobs still queued after a failure are dropped: the transaction rolls back)."""
        if self._thread is not None:
            if self._failed is None and not self._jobs.empty():
                self._failed = RuntimeError("the import stopped")  # what is queued need not be written
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _check(self) -> None:
        failed = self._failed
        if isinstance(failed, IntegrityError):
            raise _collision() from failed
        if failed is not None:
            raise failed


def _collision() -> ImportCollision:
    """The error of an import whose keys another writer took between its look-up and its write."""
    return ImportCollision(
        "rows of this file were written meanwhile by another import or request; nothing was kept — run the "
        "import again"
    )


def _json_column(values: list[Any]) -> list[str]:
    """A JSON column's values as their text (each distinct one formatted once)."""
    memo: dict[str, str] = {}
    out = []
    for value in values:
        key = repr(value)
        text = memo.get(key)
        if text is None:
            text = memo[key] = orjson.dumps(value).decode()
        out.append(text)
    return out
