"""Rosters and the layers beside the boundaries: ``geogrid people ...`` and ``geogrid layers ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import geopandas as gpd
import typer
from rich.table import Table

from geogrid import io, people, rosters
from geogrid.cli.common import DateOpt, _date, _progress, _state, console, err
from geogrid.db import Store
from geogrid.db.layers import SPECS, Layers
from geogrid.db.people import Roster, RosterReport

people_app = typer.Typer(
    help="People and their posts: import, export and list rosters.", no_args_is_help=True
)
layers_app = typer.Typer(
    help="Buildings, service sites and roads beside a boundary set.", no_args_is_help=True
)

SHOWN_CHANGES = 20  # posts listed in an import's table; the rest are counted
SHOWN_ERRORS = 100  # row errors listed; the rest are counted


def roster_of(store: Store) -> Roster:
    """The roster on the store's database, writing as the store's actor."""
    return Roster(store.engine, actor=store.actor)


# ---- people ----------------------------------------------------------------------------------------
@people_app.command("import")
def people_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Roster: CSV (UTF-8, UTF-8 with BOM, GBK) or Excel .xlsx.")],
    set_name: Annotated[str, typer.Option("--set", help="Boundary set the posts belong to.")],
    commit: Annotated[bool, typer.Option("--commit", help="Write; without it this is a dry run.")] = False,
) -> None:
    """Import a roster, one row per post (a dry run unless --commit).

    Every row is checked (unit code in the version in force on its start date, one role per person and unit
    at a time, phone, dates, buildings); with --commit the good rows are written, in one transaction, and
    the bad ones reported. Exit code 1 when any row was refused.
    """
    rows = rosters.read_roster(file)
    store = _state(ctx).store
    with _progress(enabled=commit and len(rows) > 200) as progress:
        task = progress.add_task(f"writing {file.name}", total=len(rows))
        report = roster_of(store).import_roster(
            set_name,
            rows,
            commit=commit,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    print_report(report, f"{file.name} → {set_name}")
    if report.errors:
        raise typer.Exit(1)


def print_report(report: RosterReport, title: str, *, details: bool = True) -> None:
    """Print what a roster import changes (or would), unless not ``details``, and the rows it refused."""
    s = report.summary()
    table = Table(title=f"{'Imported' if report.committed else 'Dry run'}: {title}")
    columns = ("rows", "new", "ended", "unchanged", "people_added", "people_changed", "errors")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    table.add_row(*(str(s[c]) for c in columns))
    console.print(table)
    changes = s["changes"] if details else []
    if changes:
        listed = Table(title="Posts that change" if report.committed else "Posts that would change")
        for column in ("row", "", "person", "name", "role", "unit", "from", "to"):
            listed.add_column(column, overflow="fold")  # codes and dates wrap, never cut short
        for c in changes[:SHOWN_CHANGES]:
            mark = "[green]+ new[/]" if c["action"] == "new" else "[yellow]~ ends[/]"
            role = people.ROLE_LABELS[people.Role(c["role"])]
            listed.add_row(
                str(c["row"]), mark, c["person_id"], c["name"], role, c["unit_code"],
                c["valid_from"], c["valid_to"] or "",
            )  # fmt: skip
        console.print(listed)
        if len(changes) > SHOWN_CHANGES:
            console.print(f"  … and {len(changes) - SHOWN_CHANGES} more")
    for warning in report.warnings[:10]:
        console.print(f"  [yellow]warning:[/] {warning}", highlight=False)
    for error in report.errors[:SHOWN_ERRORS]:
        label = rosters.COLUMNS.get(error.field, ("",))[0]
        field = f"{label} ({error.field})" if label else error.field
        who = f" [dim]({error.person_id})[/]" if error.person_id else ""
        err.print(f"  [red]row {error.row}[/], {field}{who}: {error.message}", highlight=False)
    if len(report.errors) > SHOWN_ERRORS:
        err.print(f"  … and {len(report.errors) - SHOWN_ERRORS} more row errors")
    if report.committed:
        console.print(f"Written: {len(report.new)} new post(s), {len(report.ended)} ended.")
    else:
        console.print("Nothing was written. Run again with [bold]--commit[/] to write the good rows.")


@people_app.command("export")
def people_export(
    ctx: typer.Context,
    set_name: Annotated[str, typer.Option("--set", help="Boundary set.")],
    out: Annotated[Path, typer.Option(help="FILE.csv (UTF-8 with BOM, as Excel opens it) or FILE.xlsx.")],
    at: DateOpt = None,
) -> None:
    """Export posts as a roster with the import's Chinese headers, so the file re-imports unchanged.

    Phones are written in full: this is a local admin's tool; keep the file as you keep the roster.
    Without --at every post is written, ended ones too (history); with it, the posts in force that day.
    """
    posts = roster_of(_state(ctx).store).posts(set_name, _date(at))
    rosters.write_roster(posts, out)
    console.print(f"Wrote {len(posts)} post(s) to {out} (phones in full).")


@people_app.command("list")
def people_list(
    ctx: typer.Context,
    set_name: Annotated[str, typer.Option("--set", help="Boundary set.")],
    at: DateOpt = None,
    unit: Annotated[str | None, typer.Option(help="Only this unit and the units under it.")] = None,
    full_phones: Annotated[bool, typer.Option("--full-phones", help="Show phones unmasked.")] = False,
) -> None:
    """List posts (every post, ended ones too, unless --at), phones masked unless --full-phones."""
    posts = roster_of(_state(ctx).store).posts(set_name, _date(at), unit=unit)
    table = Table(
        title=f"Posts of {set_name}" + (f" on {_date(at)}" if at else "") + (f" under {unit}" if unit else "")
    )
    for column in ("post", "unit", "role", "person", "name", "phone", "from", "to", "buildings"):
        whole = column in ("unit", "phone", "from", "to")  # kept on one line: a folded phone reads as two
        table.add_column(column, overflow="fold", no_wrap=whole, min_width=12 if column == "phone" else None)
    for p in posts.to_dict("records"):
        table.add_row(
            str(p["post_id"]), p["unit_code"], people.ROLE_LABELS[people.Role(p["role"])], p["person_id"],
            p["name"], p["phone"] if full_phones else people.mask_phone(p["phone"]),
            str(p["valid_from"]), str(p["valid_to"] or ""), str(len(p["buildings"])),
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(posts)} post(s).")


# ---- layers ----------------------------------------------------------------------------------------
def read_kind(kind: str, file: Path, *, crs: str | None = None, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a buildings, sites or roads file with the house reader (WGS-84, geometries checked)."""
    geometry: io.GeometryKind = "point" if SPECS[kind].geometry == "Point" else "any"
    return io.read_layer(file, crs=crs, layer=layer, geometry=geometry)


