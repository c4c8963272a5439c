"""Place every point of a file of any size in its unit: streamed in chunks, bad rows set aside.

Input: CSV (lon/lat columns; UTF-8 with or without a byte-order mark, or GBK/GB18030 as Excel writes it
on Chinese Windows, detected), GeoJSON, GeoPackage or Shapefile (point geometries or lon/lat columns),
GeoParquet or Parquet. Output: CSV, Parquet, GeoPackage, GeoJSON or Shapefile, with the input's columns
plus the unit code of every level the index knows, ``on_boundary`` and ``snapped``. Rows whose
coordinates cannot be read (not a number, missing, out of range, not a point) go to an errors file with
their row number (1-based, data rows) and the reason; every other row is written, including points that
fall in no unit (with an empty code). A CSV output is UTF-8, with a byte-order mark when the input had
one or was GBK (so Excel shows it right); a Parquet output keeps the input's column types and nulls.
Memory stays bounded by the chunk size.
"""

from __future__ import annotations

import io as stdio
import json
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

from geogrid import coordinates
from geogrid import crs as crs_mod
from geogrid.errors import MissingColumn, UnreadableFile
from geogrid.index import GridIndex
from geogrid.io import LAT_NAMES, LON_NAMES, file_encoding, find_column, layer_name

CHUNK_ROWS = 500_000
Progress = Callable[[int, int], None]  # (bytes or rows done, total or 0)
INPUTS = (".csv", ".parquet", ".geoparquet", ".geojson", ".json", ".gpkg", ".shp", ".fgb")
OUTPUTS = {
    ".csv": "CSV",
    ".parquet": "Parquet",
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".shp": "ESRI Shapefile",
}


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


@dataclass
class _Chunk:
    """Rows of the input: the columns to write, raw coordinates, and why a geometry is unusable."""

    table: pd.DataFrame
    x_raw: Any
    y_raw: Any
    geometry_reason: np.ndarray | None
    start: int
    names: tuple[str, str]


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
    encoding: str | None = None,
) -> BatchReport:
    """Assign every point of ``source`` to its unit and write ``out`` (and ``errors``), chunk by chunk.

    ``encoding`` is a CSV's text encoding (default: detected from its first megabyte).
    """
    source, out = Path(source), Path(out)
    if not source.exists():
        raise UnreadableFile(f"no such file: {source}", file=str(source))
    if source.suffix.lower() not in INPUTS:
        raise UnreadableFile(
            f"cannot assign points from {source.suffix.lower()!r} files; use CSV, GeoJSON, GeoPackage, "
            "Shapefile or (Geo)Parquet",
            file=str(source),
        )
    if source.resolve() == out.resolve():
        raise UnreadableFile("the output would overwrite the input; choose another --out", file=str(out))
    errors = Path(errors) if errors else out.with_name(out.stem + ".errors.csv")
    src_crs = crs_mod.normalize_crs(crs)
    geographic = crs_mod.is_geographic(src_crs)
    bom = False
    if source.suffix.lower() == ".csv":
        encoding, bom = file_encoding(source, encoding)
        bom = bom or encoding.lower().replace("-", "") in ("gbk", "gb18030", "gb2312", "cp936")
    report = BatchReport(out=str(out), errors_file=str(errors))
    writer = _Writer(out, bom=bom, crs=src_crs)
    errors.unlink(missing_ok=True)
    try:
        for chunk in _chunks(source, lon_col, lat_col, chunk_rows, progress, encoding or "utf-8"):
            x, y, reason = _coordinates(chunk.x_raw, chunk.y_raw, geographic, chunk.names)
            if chunk.geometry_reason is not None:
                reason = np.where(chunk.geometry_reason != "", chunk.geometry_reason, reason)
            bad = reason != ""
            rows = np.arange(chunk.start + 1, chunk.start + len(chunk.table) + 1)
            if bad.any():
                pd.DataFrame(
                    {
                        "row": rows[bad],
                        "reason": reason[bad],
                        "lon": np.asarray(chunk.x_raw, dtype=object)[bad],
                        "lat": np.asarray(chunk.y_raw, dtype=object)[bad],
                    }
                ).to_csv(
                    errors,
                    mode="a" if report.errors else "w",
                    header=not report.errors,
                    index=False,
                    encoding="utf-8-sig" if bom and not report.errors else "utf-8",
                )
                for r, n in zip(*np.unique(reason[bad], return_counts=True), strict=True):
                    key = str(r).split(":")[0]
                    report.reasons[key] = report.reasons.get(key, 0) + int(n)
            good = chunk.table.loc[~bad].reset_index(drop=True)
            result = index.assign(x[~bad], y[~bad], crs=src_crs, snap_m=snap_m)
            good["unit_code"] = result.code
            for level, (codes, _names) in index.parents.items():
                good[f"{level}_code"] = np.append(codes, "")[result.rank]
            good["on_boundary"] = result.on_boundary
            good["snapped"] = result.snapped
            gx, gy = x[~bad], y[~bad]
            if src_crs in (crs_mod.GCJ02, crs_mod.BD09):  # the layer is labelled WGS-84: its points must be
                gx, gy = crs_mod.transform(gx, gy, src_crs, crs_mod.WGS84)  # (the columns keep what was sent)
            writer.write(good, gx, gy)
            report.rows += len(chunk.table)
            report.written += len(good)
            report.errors += int(bad.sum())
            report.outside += int((result.rank < 0).sum())
            report.on_boundary += int(result.on_boundary.sum())
            report.snapped += int(result.snapped.sum())
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if not report.errors:
        report.errors_file = None
    return report


