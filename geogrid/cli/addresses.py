"""The standard-address registry and geocoding: ``geogrid addresses ...``, ``geogrid geocode``, ``geogrid queue ...``."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.table import Table

from geogrid.addresses.matcher import Match, Matcher
from geogrid.addresses.registry import COLUMNS, address_text, read_addresses, write_addresses
from geogrid.cli.common import DateOpt, _date, _progress, _state, console, err
from geogrid.db import Store
from geogrid.db.addresses import AddressStore, RegistryReport
from geogrid.errors import InvalidAddress, InvalidValue, MissingColumn
from geogrid.io.tables import key, stream_table
from geogrid.people import shown

if TYPE_CHECKING:
    from geogrid.index import GridIndex

addresses_app = typer.Typer(
    help="The standard-address registry: import, export and list addresses.", no_args_is_help=True
)
queue_app = typer.Typer(
    help="The manual-placement queue: address texts the matcher was not sure of.", no_args_is_help=True
)

SHOWN_CHANGES = 20  # addresses listed in an import's table; the rest are counted
SHOWN_ERRORS = 100  # row errors listed; the rest are counted
# What geocode adds to every row of the input, in this order (the contract's names, as offices read them).
RESULT_COLUMNS = ("地址编码", "标准地址", "建筑编号", "经度", "纬度", "微网格", "置信度", "状态", "匹配")
ERROR_COLUMNS = ("行号", "问题", "地址")
SetOpt = Annotated[str, typer.Option("--set", help="Boundary set the addresses belong to.")]


def address_store(store: Store) -> AddressStore:
    """The address registry on the store's database, writing as the store's actor."""
    return AddressStore(store.engine, actor=store.actor)


# ---- the registry ----------------------------------------------------------------------------------
@addresses_app.command("import")
def addresses_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Registry: CSV (UTF-8, UTF-8 with BOM, GBK) or Excel .xlsx.")],
    set_name: SetOpt,
    commit: Annotated[bool, typer.Option("--commit", help="Write; without it this is a dry run.")] = False,
) -> None:
    """Import a standard-address registry, one row per address (a dry run unless --commit).

    Every row is checked (parts, point, dates, unique address ids); with --commit the registry is written
    in one transaction, each change a new version (history kept). Exit code 1 when any row was refused.
    """
    frame = read_addresses(file)
    store = _state(ctx).store
    with _progress(enabled=commit and len(frame) > 1000) as progress:
        task = progress.add_task(f"writing {file.name}", total=len(frame))
        report = address_store(store).import_addresses(
            set_name,
            frame,
            commit=commit,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    print_report(report, f"{file.name} → {set_name}")
    if report.errors:
        raise typer.Exit(1)


def print_report(report: RegistryReport, title: str, *, details: bool = True) -> None:
    """Print what a registry import changes (or would), unless not ``details``, and the rows it refused."""
    s = report.summary()
    table = Table(title=f"{'Imported' if report.committed else 'Dry run'}: {title}")
    counts = ("rows", "new", "changed", "unchanged", "ended", "absent", "errors")
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(f"{s[c]:,}" for c in counts))
    console.print(table)
    changes = s["changes"] if details else []
    if changes:
        listed = Table(title="Addresses that change" if report.committed else "Addresses that would change")
        for column in ("row", "", "address", "fields"):
            listed.add_column(column, overflow="fold")
        for c in changes[:SHOWN_CHANGES]:
            fields = c.get("fields") or c.get("text") or ""
            listed.add_row(
                str(c.get("row", "")), str(c.get("action", "")), str(c.get("address_id", "")),
                ", ".join(fields) if isinstance(fields, list) else str(fields),
            )  # fmt: skip
        console.print(listed)
        if len(changes) > SHOWN_CHANGES:
            console.print(f"  … and {len(changes) - SHOWN_CHANGES} more")
    for warning in report.warnings[:10]:
        console.print(f"  [yellow]warning:[/] {warning}", highlight=False)
    for error in report.errors[:SHOWN_ERRORS]:
        label = COLUMNS.get(error.field, ("",))[0]
        field = f"{label} ({error.field})" if label else error.field
        who = f" [dim]({error.person_id})[/]" if error.person_id else ""
        err.print(f"  [red]row {error.row}[/], {field}{who}: {error.message}", highlight=False)
    if len(report.errors) > SHOWN_ERRORS:
        err.print(f"  … and {len(report.errors) - SHOWN_ERRORS} more row errors")
    if report.written:
        console.print(f"Written: revision {report.revision} of {report.set_name!r}.")
    elif report.committed:
        console.print("Nothing to write: the registry already says this.")
    else:
        console.print("Nothing was written. Run again with [bold]--commit[/] to write the good rows.")


@addresses_app.command("export")
def addresses_export(
    ctx: typer.Context,
    set_name: SetOpt,
    out: Annotated[Path, typer.Option(help="FILE.csv (UTF-8 with BOM, as Excel opens it) or FILE.xlsx.")],
    at: DateOpt = None,
) -> None:
    """Export the addresses in force (today, or --at) with the import's Chinese headers; re-imports unchanged."""
    frame = address_store(_state(ctx).store).addresses(set_name, _date(at))
    write_addresses(frame, out)
    console.print(f"Wrote {len(frame):,} address(es) of {set_name!r} to {out}.")


