"""Batch assignment: every point of a file to its unit, streamed in chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geogrid.cli.common import DateOpt, _date, _progress, _state, console


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
