"""Read and write a boundary or point layer from any file a planner has.

Formats: GeoJSON, Shapefile (plain or zipped; ``.cpg`` honoured, GBK/GB18030 attributes detected when
there is none), GeoPackage, KML, and CSV with a WKT column or lon/lat columns. Every layer is normalised
to WGS-84 on the way in; a source CRS may be given by name (``gcj02``, ``bd09``, ``cgcs2000``,
``EPSG:N``), which matters because GCJ-02 files are labelled as plain WGS-84 by the tools that make them.

Errors name the file, layer, row (1-based, counting data rows) and field at fault.

One module per question: :mod:`~geogrid.io.layers` (read and write a layer), :mod:`~geogrid.io.formats`
(each format's reader), :mod:`~geogrid.io.encoding` (CSV and DBF text encodings),
:mod:`~geogrid.io.archives` (zip bombs), :mod:`~geogrid.io.columns` (lon/lat/WKT column names) and
:mod:`~geogrid.io.messages` (what errors repeat). Names are re-exported here; a test that patches one
patches it in the module that looks it up.
"""

from geogrid.io.archives import MAX_COMPRESSION_RATIO, MAX_UNPACKED_MB, check_archive
from geogrid.io.columns import LAT_NAMES, LON_NAMES, WKT_NAMES, find_column
from geogrid.io.encoding import ENCODING_SAMPLE_BYTES, file_encoding, shapefile_encoding, text_encoding
from geogrid.io.formats import (
    DRIVERS,
    GEOJSON_ID_PEEK_BYTES,
    KML_STYLE_FIELDS,
    KML_TEXT_FIELDS,
    SHAPEFILE_NAMES,
    driver_for,
    list_layers,
)
from geogrid.io.layers import (
    GeometryKind,
    as_multipolygons,
    layer_name,
    read_boundaries,
    read_layer,
    write_layer,
)
from geogrid.io.messages import ECHO_CHARS, echo, relabel

__all__ = [
    "DRIVERS",
    "ECHO_CHARS",
    "ENCODING_SAMPLE_BYTES",
    "GEOJSON_ID_PEEK_BYTES",
    "KML_STYLE_FIELDS",
    "KML_TEXT_FIELDS",
    "LAT_NAMES",
    "LON_NAMES",
    "MAX_COMPRESSION_RATIO",
    "MAX_UNPACKED_MB",
    "SHAPEFILE_NAMES",
    "WKT_NAMES",
    "GeometryKind",
    "as_multipolygons",
    "check_archive",
    "driver_for",
    "echo",
    "file_encoding",
    "find_column",
    "layer_name",
    "list_layers",
    "read_boundaries",
    "read_layer",
    "relabel",
    "shapefile_encoding",
    "text_encoding",
    "write_layer",
]