@addresses_app.command("list")
def addresses_list(
    ctx: typer.Context,
    set_name: SetOpt,
    at: DateOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
) -> None:
    """List the addresses in force (today, or --at): id, canonical text, point and since when."""
    frame = address_store(_state(ctx).store).addresses(set_name, _date(at))
    table = Table(title=f"Addresses of {set_name}" + (f" on {_date(at)}" if at else ""))
    table.add_column("address", no_wrap=True)  # an id folded over two lines reads as two
    table.add_column("text", overflow="fold")
    table.add_column("point", no_wrap=True)
    table.add_column("from", no_wrap=True)
    for r in frame.head(limit).to_dict("records"):
        point = f"{float(r['lon']):.5f}, {float(r['lat']):.5f}"
        table.add_row(str(r["address_id"]), address_text(r), point, str(r.get("valid_from") or ""))
    console.print(table)
    shown_n = min(limit, len(frame))
    console.print(f"{len(frame):,} address(es)" + (f", {shown_n} shown." if shown_n < len(frame) else "."))


def load_demo_addresses(store: Store, set_name: str, path: Path) -> None:
    """Load the demo's registry (``geogrid demo``): idempotent, an unchanged registry writes nothing."""
    report = address_store(store).import_addresses(set_name, read_addresses(path), commit=True)
    if report.written or report.errors:
        print_report(report, f"{path.name} → {set_name}", details=False)
    else:
        console.print(f"The demo addresses are already loaded ({report.unchanged:,}).")


# ---- geocode ---------------------------------------------------------------------------------------
def geocode(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="CSV (UTF-8, UTF-8 with BOM, GBK) or .xlsx with an address column.")
    ],
    set_name: Annotated[str, typer.Option("--set", help="Boundary set whose registry to match against.")],
    out: Annotated[Path, typer.Option(help="Output CSV: the input's columns and the result's.")],
    address_col: Annotated[str, typer.Option(help="The column holding the address text.")] = "地址",
    errors: Annotated[
        Path | None, typer.Option(help="Where rows that cannot be matched go (default: OUT.errors.csv).")
    ] = None,
    no_queue: Annotated[
        bool, typer.Option("--no-queue", help="Do not queue unsure texts (their status is 'unsure').")
    ] = False,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk (bounds memory).")] = 5_000,
) -> None:
    """Geocode every address text of a file: building, point, micro-grid and confidence, streamed in chunks.

    The output keeps every input row and column and adds 地址编码, 标准地址, 建筑编号, 经度, 纬度, 微网格,
    置信度, 状态 (placed, queued, unsure or error) and 匹配 (the parts that matched, or why the text was not
    placed). Texts below the threshold go to the set's manual-placement queue (``geogrid queue list``)
    unless --no-queue; rows that cannot be matched at all also go to the errors file with their row number.
    """
    from geogrid.index import GridIndex

    state = _state(ctx)
    store = state.store
    errors = errors or out.with_name(out.stem + ".errors.csv")
    with _progress() as progress:
        task = progress.add_task("building the index and the matcher", total=None)
        index = GridIndex.from_version(store, set_name, None, cache_dir=state.settings.cache_dir)
        matcher = build_matcher(store, set_name, state.settings.geocode_threshold)
        progress.update(task, description=f"geocoding {file.name}", total=None, completed=0)
        counts = geocode_file(
            file,
            out,
            errors,
            matcher=matcher,
            index=index,
            queue=None if no_queue else (address_store(store), set_name, f"geocode {file.name}"[:100]),
            address_col=address_col,
            chunk_rows=chunk_rows,
            progress=lambda done: progress.update(task, completed=done),
        )
    version = index.meta.get("version")
    console.print(
        f"{counts['rows']:,} rows (v{version} of {set_name!r}): {counts['placed']:,} placed, "
        f"{counts['queued']:,} queued, {counts['unsure']:,} unsure (not queued), {counts['errors']:,} "
        f"{'error' if counts['errors'] == 1 else 'errors'}. "
        f"Wrote {out}" + (f"; errors in {errors}" if counts["errors"] else "") + "."
    )
    if counts["queued"]:
        console.print(f"Place the queued texts with [bold]geogrid queue list --set {set_name}[/].")


