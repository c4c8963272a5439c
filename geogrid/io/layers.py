"""Read and write a boundary or point layer: WGS-84 in and out, geometries checked, columns named."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geogrid import crs as crs_mod
from geogrid.errors import GeoGridError, InvalidGeometry, MissingColumn, UnreadableFile
from geogrid.io.archives import MAX_COMPRESSION_RATIO, MAX_UNPACKED_MB, check_archive
from geogrid.io.columns import find_column
from geogrid.io.encoding import file_encoding
from geogrid.io.formats import _geojson_member_id, _read_csv, _read_gdal, driver_for
from geogrid.io.messages import echo, relabel

GeometryKind = Literal["polygon", "point", "any"]


def read_boundaries(
    path: str | Path,
    *,
    crs: Any = None,
    layer: str | None = None,
    code: str = "code",
    name: str | None = "name",
    encoding: str | None = None,
    max_unpacked_mb: float = MAX_UNPACKED_MB,
    max_compression_ratio: float = MAX_COMPRESSION_RATIO,
    label: str | None = None,
) -> gpd.GeoDataFrame:
    """Read a boundary layer: columns ``code``, ``name`` (if asked), MultiPolygons in WGS-84.

    Parameters
    ----------
    path
        The file (see :mod:`geogrid.io` for the formats).
    crs
        The source CRS, overriding the file's own label; required when the file has none (CSV, a
        shapefile without ``.prj``).
    layer
        The layer to read from a multi-layer file (GeoPackage, KML).
    code, name
        The columns holding the unit code and name (matched case-insensitively); renamed to ``code`` and
        ``name``. ``name=None`` makes the name optional.
    encoding
        The text encoding of a CSV (default: detected, see :func:`text_encoding`).
    max_unpacked_mb, max_compression_ratio
        Limits on a zip archive, checked before anything is unpacked (see :func:`check_archive`).
    label
        What errors call the file (an upload's name as the client sent it), instead of ``path``.

    A GeoJSON feature's own ``id`` member (which GDAL reads as a first column ``id`` when the properties
    have none) identifies the feature in that file and is dropped, unless ``code`` or ``name`` names it;
    an ``id`` among the properties is data and kept.
    """
    try:
        frame = read_layer(
            path,
            crs=crs,
            layer=layer,
            geometry="polygon",
            encoding=encoding,
            max_unpacked_mb=max_unpacked_mb,
            max_compression_ratio=max_compression_ratio,
            keep=[c for c in (code, name) if c],
        )
        wanted = {str(c).lower() for c in (code, name) if c}
        if "id" in frame.columns and "id" not in wanted and _geojson_member_id(Path(path)):
            frame = frame.drop(columns="id")
        required = [code] + ([name] if name else [])
        frame = _rename_required(
            frame, path, layer, {c: t for c, t in zip(required, ("code", "name"), strict=False)}
        )
        frame["code"] = _as_code_strings(frame["code"])
        blank = frame["code"].str.strip() == ""
        if blank.any():
            row = int(np.flatnonzero(blank.to_numpy())[0]) + 1
            raise MissingColumn(
                f"row {row} has an empty code", file=str(path), layer=layer, row=row, field=echo(code)
            )
        frame["geometry"] = as_multipolygons(frame.geometry.to_numpy())
    except GeoGridError as exc:
        relabel(exc, path, label)
        raise
    return frame


def read_layer(
    path: str | Path,
    *,
    crs: Any = None,
    layer: str | None = None,
    geometry: GeometryKind = "any",
    lon_col: str | None = None,
    lat_col: str | None = None,
    wkt_col: str | None = None,
    encoding: str | None = None,
    max_unpacked_mb: float = MAX_UNPACKED_MB,
    max_compression_ratio: float = MAX_COMPRESSION_RATIO,
    keep: Sequence[str] = (),
    label: str | None = None,
) -> gpd.GeoDataFrame:
    """Read any supported layer into a GeoDataFrame in WGS-84, checking geometries row by row.

    A CSV's encoding and byte-order mark go into ``attrs["encoding"]`` and ``attrs["bom"]``, so that
    what is written back can keep the mark Excel needs. The fields GDAL's KML driver adds (style,
    placemark ids; a blank Name, description or time) are dropped unless ``keep`` names them. ``label``
    is what errors call the file (an upload's name as sent) instead of ``path``.
    """
    path = Path(path)
    try:
        if not path.exists():
            raise UnreadableFile(f"no such file: {path}", file=str(path))
        driver = driver_for(path)
        bom = False
        if path.suffix.lower() == ".zip":
            check_archive(path, max_unpacked_mb=max_unpacked_mb, max_ratio=max_compression_ratio)
        if driver == "CSV":
            encoding, bom = file_encoding(path, encoding)
            frame, src = _read_csv(path, crs, lon_col, lat_col, wkt_col, encoding)
        else:
            frame, src = _read_gdal(path, layer, crs, keep)
        _check_geometries(frame, path, layer, geometry)
        frame = frame.set_geometry(crs_mod.transform_geometries(frame.geometry.to_numpy(), src), crs=4326)
    except GeoGridError as exc:
        relabel(exc, path, label)
        raise
    frame.attrs["source_crs"] = src
    if driver == "CSV":
        frame.attrs.update(encoding=encoding, bom=bom)
    return frame


def write_layer(
    frame: gpd.GeoDataFrame,
    path: str | Path,
    *,
    crs: Any = "wgs84",
    layer: str | None = None,
    bom: bool | None = None,
) -> Path:
    """Write a WGS-84 frame to ``path`` (format from the suffix), transformed to ``crs`` on the way out.

    A CSV is UTF-8, with a byte-order mark when ``bom`` is true (default: when the frame was read from a
    CSV that had one, ``frame.attrs["bom"]``), so that Excel shows its Chinese text.
    """
    path = Path(path)
    driver = driver_for(path)
    target = crs_mod.normalize_crs(crs)
    out = frame.copy()
    if out.crs is not None and crs_mod.normalize_crs(out.crs) != crs_mod.WGS84:
        out = out.to_crs(4326)
    geoms = crs_mod.transform_geometries(out.geometry.to_numpy(), crs_mod.WGS84, target)
    # GCJ-02/BD-09 have no EPSG code; they travel labelled as geographic WGS-84, as Amap/Baidu tools do.
    out = out.set_geometry(geoms, crs=crs_mod.pyproj_crs(target))
    path.parent.mkdir(parents=True, exist_ok=True)
    if driver == "CSV":
        table = pd.DataFrame(out.drop(columns=out.geometry.name))
        table.insert(0, "wkt", shapely.to_wkt(geoms, rounding_precision=-1))
        keep_bom = frame.attrs.get("bom", False) if bom is None else bom
        table.to_csv(path, index=False, encoding="utf-8-sig" if keep_bom else "utf-8")
        return path
    if path.exists():
        path.unlink()
    options: dict[str, Any] = {}
    if driver == "ESRI Shapefile":
        options["encoding"] = "UTF-8"
    if path.suffix.lower() == ".zip" and not path.name.lower().endswith(".shp.zip"):
        raise UnreadableFile("write a zipped shapefile as NAME.shp.zip", file=str(path))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Normalized/laundered field name", RuntimeWarning)
        pyogrio.write_dataframe(
            out,
            path,
            driver=driver,
            layer=layer or (layer_name(path) if driver == "GPKG" else None),
            **options,
        )
    return path


def layer_name(path: str | Path) -> str:
    """The layer name for a new file: its stem, unless a GeoPackage reserves it (``gpkg…``)."""
    path = Path(path)
    stem = path.name.split(".")[0] or "layer"
    gpkg = path.suffix.lower() == ".gpkg" and stem.lower().startswith("gpkg")
    return f"layer_{stem}" if gpkg else path.stem


def _check_geometries(frame: gpd.GeoDataFrame, path: Path, layer: str | None, kind: GeometryKind) -> None:
    geoms = frame.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        row = int(np.flatnonzero(missing)[0]) + 1
        raise InvalidGeometry(
            f"row {row} has no geometry (missing, empty or unparseable)", file=str(path), layer=layer, row=row
        )
    if kind == "any":
        return
    allowed = {"polygon": ("Polygon", "MultiPolygon"), "point": ("Point",)}[kind]
    types = shapely.get_type_id(geoms)
    ok_ids = {"Polygon": 3, "MultiPolygon": 6, "Point": 0}
    wrong = ~np.isin(types, [ok_ids[t] for t in allowed])
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0]) + 1
        found = geoms[row - 1].geom_type
        raise InvalidGeometry(
            f"row {row} is a {found}; a {'boundary' if kind == 'polygon' else 'point'} layer needs "
            f"{' or '.join(allowed)} ({int(wrong.sum())} such row(s))",
            file=str(path),
            layer=layer,
            row=row,
            field="geometry",
        )


def _rename_required(
    frame: gpd.GeoDataFrame, path: str | Path, layer: str | None, columns: dict[str, str]
) -> gpd.GeoDataFrame:
    renames = {}
    for source, target in columns.items():
        found = find_column(frame.columns, source, ())
        if found is None:
            have = ", ".join(str(c) for c in frame.columns if c != frame.geometry.name)
            raise MissingColumn(
                f"no {echo(source)!r} column in {Path(path).name} (columns: {echo(have)})",
                file=str(path),
                layer=layer,
                field=source,
            )
        renames[found] = target
    clash = [t for s, t in renames.items() if s != t and t in frame.columns]
    frame = frame.drop(columns=clash)
    return frame.rename(columns=renames)


def _as_code_strings(values: pd.Series) -> pd.Series:
    """Codes are text: numeric columns (a shapefile's N field) lose no digits and gain no ``.0``."""
    if pd.api.types.is_float_dtype(values):
        return values.map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    return values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())


def as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Polygons as one-part MultiPolygons (the store keeps one geometry type); others unchanged."""
    out = np.asarray(geoms, dtype=object).copy()
    single = shapely.get_type_id(out) == 3
    out[single] = [shapely.MultiPolygon([g]) for g in out[single]]
    return out
