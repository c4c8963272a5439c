"""Place every point of a file of any size in its unit: streamed in chunks, bad rows set aside.

Input: CSV (lon/lat columns), GeoJSON or GeoPackage (point geometries or lon/lat columns), GeoParquet or
Parquet. Output: CSV, Parquet or GeoPackage, with the input's columns plus the unit code of every level
the index knows, ``on_boundary`` and ``snapped``. Rows whose coordinates cannot be read (not a number,
missing, out of range, not a point) go to an errors file with their row number (1-based, data rows) and
the reason; every other row is written, including points that fall in no unit (with an empty code).
Memory stays bounded by the chunk size.
"""

from __future__ import annotations

import io as stdio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import shapely

from geogrid import crs as crs_mod
from geogrid.errors import MissingColumn, UnreadableFile
from geogrid.index import GridIndex
from geogrid.io import LAT_NAMES, LON_NAMES, _find_column

CHUNK_ROWS = 500_000
Progress = Callable[[int, int], None]  # (bytes or rows done, total or 0)


@dataclass
class BatchReport:
    """What a batch assignment did."""

    rows: int = 0
    written: int = 0
    errors: int = 0
    outside: int = 0
    on_boundary: int = 0
    snapped: int = 0
    out: str = ""
    errors_file: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)