def build_matcher(store: Store, set_name: str, threshold: float) -> Matcher:
    """A matcher over the set's addresses in force today and its aliases."""
    from geogrid.errors import NotFound

    registry = address_store(store)
    frame = registry.addresses(set_name)
    if frame.empty:
        raise NotFound(
            f"{set_name!r} has no standard addresses; import them with `geogrid addresses import`",
            set=set_name,
        )
    return Matcher(frame, registry.aliases(set_name), threshold=threshold)


def geocode_file(
    file: Path,
    out: Path,
    errors: Path,
    *,
    matcher: Matcher,
    index: GridIndex,
    queue: tuple[AddressStore, str, str] | None,
    address_col: str,
    chunk_rows: int = 5_000,
    progress: Any = None,
) -> dict[str, int]:
    """Geocode ``file`` chunk by chunk into ``out`` (and bad rows into ``errors``); the counts of each outcome."""
    counts = dict.fromkeys(("rows", "placed", "queued", "unsure", "errors"), 0)
    errors.unlink(missing_ok=True)
    with ExitStack() as files:
        writer = csv.writer(files.enter_context(open(out, "w", encoding="utf-8-sig", newline="")))
        bad: Any = None
        column: int | None = None
        width = 0
        for header, rows in _chunks(file, address_col, chunk_rows):
            if column is None:
                column = _column(header, address_col, file)
                # .xlsx rows come padded to the most columns a sheet may have: keep the header's own
                width = max(i for i, h in enumerate(header) if h != "" or i == column) + 1
                writer.writerow([*header[:width], *RESULT_COLUMNS])
            rows = [r[:width] for r in rows]
            texts = [r[column] for r in rows]
            matches = matcher.match_many(texts)
            placed_at = [m.best for m in matches if not isinstance(m, InvalidAddress) and m.placed]
            grids = iter(_microgrids(index, [(c.lon, c.lat) for c in placed_at if c is not None]))
            unsure = [m for m in matches if not isinstance(m, InvalidAddress) and not m.placed]
            queued = iter(queue[0].enqueue(queue[1], unsure, queue[2]) if queue and unsure else ())
            for row, match in zip(rows, matches, strict=True):
                counts["rows"] += 1
                if isinstance(match, InvalidAddress):
                    counts["errors"] += 1
                    problem = shown(match.detail)
                    writer.writerow([*row, "", "", "", "", "", "", "", "error", problem])
                    if bad is None:
                        handle = files.enter_context(open(errors, "w", encoding="utf-8-sig", newline=""))
                        bad = csv.writer(handle)
                        bad.writerow(ERROR_COLUMNS)
                    bad.writerow([counts["rows"], problem, _CONTROL.sub(_escaped, shown(row[column]))])
                elif match.placed and match.best is not None:
                    counts["placed"] += 1
                    writer.writerow([*row, *_placed(match, next(grids))])
                else:
                    status = "queued" if queue else "unsure"
                    if queue:
                        next(queued)
                    counts[status] += 1
                    why = match.reason or "no address matches"
                    writer.writerow([*row, "", "", "", "", "", "", f"{match.confidence:.3f}", status, why])
            if progress is not None:
                progress(counts["rows"])
        if column is None:  # a header and no rows
            writer.writerow([address_col, *RESULT_COLUMNS])
    return counts


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _escaped(m: re.Match[str]) -> str:
    """A control character as the errors file names it (\\x00), not the byte itself."""
    return f"\\x{ord(m.group()):02x}"


def _chunks(file: Path, address_col: str, chunk_rows: int) -> Iterator[tuple[list[str], list[list[str]]]]:
    """The file's (header, rows) chunks, the header found by the address column's name."""
    yield from stream_table(file, chunk_rows=chunk_rows, header_names=[address_col])


def _column(header: Sequence[str], name: str, file: Path) -> int:
    """Where the address column is in ``header`` (matched ignoring case, spaces and brackets)."""
    wanted = key(name)
    for i, h in enumerate(header):
        if key(h) == wanted:
            return i
    columns = ", ".join(shown(h) for h in header[:20])
    raise MissingColumn(
        f"{file.name} has no column {name!r} (its columns: {columns}); name it with --address-col",
        file=str(file),
        column=name,
    )


