"""Which file formats GeoGrid reads, and how each is read into a frame with its source CRS."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geogrid import crs as crs_mod
from geogrid.errors import InvalidGeometry, MissingColumn, MissingCRS, UnreadableFile
from geogrid.io.columns import LAT_NAMES, LON_NAMES, WKT_NAMES, find_column
from geogrid.io.encoding import shapefile_encoding
from geogrid.io.messages import echo

DRIVERS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "ESRI Shapefile",
    ".zip": "ESRI Shapefile",
    ".gpkg": "GPKG",
    ".kml": "KML",
    ".csv": "CSV",
}
SHAPEFILE_NAMES = {"parent_cod": "parent_code"}
# The fields GDAL's LIBKML driver adds to every layer. Style and placemark ids are never data; the
# placemark's Name, description and time are, when a file fills them in (blank, they are dropped).
KML_STYLE_FIELDS = ("id", "altitudeMode", "tessellate", "extrude", "visibility", "drawOrder", "icon")
KML_TEXT_FIELDS = ("Name", "description", "timestamp", "begin", "end")
GEOJSON_ID_PEEK_BYTES = 16 << 20  # how much of a GeoJSON file is read to see its first feature's members


def driver_for(path: str | Path) -> str:
    """Return the GDAL driver for a file name, by its suffix (``.shp.zip`` and ``.zip`` are shapefiles)."""
    suffix = Path(path).suffix.lower()
    if suffix not in DRIVERS:
        known = ", ".join(sorted(DRIVERS))
        raise UnreadableFile(
            f"{Path(path).name}: unsupported file type {echo(suffix)!r}; use one of {known}", file=str(path)
        )
    return DRIVERS[suffix]


def list_layers(path: str | Path) -> list[str]:
    """Return the names of the layers in a file."""
    try:
        return [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:  # GDAL raises a zoo of DataSourceError/OSError subclasses
        raise UnreadableFile(f"cannot open {Path(path).name}: {echo(exc)}", file=str(path)) from exc


def _read_gdal(
    path: Path, layer: str | None, crs: Any, keep: Sequence[str] = ()
) -> tuple[gpd.GeoDataFrame, str]:
    layers = list_layers(path)
    if layer is None and len(layers) > 1:
        raise UnreadableFile(
            f"{path.name} holds {len(layers)} layers ({echo(', '.join(layers))}); choose one with layer=",
            file=str(path),
        )
    if layer is not None and layer not in layers:
        raise UnreadableFile(
            f"no layer {echo(layer)!r} in {path.name}; it has {echo(', '.join(layers))}",
            file=str(path),
            layer=layer,
        )
    kwargs: dict[str, Any] = {}
    encoding = shapefile_encoding(path)
    if encoding:
        kwargs["encoding"] = encoding
    try:
        frame = pyogrio.read_dataframe(path, layer=layer, **kwargs)
    except Exception as exc:
        raise UnreadableFile(f"cannot read {path.name}: {echo(exc)}", file=str(path), layer=layer) from exc
    if not isinstance(frame, gpd.GeoDataFrame):  # a table without geometry (a zip holding only a .dbf)
        raise InvalidGeometry(
            f"{path.name} holds a table without geometry; a layer needs one (a zipped shapefile needs its "
            ".shp and .shx beside the .dbf)",
            file=str(path),
            layer=layer,
            field="geometry",
        )
    if driver_for(path) == "ESRI Shapefile":
        # DBF names stop at 10 characters; give GeoGrid's own long name its full form back.
        frame = frame.rename(columns={k: v for k, v in SHAPEFILE_NAMES.items() if v not in frame.columns})
    if driver_for(path) == "KML":
        # LIBKML adds its style fields (and the placemark ids it writes) to every layer: they are no data.
        # Name, description and time are kept where the file fills them in; what the caller asks for stays.
        asked = {str(c).lower() for c in keep}
        drop = [c for c in KML_STYLE_FIELDS if c in frame.columns]
        drop += [c for c in KML_TEXT_FIELDS if c in frame.columns and _is_blank(frame[c]).all()]
        frame = frame.drop(columns=[c for c in drop if c.lower() not in asked])
    if crs is not None:
        src = crs_mod.normalize_crs(crs)
    elif frame.crs is not None:
        src = crs_mod.normalize_crs(frame.crs)
    else:
        raise MissingCRS(
            f"{path.name} declares no coordinate system; give one (e.g. --crs wgs84, gcj02, EPSG:4546)",
            file=str(path),
            layer=layer,
        )
    return frame, src


def _geojson_member_id(path: Path) -> bool:
    """True when a GeoJSON file's ``id`` column is its features' own ``id`` member, not a property.

    GDAL reads a feature's ``id`` member as a column ``id`` when the properties have none. The first
    feature decides: it is read from the first :data:`GEOJSON_ID_PEEK_BYTES` of the file (a feature is
    bounded by the vertex limit); when it cannot be read from them, the column is kept (nothing lost).
    """
    if driver_for(path) != "GeoJSON":
        return False
    with open(path, "rb") as stream:
        head = stream.read(GEOJSON_ID_PEEK_BYTES).decode("utf-8", errors="replace").lstrip("\ufeff")
    decoder = json.JSONDecoder()
    at = head.find('"features"')
    bracket = head.find("[", at) if at >= 0 else -1
    start = head.find("{", bracket) if bracket >= 0 else (head.find("{") if at < 0 else -1)
    try:
        first, _ = decoder.raw_decode(head, start) if start >= 0 else (None, 0)
    except ValueError:
        return False
    if not isinstance(first, dict) or "id" not in first:
        return False
    properties = first.get("properties")
    return not (isinstance(properties, dict) and "id" in properties)


def _read_csv(
    path: Path,
    crs: Any,
    lon_col: str | None,
    lat_col: str | None,
    wkt_col: str | None,
    encoding: str = "utf-8-sig",
) -> tuple[gpd.GeoDataFrame, str]:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"{path.name} is not valid {encoding} text past its first megabyte ({exc.reason}); "
            "give its encoding (e.g. --encoding gb18030)",
            file=str(path),
            field="encoding",
        ) from exc
    except Exception as exc:
        raise UnreadableFile(f"cannot read {path.name} as CSV: {echo(exc)}", file=str(path)) from exc
    if crs is None:
        # A bare lon/lat CSV from a Chinese map tool is as likely GCJ-02 as WGS-84: never guess.
        raise MissingCRS(
            f"{path.name} is a CSV and carries no coordinate system; give one (e.g. --crs "
            "wgs84 or --crs gcj02)",
            file=str(path),
        )
    src = crs_mod.normalize_crs(crs)
    wkt = find_column(table.columns, wkt_col, WKT_NAMES)
    if wkt is not None:
        geoms = shapely.from_wkt(table[wkt].to_numpy(), on_invalid="ignore")
        bad = pd.isna(geoms) & (table[wkt].str.strip() != "").to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise InvalidGeometry(
                f"row {row}: cannot parse {echo(wkt)!r} as WKT: {table[wkt].iloc[row - 1][:60]!r}",
                file=str(path),
                row=row,
                field=wkt,
            )
        return gpd.GeoDataFrame(table.drop(columns=[wkt]), geometry=geoms), src
    lon = find_column(table.columns, lon_col, LON_NAMES)
    lat = find_column(table.columns, lat_col, LAT_NAMES)
    if lon is None or lat is None:
        raise MissingColumn(
            f"{path.name} has neither a WKT column nor lon/lat columns (found: {echo(', '.join(table.columns))})",
            file=str(path),
            field=wkt_col or lon_col or lat_col or "wkt",
        )
    x = pd.to_numeric(table[lon], errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(table[lat], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        field = lon if not np.isfinite(x[row - 1]) else lat
        raise InvalidGeometry(
            f"row {row}: {echo(field)} is not a number: {echo(repr(table[field].iloc[row - 1]))}",
            file=str(path),
            row=row,
            field=field,
        )
    if crs_mod.is_geographic(src):
        crs_mod.check_lonlat(x, y)
    return gpd.GeoDataFrame(table.drop(columns=[lon, lat]), geometry=shapely.points(x, y)), src


def _is_blank(values: pd.Series) -> pd.Series:
    return values.isna() | values.astype(str).isin(["", "-1"]) if values.dtype != bool else values.isna()
