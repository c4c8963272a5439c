"""The ``geogrid`` command: import, export, version and publish boundary sets; load the demo county."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url

from geogrid import io
from geogrid.access import Role
from geogrid.db import Store, create_engine, upgrade
from geogrid.db.keys import Keys
from geogrid.db.migrate import current_revision, head_revision
from geogrid.errors import GeoGridError, NotFound
from geogrid.hierarchy import Level, parse_level
from geogrid.settings import DEMO_ADMIN_KEY, OPEN_ENVIRONMENTS, Settings

app = typer.Typer(
    help="GeoGrid: grid and community boundaries for grid-based governance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)

DEMO_DIR = Path(__file__).resolve().parent.parent / "boundaries" / "demo"
DEMO_LAYERS = (
    ("county.geojson", Level.county),
    ("streets.geojson", Level.street),
    ("communities.geojson", Level.community),
    ("grids.geojson", Level.grid),
    ("microgrids.geojson", Level.microgrid),
)

DateOpt = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="A date, YYYY-MM-DD.")]


# Commands that only read: they never create a database (nor its schema), and say so when there is none.
READ_ONLY_COMMANDS = frozenset({"info", "export", "versions", "validate", "assign"})


class State:
    """What every command needs: settings, and a store opened on first use."""

    last: State | None = None  # the running command's state, so that main() can name its database

    def __init__(self, settings: Settings, *, read_only: bool = False) -> None:
        self.settings = settings
        self.read_only = read_only
        self._store: Store | None = None
        State.last = self

    @property
    def database(self) -> str:
        """The database URL as a person should read it: no password, a SQLite path made absolute."""
        url = make_url(self.settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            url = url.set(database=str(Path(url.database).expanduser().resolve()))
        return url.render_as_string(hide_password=True)

    def _sqlite_file(self) -> Path | None:
        url = make_url(self.settings.database_url)
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database).expanduser()

    @property
    def store(self) -> Store:
        """The store; a read-only command refuses a database that does not exist instead of making one."""
        if self._store is None:
            path = self._sqlite_file()
            if self.read_only and path is not None and not path.is_file():
                relative = (
                    "" if path.is_absolute() else " (a relative path: it depends on the current folder)"
                )
                raise NotFound(
                    f"no GeoGrid database at {path.resolve()}{relative}; load one with `geogrid demo`, or "
                    "point --database-url (GEOGRID_DATABASE_URL) at it",
                    database=self.database,
                )
            engine = create_engine(self.settings)
            revision = current_revision(engine)
            if revision is None and self.read_only:
                raise NotFound(
                    f"{self.database} holds no GeoGrid schema; run `geogrid demo` or `geogrid db upgrade` "
                    "first, or give the right --database-url",
                    database=self.database,
                )
            if revision != head_revision():
                upgrade(engine)  # idempotent; brings a new or older database to this GeoGrid's schema
            self._store = Store(engine, actor=self.settings.actor)
        return self._store


@app.callback()
def main_options(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="GEOGRID_DATABASE_URL", help="SQLAlchemy URL (default: SpatiaLite file)."),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who is recorded in the audit log.")] = None,
) -> None:
    """Global options."""
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if actor:
        overrides["actor"] = actor
    ctx.obj = State(Settings(**overrides), read_only=ctx.invoked_subcommand in READ_ONLY_COMMANDS)


def _state(ctx: typer.Context) -> State:
    state: State = ctx.obj
    return state


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value is not None else None


@app.command("import")
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


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
def validate(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="A boundary file to check (or use --set).")] = None,
    set_name: Annotated[
        str | None, typer.Option("--set", help="Check a level of a set's version instead.")
    ] = None,
    level: Annotated[
        str, typer.Option(help="With --set: the level to check against the level above.")
    ] = "microgrid",
    at: DateOpt = None,
    version: Annotated[int | None, typer.Option(help="With --set: a version number, e.g. a draft.")] = None,
    parent: Annotated[
        Path | None, typer.Option(help="A file of the parent units the layer must tile.")
    ] = None,
    crs: Annotated[str | None, typer.Option(help="Source CRS of the file(s).")] = None,
    tolerance_m: Annotated[
        float, typer.Option(help="Gaps and overlaps thinner than this are slivers.")
    ] = 1.0,
    out: Annotated[Path | None, typer.Option(help="Write the problems as a layer (.geojson, .gpkg).")] = None,
    summary: Annotated[Path | None, typer.Option(help="Write the summary as JSON.")] = None,
) -> None:
    """Check that units tile their parent; exit code 1 when faults are found.

    Units in several parts (islands) are reported as information and do not fail the check.
    """
    import json

    from geogrid.topology import check

    if (file is None) == (set_name is None):
        raise typer.BadParameter("give a FILE or --set, not both")
    if file is not None:
        units = io.read_boundaries(file, crs=crs, name=None)
        parents = io.read_boundaries(parent, crs=crs, name=None) if parent else None
        label = file.name
    else:
        assert set_name is not None
        store = _state(ctx).store
        number = version if version is not None else store.version_at(set_name, _date(at)).number
        target = parse_level(level)
        units = store.units(set_name, version=number, level=target)
        parents = store.units(set_name, version=number, level=target.parent) if target.parent else None
        parents = parents if parents is not None and len(parents) else None
        label = f"{set_name} v{number} {target.name}"
    report = check(units, parents, tolerance_m=tolerance_m)
    table = Table(title=f"Topology of {label}: {report.summary['units']:,} units")
    for column in ("problem", "count", "area m²"):
        table.add_column(column, justify="left" if column == "problem" else "right")
    for kind, n in report.summary["count"].items():
        if n:
            table.add_row(kind, f"{n:,}", f"{report.summary['area_m2'][kind]:,.1f}")
    if "covered_share" in report.summary:
        table.caption = f"{report.summary['covered_share']:.4%} of the parent covered"
    console.print(table if not report.ok else f"{label}: no problems ({report.summary['units']:,} units).")
    if not report.ok and report.faults.empty:
        kinds = ", ".join(report.summary["information"])
        console.print(f"{label}: no faults; {kinds} reported for information only.")
    if out:
        report.to_file(out)
        console.print(f"Problems written to {out}.")
    if summary:
        summary.write_text(json.dumps(report.summary, ensure_ascii=False, indent=2))
    if not report.faults.empty:  # a unit in several parts is legitimate: reported, it fails nothing
        raise typer.Exit(1)


@app.command()
def repair(
    file: Annotated[Path, typer.Argument(help="The boundary file to repair.")],
    out: Annotated[Path, typer.Option(help="Where the repaired layer goes (format from the suffix).")],
    parent: Annotated[
        Path | None, typer.Option(help="A file of the parent units to clip to and fill.")
    ] = None,
    crs: Annotated[str | None, typer.Option(help="Source CRS of the file(s).")] = None,
    max_fill_m2: Annotated[float, typer.Option(help="Gaps up to this size go to a neighbour.")] = 500.0,
    changes: Annotated[Path | None, typer.Option(help="Write the change log as CSV.")] = None,
) -> None:
    """Repair a layer with the least change; gaps too big to fill are written beside it for the planner."""
    from geogrid.topology import check
    from geogrid.topology import repair as repair_layer

    units = io.read_boundaries(file, crs=crs, name=None)
    parents = io.read_boundaries(parent, crs=crs, name=None) if parent else None
    result = repair_layer(units, parents, max_fill_m2=max_fill_m2)
    bom = bool(units.attrs.get("bom"))  # a CSV from Excel goes back to Excel with its byte-order mark
    io.write_layer(result.units, out, bom=bom)
    log = changes or out.with_name(out.stem + ".changes.csv")
    result.changes.to_csv(log, index=False, encoding="utf-8-sig" if bom else "utf-8")
    if len(result.unassigned):
        result.unassigned.to_file(out.with_name(out.stem + ".unassigned.geojson"))
    after = check(result.units, parents)
    moved = result.changes.groupby("action")["area_m2"].agg(["count", "sum"])
    table = Table(title=f"Repaired {file.name} → {out.name}")
    for column in ("action", "count", "area m²"):
        table.add_column(column, justify="left" if column == "action" else "right")
    for action, row in moved.iterrows():
        table.add_row(str(action), f"{int(row['count']):,}", f"{row['sum']:,.1f}")
    console.print(table)
    console.print(
        f"{len(result.unassigned)} gap(s) left unassigned for the planner; change log in {log}; "
        f"check after repair: {len(after.faults)} fault(s)"
        + (
            f", {len(after.problems) - len(after.faults)} for information."
            if len(after.faults) < len(after.problems)
            else "."
        )
    )


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="The first layer (e.g. the comprehensive-governance grids).")],
    b: Annotated[Path, typer.Argument(help="The second layer (e.g. the urban-management grids).")],
    threshold: Annotated[
        float, typer.Option(help="Share of a unit's area outside its best match that counts.")
    ] = 0.05,
    out: Annotated[Path | None, typer.Option(help="Write the pair table as CSV.")] = None,
    merged: Annotated[Path | None, typer.Option(help="Write the proposed merged layer.")] = None,
    crs: Annotated[str | None, typer.Option(help="Source CRS of both files.")] = None,
) -> None:
    """Compare two layers over the same area (多网合一): overlaps, shares, disagreements, a merged proposal."""
    from geogrid.reconcile import compare as compare_layers

    result = compare_layers(
        io.read_boundaries(a, crs=crs, name=None),
        io.read_boundaries(b, crs=crs, name=None),
        threshold=threshold,
    )
    table = Table(
        title=f"{a.name} vs {b.name}: {len(result.disagreements)} unit(s) disagree beyond {threshold:.0%}"
    )
    for column in ("layer", "code", "best match", "share", "misfit m²"):
        table.add_column(column, justify="right" if column in ("share", "misfit m²") else "left")
    for row in result.disagreements.sort_values("misfit_m2", ascending=False).head(20).itertuples():
        table.add_row(
            row.layer, row.code, str(row.best_match or ""), f"{row.share:.1%}", f"{row.misfit_m2:,.0f}"
        )
    console.print(table)
    if out:
        result.pairs.to_csv(out, index=False)
    if merged:
        io.write_layer(result.merged, merged)
        console.print(f"Proposed merged layer ({len(result.merged)} units) written to {merged}.")


@app.command()
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


@app.command()
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


@app.command()
def assign(
    ctx: typer.Context,
    points: Annotated[
        Path, typer.Argument(help="CSV, GeoJSON, GeoPackage, Shapefile or (Geo)Parquet of points.")
    ],
    set_name: Annotated[str, typer.Option("--set", help="Boundary set whose units to assign to.")],
    out: Annotated[Path, typer.Option(help="Output: .csv, .parquet, .gpkg, .geojson or .shp.")],
    at: DateOpt = None,
    lon_col: Annotated[
        str | None, typer.Option(help="Longitude column (default: lon, lng, longitude, x).")
    ] = None,
    lat_col: Annotated[str | None, typer.Option(help="Latitude column (default: lat, latitude, y).")] = None,
    crs: Annotated[
        str, typer.Option(help="CRS of the points: wgs84, gcj02, bd09, cgcs2000, EPSG:N.")
    ] = "wgs84",
    errors: Annotated[
        Path | None, typer.Option(help="Where rows that cannot be placed go (default: OUT.errors.csv).")
    ] = None,
    snap_m: Annotated[
        float, typer.Option(help="Give points this close outside a unit to the nearest one.")
    ] = 0.0,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk (bounds memory).")] = 500_000,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="A CSV's text encoding (default: detected; UTF-8 with or without BOM, GBK/GB18030)."
        ),
    ] = None,
) -> None:
    """Assign every point of a file to its unit (and that unit's ancestors), streamed in chunks."""
    from geogrid.batch import assign_file
    from geogrid.index import GridIndex

    state = _state(ctx)
    store = state.store  # before the progress bar, so that a missing database is one clean line
    with _progress() as progress:
        task = progress.add_task("building the index", total=None)
        index = GridIndex.from_version(store, set_name, _date(at), cache_dir=state.settings.cache_dir)
        progress.update(task, description=f"assigning {points.name}", total=1, completed=0)
        report = assign_file(
            index,
            points,
            out,
            errors=errors,
            crs=crs,
            lon_col=lon_col,
            lat_col=lat_col,
            snap_m=snap_m,
            chunk_rows=chunk_rows,
            progress=lambda done, total: progress.update(task, completed=done, total=total or None),
            encoding=encoding,
        )
    version = index.meta.get("version")
    console.print(
        f"{report.rows:,} rows: {report.written:,} written to {out} (v{version} of {set_name!r}; "
        f"{report.outside:,} outside every unit, {report.on_boundary:,} on a boundary, {report.snapped:,} snapped), "
        f"{report.errors:,} set aside" + (f" in {report.errors_file}" if report.errors_file else "") + "."
    )
    for reason, n in sorted(report.reasons.items()):
        console.print(f"  {n:,} × {reason}")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    role: Annotated[Role, typer.Option(help="What the key may do.")],
    scope: Annotated[str | None, typer.Option(help="Limit the key to a street or community code.")] = None,
) -> None:
    """Create an API key and print it (it is shown this once; only its hash is kept)."""
    state = _state(ctx)
    info, key = Keys(state.store.engine).create(name, role, scope=scope, actor=state.settings.actor)
    err.print(f"Key {info.id} for {name!r}: {role.value}" + (f", limited to {scope}" if scope else ""))
    print(key)


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """List the API keys (never the keys themselves)."""
    table = Table("id", "name", "role", "scope", "created", "revoked")
    for k in Keys(_state(ctx).store.engine).list():
        revoked = f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else ""
        table.add_row(str(k.id), k.name, k.role, k.scope or "", f"{k.created_at:%Y-%m-%d %H:%M}", revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[int, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key (running services stop accepting it within 30 s)."""
    state = _state(ctx)
    Keys(state.store.engine).revoke(key_id, actor=state.settings.actor)
    console.print(f"Key {key_id} revoked.")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the schema migrations to the database."""
    engine = create_engine(_state(ctx).settings)
    upgrade(engine)
    console.print(f"Schema at {current_revision(engine)}.")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info (a line per request), warning.")] = "info",
    workers: Annotated[
        int,
        typer.Option(min=1, help="Processes sharing the port, each with its own index: about one per core."),
    ] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api import transport
    from api.main import create_app

    settings = _state(ctx).settings
    console.print(
        f"GeoGrid API on http://{host}:{port}/  (docs: /docs, lookup: /v1/lookup?lon=111.2&lat=39.85,"
        f" OGC API Features: /ogc)"
    )
    if settings.environment in OPEN_ENVIRONMENTS and settings.admin_key is None:
        console.print(
            f"{settings.environment} mode: the admin API key is {DEMO_ADMIN_KEY!r} (never in production)"
        )
    options: dict[str, Any] = {"host": host, "port": port, "access_log": False}
    options["log_config"] = log_config(log_level.upper())
    if workers == 1:
        uvicorn.run(create_app(settings), http=transport.protocol(settings), **options)
        return
    settings.check_secrets()  # here, once, rather than in every worker
    os.environ.update(settings.to_environment())  # each worker makes its app from these settings
    # A worker answers the supervisor's health pings from a thread; while start-up work (numba
    # compilation, the index build) holds the GIL on a loaded machine the pings wait, and the default
    # 5 s would have the worker killed and restarted over and over. A hung worker is replaced after 60 s.
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        workers=workers,
        http="api.transport:FromEnvironment",
        timeout_worker_healthcheck=60,
        **options,
    )


def log_config(level: str) -> dict[str, Any]:
    """Logging for the service: uvicorn's lines and GeoGrid's one line per request, key=value."""
    line = {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    stderr = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    loggers: dict[str, Any] = {
        name: {"handlers": ["default"], "level": level, "propagate": False} for name in ("uvicorn", "geogrid")
    }
    loggers["geogrid.access"] = {"handlers": ["access"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": line, "access": {"format": "%(message)s"}},  # access lines carry their time
        "handlers": {"default": {**stderr, "formatter": "line"}, "access": {**stderr, "formatter": "access"}},
        "loggers": loggers,
    }


def _progress(enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not enabled,
    )


def main() -> None:
    """Entry point: run the app, turning GeoGrid errors into one clear line and exit code 2."""
    try:
        app(prog_name="geogrid")
    except GeoGridError as exc:
        state = State.last
        if isinstance(exc, NotFound) and state is not None and "database" not in exc.where:
            exc.detail = f"{exc.detail} in {state.database}"  # which database was asked matters most
        where = ", ".join(f"{k}={v}" for k, v in exc.where.items())
        message = f"[red]error:[/] {exc.detail}" + (f" [dim]({where})[/]" if where else "")
        err.print(message, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