def _placed(match: Match, microgrid: str | None) -> list[str]:
    """The result columns of a placed text."""
    best = match.best
    assert best is not None
    parts = "; ".join(f"{part}={how}" for part, how in best.matched.items() if how != "missing")
    return [
        best.address_id, best.text, best.building_id or "", f"{best.lon:.7f}", f"{best.lat:.7f}",
        microgrid or "", f"{match.confidence:.3f}", "placed", parts,
    ]  # fmt: skip


def _microgrids(index: GridIndex, points: Sequence[tuple[float, float]]) -> list[str | None]:
    """The micro-grid holding each WGS-84 point (None outside every unit), from the index."""
    if not points:
        return []
    lon = np.fromiter((p[0] for p in points), dtype=np.float64, count=len(points))
    lat = np.fromiter((p[1] for p in points), dtype=np.float64, count=len(points))
    return [str(c) or None for c in index.assign(lon, lat).code]


# ---- the queue -------------------------------------------------------------------------------------
QueueSetOpt = Annotated[
    str | None, typer.Option("--set", help="Boundary set (default: the configured one, GEOGRID_DEFAULT_SET).")
]


@queue_app.command("list")
def queue_list(
    ctx: typer.Context,
    set_name: QueueSetOpt = None,
    status: Annotated[str, typer.Option(help="open or resolved.")] = "open",
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
) -> None:
    """List queued address texts (phones masked) with their best candidates, oldest first."""
    if status not in ("open", "resolved"):
        raise typer.BadParameter(f"{status!r}: open or resolved", param_hint="--status")
    state = _state(ctx)
    name = set_name or state.settings.default_set
    items = address_store(state.store).queue(name, status=status, limit=limit)
    table = Table(title=f"{status.capitalize()} queue of {name}")
    table.add_column("id", justify="right")
    table.add_column("text", overflow="fold", ratio=2)
    table.add_column("seen", justify="right")
    table.add_column("candidate", no_wrap=True)  # the id to resolve with: never folded
    table.add_column("conf.", justify="right")
    table.add_column("standard address", overflow="fold", ratio=2)
    for r in items.to_dict("records"):
        found = _candidates(r.get("candidates"))[:3] or [{"address_id": "none", "text": ""}]
        for n, c in enumerate(found):
            confidence = f"{float(c['confidence']):.2f}" if c.get("confidence") is not None else ""
            first = (str(r["id"]), shown(r["text"]), str(r.get("seen", ""))) if n == 0 else ("", "", "")
            last = n == len(found) - 1
            table.add_row(
                *first,
                str(c.get("address_id") or "(point)"),
                confidence,
                str(c.get("text", "")),
                end_section=last,
            )
    console.print(table)
    console.print(
        f"{len(items)} item(s)."
        + (" Place one with [bold]geogrid queue resolve ID --address ADDRESS_ID[/]." if len(items) else "")
    )


def _candidates(found: Any) -> list[dict[str, Any]]:
    """The candidates of a queue item (stored as JSON)."""
    if isinstance(found, str | bytes):
        found = json.loads(found)
    return [c for c in list(found or []) if isinstance(c, dict)]


@queue_app.command("resolve")
def queue_resolve(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="The queue item's id (geogrid queue list).")],
    address: Annotated[str | None, typer.Option(help="The registry address the text means.")] = None,
    lon: Annotated[float | None, typer.Option(help="Or a point: longitude (WGS-84).")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude (WGS-84).")] = None,
    set_name: QueueSetOpt = None,
) -> None:
    """Place a queued text on an address (--address) or a point (--lon, --lat); the text becomes an alias,
    so it matches by itself from then on."""
    if (address is None) == (lon is None and lat is None):
        raise typer.BadParameter("give either --address or --lon and --lat", param_hint="--address")
    if address is None and (lon is None or lat is None):
        raise typer.BadParameter("a point needs both --lon and --lat", param_hint="--lon/--lat")
    if lon is not None and lat is not None and not (abs(lon) <= 180 and abs(lat) <= 90):
        raise InvalidValue(f"({lon}, {lat}) is not a WGS-84 point", field="lon")
    state = _state(ctx)
    name = set_name or state.settings.default_set
    point = (lon, lat) if lon is not None and lat is not None else None
    done = address_store(state.store).resolve(name, item_id, address_id=address, point=point)
    where = address or f"({lon}, {lat})"
    text = shown(done.get("text", "")) if isinstance(done, dict) else ""
    console.print(f"Placed queue item {item_id} {text} at {where}; the text is now an alias in {name!r}.")
