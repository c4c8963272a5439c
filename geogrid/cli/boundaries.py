"""Boundary sets: import, export, versions, publish; what the database holds; the demo county."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from geogrid import io, rosters
from geogrid.cli.addresses import load_demo_addresses
from geogrid.cli.common import DateOpt, _date, _progress, _state, console, err
from geogrid.cli.people import load_layer, print_report, roster_of
from geogrid.db import Store
from geogrid.db.layers import Layers
from geogrid.db.migrate import current_revision
from geogrid.hierarchy import Level, parse_level

DEMO_DIR = Path(__file__).resolve().parent.parent.parent / "boundaries" / "demo"
DEMO_LAYERS = (
    ("county.geojson", Level.county),
    ("streets.geojson", Level.street),
    ("communities.geojson", Level.community),
    ("grids.geojson", Level.grid),
    ("microgrids.geojson", Level.microgrid),
)
DEMO_EXTRAS = (("buildings.geojson", "buildings"), ("sites.geojson", "sites"), ("roads.geojson", "roads"))
DEMO_ROSTER = "roster.csv"
DEMO_ADDRESSES = "addresses.csv"


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="GeoJSON, Shapefile (.shp/.zip), GeoPackage, KML or CSV.")],
    set_name: Annotated[str, typer.Option("--set", help="Boundary set to import into.")],
    level: Annotated[str, typer.Option(help="county, street, community, grid or microgrid.")],
    crs: Annotated[str | None, typer.Option(help="Source CRS: wgs84, gcj02, bd09, cgcs2000, EPSG:N.")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer file.")] = None,
    code_col: Annotated[str, typer.Option(help="Column holding the unit code.")] = "code",
    name_col: Annotated[str, typer.Option(help="Column holding the unit name.")] = "name",
    commit: Annotated[bool, typer.Option("--commit", help="Write; without it this is a dry run.")] = False,
) -> None:
    """Import a boundary layer into the set's draft (a dry run unless --commit)."""
    settings = _state(ctx).settings  # GEOGRID_MAX_UNPACKED_MB and GEOGRID_MAX_COMPRESSION_RATIO hold here too
    frame = io.read_boundaries(
        file,
        crs=crs,
        layer=layer,
        code=code_col,
        name=name_col,
        max_unpacked_mb=settings.max_unpacked_mb,
        max_compression_ratio=settings.max_compression_ratio,
    )
    store = _state(ctx).store
    with _progress(enabled=commit) as progress:
        task = progress.add_task(f"writing {file.name}", total=len(frame))
        report = store.import_units(
            set_name,
            frame,
            parse_level(level),
            commit=commit,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    table = Table(
        title=f"{'Imported' if report.committed else 'Dry run'}: {file.name} → {set_name} ({report.level})"
    )
    for column in ("rows", "added", "changed", "removed", "unchanged", "warnings"):
        table.add_column(column, justify="right")
    s = report.summary()
    table.add_row(*(str(s[c]) for c in ("rows", "added", "changed", "removed", "unchanged", "warnings")))
    console.print(table)
    for code in report.added[:5]:
        console.print(f"  [green]+ {code}[/]")
    for change in report.changes[:10]:
        console.print(f"  [yellow]~ {change['code']}[/] {_describe_change(change)}", highlight=False)
    if len(report.changes) > 10:
        console.print(f"  … and {len(report.changes) - 10} more changed")
    if report.kept:
        console.print(f"  kept from the draft (the file has no such column): {', '.join(report.kept)}")
    dropped = sum(1 for c in report.changes if c.get("dropped"))
    if dropped:
        console.print(f"  [yellow]{dropped} unit(s) lose a value[/] (a blank cell in a column the file has)")
    for code in report.removed[:5]:
        console.print(f"  [red]- {code}[/]")
    for warning in report.warnings[:10]:
        console.print(f"  [yellow]warning:[/] {warning}")
    if report.committed:
        console.print(f"Written to draft v{report.draft_number} of {set_name!r}.")
    else:
        console.print("Nothing was written. Run again with [bold]--commit[/] to write.")


def _describe_change(change: dict[str, Any]) -> str:
    """One line for a changed unit: name, attributes (old → new), geometry moved."""
    parts = []
    if "name" in change:
        parts.append(f"name {change['name']['old']!r} → {change['name']['new']!r}")
    for key, values in change.get("attributes", {}).items():
        old, new = ("—" if v is None else v for v in (values["old"], values["new"]))
        parts.append(f"{key} {old} → {new}")
    if "geometry" in change:
        g = change["geometry"]
        parts.append(f"geometry: {g['area_m2']:,.1f} m² moved, largest shift {g['shift_m']:,.3f} m")
    return "; ".join(parts)


def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="Output file; the format follows the suffix.")],
    set_name: Annotated[str, typer.Option("--set", help="Boundary set.")],
    level: Annotated[str | None, typer.Option(help="Only this level.")] = None,
    at: DateOpt = None,
    version: Annotated[int | None, typer.Option(help="A version number (default: the one in force).")] = None,
    crs: Annotated[str, typer.Option(help="Output CRS (wgs84, gcj02, bd09, cgcs2000, EPSG:N).")] = "wgs84",
) -> None:
    """Export units of a version (default: in force today) to a file."""
    units = _state(ctx).store.units(set_name, at=_date(at), version=version, level=level)
    attrs = units.pop("attributes")
    keys = sorted({k for a in attrs for k in a if k not in units.columns})
    for key in keys:
        units[key] = [a.get(key) for a in attrs]
    io.write_layer(units, out, crs=crs)
    console.print(f"Wrote {len(units)} units to {out} ({crs}).")


