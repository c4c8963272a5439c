"""A hotline export into the incidents of a set: read in chunks, placed by the version of each row's day,
written in one transaction with --commit — good rows kept, bad rows reported, nothing created twice.

Each row's work order number (or, without one, the row itself) is its idempotency key: importing the same
file again finds every incident it made the first time and creates none. A row whose work order number was
imported before with other content is a row error (the office should say which is right), as is a row
that cannot be placed. Address texts are matched in one batch per chunk, each distinct text once per import
(hotline callers repeat the same addresses). Memory stays bounded by the chunk and the memo of matches
(at most MATCHES texts): the file is never read whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from geogrid.addresses.matcher import Match, Matcher
from geogrid.db import incident_kpis
from geogrid.db.incidents import IncidentStore
from geogrid.db.store import Store, in_force
from geogrid.errors import GeoGridError, InvalidAddress, MissingColumn
from geogrid.incidents import hotline
from geogrid.incidents.intake import Report, locate_many
from geogrid.incidents.placement import Placement
from geogrid.index import GridIndex
from geogrid.io.tables import stream_table
from geogrid.people import shown
from geogrid.rosters import RowError

HEADER_NAMES = tuple(name for names in hotline.COLUMNS.values() for name in names[:2])
MATCHES = 50_000  # address texts whose matches an import keeps (then it starts afresh: memory stays bounded)


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
        conn = stack.enter_context(incidents.engine.begin()) if commit else None
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
            good, errors = hotline.reports(
                header, rows, first_row, incidents.catalogue, tz=tz, source=path.name
            )
            first_row += len(rows)
            report.rows += len(good) + len(errors)
            report.errors += errors
            placed = _place(good, index_on, matcher, now, outside, report.errors, matched)
            report.queued += sum(p.placed_by == "queue" for _, _, p in placed)
            if conn is not None and placed:
                items = [(r, p) for _, r, p in placed]
                _written(report, incidents.create_many(set_name, items, actor, conn=conn), placed)
            elif placed:
                report.new += len(placed)  # a dry run: what would be new is not known without the database
            if progress is not None:
                progress(report.rows)
        if conn is not None:
            incident_kpis.flush(conn)
    report.errors.sort(key=lambda e: e.row)
    return report


def _written(
    report: ImportReport,
    written: tuple[list[int | None], list[int]],
    placed: list[tuple[int, Report, Placement]],
) -> None:
    """Count a chunk's write: new incidents, ones seen before, work orders imported before as other content."""
    ids, made = written
    report.new += len(made)
    fresh = set(made)
    for (row, got, _), incident_id in zip(placed, ids, strict=True):
        if incident_id is None:
            report.errors.append(
                RowError(row, "工单编号", f"{_order(got)} was imported before with other content")
            )
        elif incident_id not in fresh:
            report.seen_before += 1
    report.ids += made


def _place(
    good: list[tuple[int, Report]],
    index_on: Callable[[dt.date], GridIndex],
    matcher: Matcher | None,
    now: dt.datetime,
    outside: str,
    errors: list[RowError],
    matched: dict[str, Match | InvalidAddress],
) -> list[tuple[int, Report, Placement]]:
    """Place each report (addresses not in ``matched`` matched as one batch, and added to it); a row that
    cannot be is a row error."""
    texts = sorted({r.address for _, r in good if r.address and r.address not in matched})
    if matcher is not None and texts:
        if len(matched) + len(texts) > MATCHES:
            matched.clear()
            texts = sorted({r.address for _, r in good if r.address})
        matched.update(zip(texts, matcher.match_many(texts), strict=True))
    placed = locate_many(
        [got for _, got in good], index_on, matcher, now=now, outside=outside, matched=matched
    )
    out = []
    for (row, got), placement in zip(good, placed, strict=True):
        if isinstance(placement, GeoGridError):
            field = str(placement.where.get("field", ""))
            name = hotline.COLUMNS[field][0] if field in hotline.COLUMNS else field
            if isinstance(placement, InvalidAddress) or field == "address":
                name = "事发地址"
            elif field == "coordinates":
                name = "经度"
            errors.append(RowError(row, name, shown(placement.detail)))
            continue
        out.append((row, got, placement))
    return out


def _order(report: Report) -> str:
    """The work order a report came from, as a row error names it."""
    return f"work order {report.extra.get('order_id')}" if report.extra.get("order_id") else "this row"