def _coordinates(
    x_raw: Any, y_raw: Any, geographic: bool, names: tuple[str, str] = ("lon", "lat")
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers from raw lon/lat values, and for every bad row a reason naming the field ('' when fine),
    worded as the API words it (:mod:`geogrid.coordinates`)."""
    xs, ys = np.asarray(x_raw, dtype=object), np.asarray(y_raw, dtype=object)
    x = pd.to_numeric(pd.Series(xs), errors="coerce").to_numpy(dtype=float)  # ASCII decimals, as as_number
    y = pd.to_numeric(pd.Series(ys), errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if geographic:
        bad |= (np.abs(x) > 180) | (np.abs(y) > 90)
    reason = np.full(len(x), "", dtype=object)
    reason[bad] = [coordinates.problem(x[i], y[i], xs[i], ys[i], names) for i in np.flatnonzero(bad)]
    return x, y, reason.astype(str)


def _chunks(
    source: Path,
    lon_col: str | None,
    lat_col: str | None,
    chunk_rows: int,
    progress: Progress | None,
    encoding: str,
) -> Iterator[_Chunk]:
    suffix = source.suffix.lower()
    start = 0
    if suffix == ".csv":
        size = source.stat().st_size
        with open(source, "rb") as raw:
            counted = _Counting(raw, size, progress)
            reader = pd.read_csv(
                counted, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding=encoding
            )
            while True:
                try:
                    chunk = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    raise UnreadableFile(
                        f"{source.name} is not valid {encoding} text after row {start} ({exc.reason}); "
                        "give its encoding with --encoding (e.g. gb18030 or utf-8)",
                        file=str(source),
                        row=start + 1,
                        field="encoding",
                    ) from exc
                lon, lat = _lonlat_columns(chunk, lon_col, lat_col, source)
                yield _Chunk(chunk, chunk[lon].to_numpy(), chunk[lat].to_numpy(), None, start, (lon, lat))
                start += len(chunk)
    if suffix in (".parquet", ".geoparquet"):
        try:
            parquet = pq.ParquetFile(source)
        except Exception as exc:
            raise UnreadableFile(f"cannot read {source.name} as Parquet: {exc}", file=str(source)) from exc
        geo = json.loads((parquet.schema_arrow.metadata or {}).get(b"geo", b"{}"))
        geometry = str(geo.get("primary_column", "geometry"))
        total = parquet.metadata.num_rows
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield _from_arrow(batch, lon_col, lat_col, source, geometry, start)
            start += batch.num_rows
            if progress:
                progress(start, total)
        return
    try:
        info = pyogrio.read_info(source)
    except Exception as exc:  # GDAL's DataSourceError and friends
        raise UnreadableFile(f"cannot open {source.name}: {exc}", file=str(source)) from exc
    total = int(info.get("features") or 0)
    # use_pyarrow=True gives a pyarrow RecordBatchReader (pyogrio >= 0.10's default is a bare
    # _ArrowStream, which cannot be iterated); batches of chunk_rows keep memory bounded.
    with pyogrio.open_arrow(source, batch_size=chunk_rows, use_pyarrow=True) as (meta, reader):
        geometry = meta.get("geometry_name") or "wkb_geometry"
        for batch in reader:
            yield _from_arrow(batch, lon_col, lat_col, source, geometry, start)
            start += batch.num_rows
            if progress:
                progress(start, total)


def _from_arrow(
    batch: pa.RecordBatch, lon_col: str | None, lat_col: str | None, source: Path, geometry: str, start: int
) -> _Chunk:
    """Coordinates from lon/lat columns when named or when there is no geometry, else from points.

    Columns become pandas' Arrow-backed types, so that integers with nulls, dates and the like are
    written back as they were read.
    """
    names = batch.schema.names
    wkb = None
    if geometry in names:
        wkb = batch.column(names.index(geometry)).to_numpy(zero_copy_only=False)
        batch = batch.drop_columns([geometry])
    table = batch.to_pandas(types_mapper=pd.ArrowDtype)
    if lon_col or lat_col or wkb is None:
        lon, lat = _lonlat_columns(table, lon_col, lat_col, source)
        return _Chunk(table, table[lon].to_numpy(), table[lat].to_numpy(), None, start, (lon, lat))
    try:
        geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    except Exception as exc:  # not WKB at all (a GeoParquet with native encodings)
        raise UnreadableFile(
            f"cannot read the {geometry!r} column of {source.name} as WKB points; name lon/lat columns "
            "with --lon-col/--lat-col",
            file=str(source),
            field=geometry,
        ) from exc
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
    return _Chunk(table, x, y, reason, start, ("lon", "lat"))


def _lonlat_columns(
    table: pd.DataFrame, lon_col: str | None, lat_col: str | None, source: Path
) -> tuple[str, str]:
    lon = find_column(list(table.columns), lon_col, LON_NAMES)
    lat = find_column(list(table.columns), lat_col, LAT_NAMES)
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
    """Append chunks to a CSV, Parquet, GeoPackage, GeoJSON or Shapefile output, one schema throughout."""

    def __init__(self, path: Path, *, bom: bool = False, crs: str = crs_mod.WGS84) -> None:
        self.path = path
        self.kind = path.suffix.lower()
        if self.kind not in OUTPUTS:
            raise UnreadableFile(
                f"cannot write {self.kind!r}; write {', '.join(OUTPUTS)}", file=str(path), field="out"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.bom, self.crs = bom, crs_mod.pyproj_crs(crs).to_wkt()
        self.schema: pa.Schema | None = None
        self.parquet: pq.ParquetWriter | None = None
        # GDAL rewrites a whole GeoJSON file on every append: gather in a GeoPackage, convert at the end.
        self.target = path.with_name(path.name + ".part.gpkg") if self.kind == ".geojson" else path
        self.target.unlink(missing_ok=True)
        self.first = True

    def _arrow(self, frame: pd.DataFrame) -> pa.Table:
        """The chunk as Arrow, in the schema of the first chunk (a column empty there is text)."""
        if self.schema is None:
            inferred = pa.Table.from_pandas(frame, preserve_index=False).schema
            fields = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in inferred]
            self.schema = pa.schema(fields, metadata=inferred.metadata)
        try:
            return pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UnreadableFile(
                f"a later chunk of the input does not fit the column types of the first: {exc}",
                file=str(self.path),
            ) from exc

    def write(self, frame: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> None:
        """Append the rows of ``frame`` at ``x, y`` (in the CRS the layer is labelled with) for spatial outputs."""
        if self.kind == ".csv":
            frame.to_csv(
                self.path,
                mode="w" if self.first else "a",
                header=self.first,
                index=False,
                encoding="utf-8-sig" if self.bom and self.first else "utf-8",
            )
        elif self.kind == ".parquet":
            table = self._arrow(frame)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.path, table.schema)
            self.parquet.write_table(table)
        else:
            table = self._arrow(frame)
            if self.kind == ".shp":  # DBF field names stop at 10 bytes: shorten them the same way every chunk
                table = table.rename_columns(_dbf_names(table.schema.names))
            name = next(n for n in ("geometry", "geom", "_geometry") if n not in table.schema.names)
            table = table.append_column(name, pa.array(shapely.to_wkb(shapely.points(x, y)), pa.binary()))
            options: dict[str, Any] = {"encoding": "UTF-8"} if self.kind == ".shp" else {}
            pyogrio.write_arrow(
                table,
                self.target,
                driver="GPKG" if self.kind == ".geojson" else OUTPUTS[self.kind],
                layer=layer_name(self.target),
                geometry_name=name,
                geometry_type="Point",
                crs=self.crs,
                append=not self.first,
                **options,
            )
        self.first = False

    def close(self) -> None:
        """Finish the file (an empty input still gives a file with a header, where the format allows)."""
        if self.parquet is not None:
            self.parquet.close()
        if self.first and self.kind == ".csv":
            self.path.write_text("")
        if self.kind == ".geojson" and self.target.exists():
            with pyogrio.open_arrow(self.target, use_pyarrow=True) as (meta, reader):
                pyogrio.write_arrow(
                    reader,
                    self.path,
                    driver="GeoJSON",
                    geometry_name=meta.get("geometry_name") or "geom",
                    geometry_type="Point",
                    crs=self.crs,
                )
            self.target.unlink()

    def abort(self) -> None:
        """Close and remove what was written, so a failed run leaves no half file behind."""
        if self.parquet is not None:
            self.parquet.close()
        for path in {self.path, self.target}:
            path.unlink(missing_ok=True)
        if self.kind == ".shp":
            for suffix in (".dbf", ".shx", ".prj", ".cpg"):
                self.path.with_suffix(suffix).unlink(missing_ok=True)


def _dbf_names(names: list[str]) -> list[str]:
    """Column names cut to a DBF's 10 bytes and kept distinct (``community_code`` → ``community_``)."""
    out: list[str] = []
    for name in names:
        short = name.encode("utf-8")[:10].decode("utf-8", errors="ignore")
        n = 1
        while short in out:
            tail = str(n)
            short = name.encode("utf-8")[: 10 - len(tail)].decode("utf-8", errors="ignore") + tail
            n += 1
        out.append(short)
    return out