def versions(
    ctx: typer.Context, set_name: Annotated[str, typer.Option("--set", help="Boundary set.")]
) -> None:
    """List a set's versions and their validity."""
    table = Table(title=f"Versions of {set_name}")
    for column in ("version", "status", "valid from", "valid to", "units", "by", "note"):
        table.add_column(column)
    today = dt.date.today()
    for v in _state(ctx).store.versions(set_name):
        status = v.status + (" (in force)" if v.in_force(today) else "")
        table.add_row(
            str(v.number),
            status,
            str(v.valid_from or ""),
            str(v.valid_to or ""),
            ", ".join(f"{k} {n}" for k, n in v.units.items()),
            v.published_by or v.created_by,
            v.note or "",
        )
    console.print(table)


def publish(
    ctx: typer.Context,
    set_name: Annotated[str, typer.Option("--set", help="Boundary set.")],
    valid_from: DateOpt = None,
    note: Annotated[str | None, typer.Option(help="Why; kept in the version and the audit log.")] = None,
    force: Annotated[
        str | None,
        typer.Option(help="Publish despite topology problems; the reason goes into the audit log."),
    ] = None,
) -> None:
    """Publish the set's draft, in force from --valid-from (default: today)."""
    version = _state(ctx).store.publish(
        set_name, _date(valid_from) or dt.date.today(), note=note, force=force
    )
    console.print(f"Published v{version.number} of {set_name!r}, valid from {version.valid_from}.")


def info(
    ctx: typer.Context,
    set_name: Annotated[str | None, typer.Option("--set", help="Show this set's version in force.")] = None,
    at: DateOpt = None,
) -> None:
    """Show the database, its sets, and a set's units per level."""
    state = _state(ctx)
    store = state.store
    url = make_url(state.settings.database_url).render_as_string(hide_password=True)
    console.print(f"database: {url}  (schema {current_revision(store.engine)})")
    names = [set_name] if set_name else store.sets()
    if not names:
        console.print("No boundary sets yet. Try: geogrid demo")
    for name in names:
        _print_summary(store, name, _date(at))


def _print_summary(store: Store, set_name: str, at: dt.date | None) -> None:
    version = store.version_at(set_name, at)
    units = store.units(set_name, version=version.number)
    table = Table(title=f"{set_name} v{version.number}, in force from {version.valid_from}")
    for column in ("level", "units", "households", "population"):
        table.add_column(column, justify="right" if column != "level" else "left")
    for level in Level:
        part = units[units["level"] == level.name]
        if len(part):
            table.add_row(
                f"{level.name} ({level.label})",
                f"{len(part):,}",
                _total(part["households"]),
                _total(part["population"]),
            )
    console.print(table)


def _total(values: Any) -> str:
    """A level's total, or '—' when no unit has a figure (unknown is not 0); '≥ n' when some lack one."""
    known = values.dropna()
    if known.empty:
        return "—"
    return f"{'≥ ' if len(known) < len(values) else ''}{int(known.sum()):,}"


def demo(
    ctx: typer.Context,
    set_name: Annotated[str, typer.Option("--set", help="Name of the demo set.")] = "demo",
    path: Annotated[Path, typer.Option(help="Folder holding the demo county's files.")] = DEMO_DIR,
    valid_from: DateOpt = None,
) -> None:
    """Load the demo county into the database, publish it and print a summary (idempotent)."""
    store = _state(ctx).store
    if set_name in store.sets() and any(v.status == "published" for v in store.versions(set_name)):
        console.print(f"The demo county is already loaded as {set_name!r}.")
    else:
        with _progress() as progress:
            task = progress.add_task("loading the demo county", total=len(DEMO_LAYERS))
            for filename, level in DEMO_LAYERS:
                progress.update(task, description=f"loading {filename}")
                frame = io.read_boundaries(path / filename)
                store.import_units(
                    set_name, frame, level, commit=True, title="Demo county (Jungar Banner model)"
                )
                progress.advance(task)
        when = _date(valid_from) or dt.date(dt.date.today().year, 1, 1)
        store.publish(set_name, when, note="demo county")
    _print_summary(store, set_name, None)
    _demo_extras(store, set_name, path)
    if (path / DEMO_ADDRESSES).is_file():  # after the roster, as the roster after the layers
        load_demo_addresses(store, set_name, path / DEMO_ADDRESSES)
    else:
        err.print(
            f"[yellow]warning:[/] no {DEMO_ADDRESSES} in {path}; the demo has no addresses", highlight=False
        )


def _demo_extras(store: Store, set_name: str, path: Path) -> None:
    """Load the demo's buildings, sites, roads and roster when there (idempotent: a layer already held is
    kept; a roster already imported changes nothing); a missing file is skipped with a warning."""
    held = Layers(store.engine).counts(set_name)
    for filename, kind in DEMO_EXTRAS:
        if not (path / filename).is_file():
            err.print(f"[yellow]warning:[/] no {filename} in {path}; the demo has no {kind}", highlight=False)
        elif held[kind]:
            console.print(f"The demo's {kind} are already loaded ({held[kind]:,}).")
        else:
            load_layer(store, set_name, kind, path / filename, commit=True)
    if not (path / DEMO_ROSTER).is_file():
        err.print(f"[yellow]warning:[/] no {DEMO_ROSTER} in {path}; the demo has no roster", highlight=False)
        return
    report = roster_of(store).import_roster(set_name, rosters.read_roster(path / DEMO_ROSTER), commit=True)
    if report.new or report.ended or report.people_changed or report.errors:
        print_report(report, f"{DEMO_ROSTER} → {set_name}", details=False)
    else:
        console.print(f"The demo roster is already loaded ({report.unchanged:,} posts).")