@layers_app.command("import")
def layers_import(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="buildings, sites or roads.")],
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, Shapefile, KML or CSV.")],
    set_name: Annotated[str, typer.Option("--set", help="Boundary set the layer belongs to.")],
    crs: Annotated[str | None, typer.Option(help="Source CRS: wgs84, gcj02, bd09, cgcs2000, EPSG:N.")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer file.")] = None,
    commit: Annotated[bool, typer.Option("--commit", help="Write; without it this is a dry run.")] = False,
) -> None:
    """Replace the set's buildings, sites or roads with a file's (a dry run unless --commit)."""
    if kind not in SPECS:
        raise typer.BadParameter(f"{kind!r}: one of {', '.join(SPECS)}", param_hint="KIND")
    report = load_layer(_state(ctx).store, set_name, kind, file, commit=commit, crs=crs, layer=layer)
    if not report["committed"]:
        console.print("Nothing was written. Run again with [bold]--commit[/] to write.")


def load_layer(
    store: Store,
    set_name: str,
    kind: str,
    file: Path,
    *,
    commit: bool,
    crs: str | None = None,
    layer: str | None = None,
) -> dict[str, object]:
    """Read ``file`` and replace the set's ``kind`` layer with it (or, as a dry run, check it); print what."""
    frame = read_kind(kind, file, crs=crs, layer=layer)
    with _progress(enabled=commit and len(frame) > 1000) as progress:
        task = progress.add_task(f"writing {file.name}", total=len(frame))
        report = Layers(store.engine, actor=store.actor).write(
            set_name,
            kind,
            frame,
            commit=commit,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    verb = "Wrote" if report["committed"] else "Would write"
    console.print(f"{verb} {report['rows']} {kind} to {set_name!r} (replacing {report['replaced']}).")
    return report


@layers_app.command("list")
def layers_list(
    ctx: typer.Context, set_name: Annotated[str, typer.Option("--set", help="Boundary set.")]
) -> None:
    """How many buildings, sites and roads the set holds."""
    found = Layers(_state(ctx).store.engine).counts(set_name)
    table = Table(title=f"Layers of {set_name}")
    table.add_column("kind")
    table.add_column("features", justify="right")
    for kind, n in found.items():
        table.add_row(kind, f"{n:,}")
    console.print(table)
