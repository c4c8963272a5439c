"""Incidents: ``geogrid incidents import|kpis|escalate``."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from geogrid.cli.common import _progress, _state, console, err
from geogrid.db.incident_imports import VersionIndexes, import_hotline
from geogrid.db.incidents import IncidentStore
from geogrid.errors import NotFound
from geogrid.incidents import kpis
from geogrid.incidents.calendar import WorkingCalendar, default_calendar
from geogrid.incidents.catalogue import catalogue

incidents_app = typer.Typer(
    help="Incidents: import hotline exports, figures per unit, escalation.", no_args_is_help=True
)
SetOpt = Annotated[str, typer.Option("--set", help="Boundary set the incidents belong to.")]
SHOWN_ERRORS = 100


def incident_store(ctx: typer.Context) -> IncidentStore:
    """The incidents on the command's database, with the configured catalogue and calendar."""
    state = _state(ctx)
    settings = state.settings
    calendar = WorkingCalendar.load(settings.calendar) if settings.calendar else default_calendar()
    return IncidentStore(state.store.engine, catalogue(settings.catalogue), calendar, actor=state.store.actor)


@incidents_app.command("import")
def incidents_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Hotline export: CSV (UTF-8, UTF-8 with BOM, GBK) or .xlsx.")],
    set_name: SetOpt,
    commit: Annotated[bool, typer.Option("--commit", help="Write; without it this is a dry run.")] = False,
    errors: Annotated[Path | None, typer.Option(help="Write the row errors to this CSV as well.")] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk (bounds memory).")] = 5_000,
) -> None:
    """Import a hotline export (工单): each row placed by the boundaries of its day (a dry run unless --commit).

    Columns are recognised by their usual names (工单编号, 受理时间, 事件类型, 诉求内容, 事发地址, 经度, 纬度,
    坐标系, 来电人, 联系电话). Good rows are written in one transaction, bad rows reported by row and column;
    importing the same file again creates nothing (the work order number is the key). Exit code 1 when a
    row was refused.
    """
    from geogrid.cli.addresses import build_matcher

    state = _state(ctx)
    incidents = incident_store(ctx)
    index_on = VersionIndexes(state.store, set_name, state.settings.cache_dir)
    try:
        matcher = build_matcher(state.store, set_name, state.settings.geocode_threshold)
    except NotFound:
        matcher = None  # no registry: rows with only an address are refused, each named
    with _progress() as progress:
        task = progress.add_task(f"{'importing' if commit else 'checking'} {file.name}", total=None)
        report = import_hotline(
            incidents, set_name, file, index_on, matcher, commit=commit, chunk_rows=chunk_rows,
            outside=state.settings.incident_outside,
            progress=lambda done: progress.update(task, completed=done),
        )  # fmt: skip
    s = report.summary()
    table = Table(title=f"{'Imported' if commit else 'Dry run'}: {file.name} → {set_name}")
    for name in ("rows", "new", "seen_before", "queued", "errors"):
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(*(f"{s[c]:,}" for c in ("rows", "new", "seen_before", "queued", "errors")))
    console.print(table)
    for error in report.errors[:SHOWN_ERRORS]:
        err.print(f"  [red]row {error.row}[/], {error.field}: {error.message}", highlight=False)
    if len(report.errors) > SHOWN_ERRORS:
        err.print(f"  … and {len(report.errors) - SHOWN_ERRORS} more row errors")
    if errors is not None:
        with open(errors, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["行号", "列", "问题"])
            writer.writerows((e.row, e.field, e.message) for e in report.errors)
    if not commit:
        console.print("Nothing was written. Run again with [bold]--commit[/] to write the good rows.")
    if report.errors:
        raise typer.Exit(1)


@incidents_app.command("kpis")
def incidents_kpis(
    ctx: typer.Context,
    set_name: SetOpt,
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First day of the period.")],
    end: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="The day after the period.")],
    by: Annotated[str, typer.Option(help=", ".join(kpis.BY))] = "grid",
    out: Annotated[Path | None, typer.Option(help="Write the figures to this CSV.")] = None,
) -> None:
    """Incident figures per unit for the incidents reported in [start, end), and the red/black ranking."""
    incidents = incident_store(ctx)
    zone = ZoneInfo(incidents.calendar.tz)
    rows = incidents.kpis(set_name, by, start.replace(tzinfo=zone), end.replace(tzinfo=zone))
    shown = (
        "unit",
        "received",
        "closed",
        "resolution_rate",
        "on_time_rate",
        "hours_to_close_median",
        "satisfaction",
        "overdue",
    )
    table = Table(title=f"{set_name}: incidents reported {start.date()} – {end.date()} by {by}")
    for name in shown:
        table.add_column(name.replace("_", " "), justify="left" if name == "unit" else "right")
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in shown))
    console.print(table)
    ranked = kpis.ranking(rows)
    for colour, name in (("red", "红榜"), ("black", "黑榜")):
        if ranked[colour]:
            console.print(f"{name}: " + ", ".join(f"{r['unit']} ({r['score']:.2f})" for r in ranked[colour]))
    if out is not None and rows:
        with open(out, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"Wrote {out}.")


@incidents_app.command("escalate")
def incidents_escalate(ctx: typer.Context, set_name: SetOpt) -> None:
    """Escalate every overdue incident one level up now (what the service's periodic job does)."""
    done = incident_store(ctx).escalate_overdue(set_name)
    console.print(f"Escalated {len(done):,} overdue incident{'s' if len(done) != 1 else ''}.")