def assign_file(
    index: GridIndex,
    source: str | Path,
    out: str | Path,
    *,
    errors: str | Path | None = None,
    crs: Any = "wgs84",
    lon_col: str | None = None,
    lat_col: str | None = None,
    snap_m: float = 0.0,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> BatchReport:
    """Assign every point of ``source`` to its unit and write ``out`` (and ``errors``), chunk by chunk."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise UnreadableFile(f"no such file: {source}", file=str(source))
    errors = Path(errors) if errors else out.with_name(out.stem + ".errors.csv")
    src_crs = crs_mod.normalize_crs(crs)
    geographic = crs_mod.is_geographic(src_crs)
    report = BatchReport(out=str(out), errors_file=str(errors))
    writer = _Writer(out)
    error_rows: list[pd.DataFrame] = []
    try:
        for chunk, x_raw, y_raw, geometry_reason, start, names in _chunks(
            source, lon_col, lat_col, chunk_rows, progress
        ):
            x, y, reason = _coordinates(x_raw, y_raw, geographic, names)
            if geometry_reason is not None:
                reason = np.where(geometry_reason != "", geometry_reason, reason)
            bad = reason != ""
            rows = np.arange(start + 1, start + len(chunk) + 1)
            if bad.any():
                error_rows.append(
                    pd.DataFrame(
                        {
                            "row": rows[bad],
                            "reason": reason[bad],
                            "lon": np.asarray(x_raw, dtype=object)[bad],
                            "lat": np.asarray(y_raw, dtype=object)[bad],
                        }
                    )
                )
                for r, n in zip(*np.unique(reason[bad], return_counts=True), strict=True):
                    key = str(r).split(":")[0]
                    report.reasons[key] = report.reasons.get(key, 0) + int(n)
            good = chunk.loc[~bad].reset_index(drop=True)
            result = index.assign(x[~bad], y[~bad], crs=src_crs, snap_m=snap_m)
            good["unit_code"] = result.code
            for level, (codes, _names) in index.parents.items():
                good[f"{level}_code"] = np.append(codes, "")[result.rank]
            good["on_boundary"] = result.on_boundary
            good["snapped"] = result.snapped
            writer.write(good)
            report.rows += len(chunk)
            report.written += len(good)
            report.errors += int(bad.sum())
            report.outside += int((result.rank < 0).sum())
            report.on_boundary += int(result.on_boundary.sum())
            report.snapped += int(result.snapped.sum())
    finally:
        writer.close()
    if error_rows:
        pd.concat(error_rows, ignore_index=True).to_csv(errors, index=False)
    else:
        errors.unlink(missing_ok=True)
        report.errors_file = None
    return report


def _coordinates(
    x_raw: Any, y_raw: Any, geographic: bool, names: tuple[str, str] = ("lon", "lat")
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers from raw lon/lat values, and a reason naming the field ('' when fine) for every bad row."""
    xs, ys = pd.Series(x_raw), pd.Series(y_raw)
    x = pd.to_numeric(xs, errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(ys, errors="coerce").to_numpy(dtype=float)
    reason = np.full(len(x), "", dtype=object)
    for values, numbers, name in ((xs, x, names[0]), (ys, y, names[1])):
        blank = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        bad = ~np.isfinite(numbers) & (reason == "")
        if bad.any():
            missing = bad & blank
            reason[missing] = f"{name} is missing"
            other = bad & ~blank
            reason[other] = [f"{name} is not a finite number: {v!r}" for v in values.to_numpy()[other]]
    if geographic:
        out = (reason == "") & ((np.abs(x) > 180) | (np.abs(y) > 90))
        reason[out] = [
            f"out of range: {names[0]} {a}, {names[1]} {b}" for a, b in zip(x[out], y[out], strict=True)
        ]
    return x, y, reason.astype(str)


def _chunks(
    source: Path, lon_col: str | None, lat_col: str | None, chunk_rows: int, progress: Progress | None
) -> Iterator[tuple[pd.DataFrame, Any, Any, np.ndarray | None, int, tuple[str, str]]]:
    suffix = source.suffix.lower()
    start = 0
    if suffix == ".csv":
        size = source.stat().st_size
        with open(source, "rb") as raw:
            counted = _Counting(raw, size, progress)
            reader = pd.read_csv(
                counted, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8-sig"
            )
            for chunk in reader:
                lon, lat = _lonlat_columns(chunk, lon_col, lat_col, source)
                yield chunk, chunk[lon].to_numpy(), chunk[lat].to_numpy(), None, start, (lon, lat)
                start += len(chunk)
        return
    if suffix in (".parquet", ".geoparquet"):
        parquet = pq.ParquetFile(source)
        total = parquet.metadata.num_rows
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield _from_table(batch.to_pandas(), lon_col, lat_col, source, "geometry", start)
            start += batch.num_rows
            if progress:
                progress(start, total)
        return
    if suffix in (".geojson", ".json", ".gpkg", ".shp", ".fgb"):
        info = pyogrio.read_info(source)
        total = int(info.get("features") or 0)
        with pyogrio.open_arrow(source, batch_size=chunk_rows) as (_meta, reader):
            geometry = _meta.get("geometry_name") or "wkb_geometry"
            for batch in reader:
                yield _from_table(batch.to_pandas(), lon_col, lat_col, source, geometry, start)
                start += batch.num_rows
                if progress:
                    progress(start, total)
        return
    raise UnreadableFile(
        f"cannot assign points from {suffix!r} files; use CSV, GeoJSON, GeoPackage or (Geo)Parquet",
        file=str(source),
    )


def _from_table(
    table: pd.DataFrame, lon_col: str | None, lat_col: str | None, source: Path, geometry: str, start: int
) -> tuple[pd.DataFrame, Any, Any, np.ndarray | None, int, tuple[str, str]]:
    """Coordinates from lon/lat columns when named or when there is no geometry, else from points."""
    if lon_col or lat_col or geometry not in table.columns:
        lon, lat = _lonlat_columns(table, lon_col, lat_col, source)
        return table, table[lon].to_numpy(), table[lat].to_numpy(), None, start, (lon, lat)
    geoms = shapely.from_wkb(table.pop(geometry).to_numpy(), on_invalid="ignore")
    points = shapely.get_type_id(geoms) == 0
    x = np.where(points, shapely.get_x(geoms), np.nan)
    y = np.where(points, shapely.get_y(geoms), np.nan)
    reason = np.array(
        [
            "" if p else ("geometry is missing" if g is None else f"geometry is a {g.geom_type}, not a point")
            for p, g in zip(points, geoms, strict=True)
        ],
        dtype=object,
    ).astype(str)
    table = table.assign(lon=x, lat=y) if "lon" not in table.columns and "lat" not in table.columns else table
    return table, x, y, reason, start, ("lon", "lat")


def _lonlat_columns(
    table: pd.DataFrame, lon_col: str | None, lat_col: str | None, source: Path
) -> tuple[str, str]:
    lon = _find_column(list(table.columns), lon_col, LON_NAMES)
    lat = _find_column(list(table.columns), lat_col, LAT_NAMES)
    if lon is None or lat is None:
        raise MissingColumn(
            f"{source.name} has no {'lon' if lon is None else 'lat'} column (columns: {', '.join(map(str, table.columns))}); "
            "name them with --lon-col/--lat-col",
            file=str(source),
            field=lon_col if lon is None else lat_col,
        )
    return lon, lat


class _Counting(stdio.RawIOBase):
    """A binary reader that reports how many bytes have been read."""

    def __init__(self, raw: Any, total: int, progress: Progress | None) -> None:
        self.raw, self.total, self.progress, self.done = raw, total, progress, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self.raw.readinto(buffer)
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)
        return n


class _Writer:
    """Append chunks to CSV, Parquet or GeoPackage output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = path.suffix.lower()
        if self.kind not in (".csv", ".parquet", ".gpkg"):
            raise UnreadableFile(f"cannot write {self.kind!r}; write .csv, .parquet or .gpkg", file=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.parquet: pq.ParquetWriter | None = None
        self.first = True

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == ".csv":
            frame.to_csv(self.path, mode="w" if self.first else "a", header=self.first, index=False)
        elif self.kind == ".parquet":
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.path, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))
        else:
            import geopandas as gpd

            lon = pd.to_numeric(frame.get("lon", frame.iloc[:, 0]), errors="coerce")
            lat = pd.to_numeric(frame.get("lat", frame.iloc[:, 1]), errors="coerce")
            points = gpd.GeoDataFrame(frame, geometry=shapely.points(lon, lat), crs=4326)
            pyogrio.write_dataframe(points, self.path, append=not self.first)
        self.first = False

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
