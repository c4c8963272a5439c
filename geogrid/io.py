"""Read and write a boundary or point layer from any file a planner has.

Formats: GeoJSON, Shapefile (plain or zipped; ``.cpg`` honoured, GBK/GB18030 attributes detected when
there is none), GeoPackage, KML, and CSV with a WKT column or lon/lat columns. Every layer is normalised
to WGS-84 on the way in; a source CRS may be given by name (``gcj02``, ``bd09``, ``cgcs2000``,
``EPSG:N``), which matters because GCJ-02 files are labelled as plain WGS-84 by the tools that make them.

Errors name the file, layer, row (1-based, counting data rows) and field at fault.
"""

from __future__ import annotations

import codecs
import json
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geogrid import crs as crs_mod
from geogrid.errors import (
    ArchiveTooLarge,
    GeoGridError,
    InvalidGeometry,
    MissingColumn,
    MissingCRS,
    UnreadableFile,
)

GeometryKind = Literal["polygon", "point", "any"]

DRIVERS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "ESRI Shapefile",
    ".zip": "ESRI Shapefile",
    ".gpkg": "GPKG",
    ".kml": "KML",
    ".csv": "CSV",
}
LON_NAMES = ("lon", "lng", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")
SHAPEFILE_NAMES = {"parent_cod": "parent_code"}
ENCODING_SAMPLE_BYTES = 1 << 20  # what encoding detection reads of a text file or a .dbf's records
MAX_UNPACKED_MB = 1000.0  # an archive may unpack to at most this (settings: GEOGRID_MAX_UNPACKED_MB)
MAX_COMPRESSION_RATIO = 100.0  # nor pack a member tighter than this (GEOGRID_MAX_COMPRESSION_RATIO)
# The fields GDAL's LIBKML driver adds to every layer. Style and placemark ids are never data; the
# placemark's Name, description and time are, when a file fills them in (blank, they are dropped).
KML_STYLE_FIELDS = ("id", "altitudeMode", "tessellate", "extrude", "visibility", "drawOrder", "icon")
KML_TEXT_FIELDS = ("Name", "description", "timestamp", "begin", "end")
GEOJSON_ID_PEEK_BYTES = 16 << 20  # how much of a GeoJSON file is read to see its first feature's members
ECHO_CHARS = 200  # how much of a value (a cell, a column name, a GDAL message) an error repeats


def echo(value: Any) -> str:
    """``value`` as an error message repeats it: as text, cut to about 200 characters."""
    text = str(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def driver_for(path: str | Path) -> str:
    """Return the GDAL driver for a file name, by its suffix (``.shp.zip`` and ``.zip`` are shapefiles)."""
    suffix = Path(path).suffix.lower()
    if suffix not in DRIVERS:
        known = ", ".join(sorted(DRIVERS))
        raise UnreadableFile(
            f"{Path(path).name}: unsupported file type {echo(suffix)!r}; use one of {known}", file=str(path)
        )
    return DRIVERS[suffix]


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
        The file (see the module docstring for the formats).
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


def relabel(exc: GeoGridError, path: str | Path, label: str | None) -> GeoGridError:
    """``exc`` with ``path`` (and its directory) called ``label`` and every value it echoes cut short.

    An upload is read from a temporary file: what the client is told names the file it sent, never a
    path on the server. Returns the same exception, changed in place.
    """
    path = Path(path)
    replacements = []
    if label:  # the path, then the directory, the file's name and its sidecars' (upload.shx: 街道.shx)
        replacements = [(str(path), label), (str(path.parent) + "/", ""), (path.name, label)]
        replacements.append((path.name.split(".")[0] + ".", label.split(".")[0] + "."))

    def clean(text: str) -> str:
        for old, new in replacements:
            text = text.replace(old, new)
        return text

    exc.detail = clean(exc.detail)
    if len(exc.detail) > 5 * ECHO_CHARS:  # a message quoting a long value or a GDAL report
        exc.detail = exc.detail[: 5 * ECHO_CHARS] + "…"
    exc.where = {k: echo(clean(v)) if isinstance(v, str) else v for k, v in exc.where.items()}
    exc.args = (exc.detail,)
    return exc


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


def _find_column(columns: Sequence[str], wanted: str | None, candidates: Sequence[str]) -> str | None:
    lower = {str(c).lower(): str(c) for c in columns}
    for name in [wanted] if wanted else candidates:
        if name and name.lower() in lower:
            return lower[name.lower()]
    return None


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
    wkt = _find_column(table.columns, wkt_col, WKT_NAMES)
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
    lon = _find_column(table.columns, lon_col, LON_NAMES)
    lat = _find_column(table.columns, lat_col, LAT_NAMES)
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
        found = _find_column(frame.columns, source, ())
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


def _is_blank(values: pd.Series) -> pd.Series:
    return values.isna() | values.astype(str).isin(["", "-1"]) if values.dtype != bool else values.isna()


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


def shapefile_encoding(path: str | Path) -> str | None:
    """Guess a shapefile's attribute encoding when it has no ``.cpg``: UTF-8 if valid, else GB18030.

    Only the header and the first :data:`ENCODING_SAMPLE_BYTES` of records are read (a ``.dbf`` may be
    gigabytes, or a zip bomb). Returns None when there is nothing to decide (a ``.cpg`` is present, or
    the sampled attributes are ASCII), leaving the choice to GDAL.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".shp":
        cpg = [p for p in path.parent.glob(path.stem + ".*") if p.suffix.lower() == ".cpg"]
        dbf = [p for p in path.parent.glob(path.stem + ".*") if p.suffix.lower() == ".dbf"]
        if cpg or not dbf:
            return None
        with open(dbf[0], "rb") as stream:
            data = _dbf_sample(stream)
    elif suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                if any(n.lower().endswith(".cpg") for n in names):
                    return None
                dbfs = [n for n in names if n.lower().endswith(".dbf")]
                if len(dbfs) != 1:
                    return None
                with archive.open(dbfs[0]) as stream:  # streamed: never the whole member in memory
                    data = _dbf_sample(stream)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise UnreadableFile(f"{path.name} is not a valid zip archive: {exc}", file=str(path)) from exc
    else:
        return None
    return _guess_dbf_encoding(data)


def _dbf_sample(stream: IO[bytes]) -> bytes:
    """The 32-byte header, the field descriptors and the first records of a ``.dbf``, read sparingly."""
    head = stream.read(32)
    if len(head) < 32:
        return head
    header_len = int.from_bytes(head[8:10], "little")
    return head + stream.read(max(0, header_len - 32) + ENCODING_SAMPLE_BYTES)


def _guess_dbf_encoding(data: bytes) -> str | None:
    if len(data) < 32:
        return None
    header_len = int.from_bytes(data[8:10], "little")
    body = data[header_len:]
    if body.isascii():
        return None
    # The sample may end inside a character: decode incrementally, without insisting on the last bytes.
    for encoding, name in (("utf-8", "UTF-8"), ("gb18030", "GB18030")):
        try:
            codecs.getincrementaldecoder(encoding)().decode(body, final=False)
            return name  # GB18030 is a superset of GBK and GB2312, the encodings of Chinese desktop GIS
        except UnicodeDecodeError:
            continue
    return None


def text_encoding(sample: bytes) -> tuple[str, bool]:
    """Guess the encoding of a text file from its first bytes: ``(codec, has_bom)``.

    A UTF-8 byte-order mark (Excel's "CSV UTF-8") gives ``utf-8-sig``; bytes that are valid UTF-8 give
    ``utf-8``; anything else is read as GB18030, a superset of the GBK that Excel's plain "CSV" writes on
    Chinese Windows. Pass a sample of a megabyte or so; a character cut at its end is allowed.

    >>> text_encoding("经度,纬度".encode("gbk"))
    ('gb18030', False)
    >>> text_encoding(b"\\xef\\xbb\\xbflon,lat")
    ('utf-8-sig', True)
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8", False
    except UnicodeDecodeError:
        return "gb18030", False


def file_encoding(path: str | Path, encoding: str | None = None) -> tuple[str, bool]:
    """The encoding of a text file (``encoding`` if given, else guessed from its first megabyte)."""
    with open(path, "rb") as stream:
        sample = stream.read(ENCODING_SAMPLE_BYTES)
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise UnreadableFile(
                f"unknown encoding {echo(encoding)!r}", file=str(path), field="encoding"
            ) from exc
        bom = sample.startswith(codecs.BOM_UTF8)
        return ("utf-8-sig" if bom and codecs.lookup(encoding).name == "utf-8" else encoding), bom
    return text_encoding(sample)


def check_archive(
    path: str | Path,
    *,
    max_unpacked_mb: float = MAX_UNPACKED_MB,
    max_ratio: float = MAX_COMPRESSION_RATIO,
    name: str | None = None,
) -> None:
    """Refuse a zip archive that would unpack to more than ``max_unpacked_mb`` or that packs too tightly.

    Reads only the archive's directory, before GDAL or anything else unpacks a byte. A member larger
    than a megabyte whose size is more than ``max_ratio`` times its compressed size is refused: real
    shapefiles compress 2-10 times, a zip bomb a thousand. Raises :class:`~geogrid.errors.ArchiveTooLarge`
    (HTTP 413). ``name`` is how the file is called in the message (an upload's name, not a temp path).
    """
    path = Path(path)
    label = name or path.name
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableFile(f"{label} is not a valid zip archive: {exc}", file=label) from exc
    total = sum(m.file_size for m in members)
    if total > max_unpacked_mb * 1e6:
        raise ArchiveTooLarge(
            f"{label} would unpack to {total / 1e6:,.0f} MB; the limit is {max_unpacked_mb:,.0f} MB "
            "(GEOGRID_MAX_UNPACKED_MB)",
            file=label,
        )
    for member in members:
        if member.file_size > 1_000_000 and member.file_size > max_ratio * max(member.compress_size, 1):
            ratio = member.file_size / max(member.compress_size, 1)
            raise ArchiveTooLarge(
                f"{label}: {member.filename} unpacks {ratio:,.0f} times its packed size "
                f"({member.file_size / 1e6:,.0f} MB); the limit is {max_ratio:,.0f} "
                "(GEOGRID_MAX_COMPRESSION_RATIO)",
                file=label,
                field=member.filename,
            )
