"""Topology of a layer: validate that it tiles its parent, repair it, compare two layers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from geogrid import io
from geogrid.cli.common import DateOpt, _date, _state, console
from geogrid.hierarchy import parse_level


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
