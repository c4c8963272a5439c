"""A batch lookup's body: counted as it arrives, read (JSON, GeoJSON, CSV in UTF-8 or GBK, Arrow), answered.

What a point's error says (numbered from 1, naming the field, a hint when lon and lat look swapped) and
how a coordinate is read (an ASCII decimal, finite, in range) are decided here for single lookups too.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from numba import njit
from numpy.typing import NDArray

from geogrid import coordinates
from geogrid.coordinates import as_number, echo
from geogrid.crs import is_geographic
from geogrid.errors import ECHO_CHARS, InvalidCoordinates, InvalidGeometry, MissingColumn, TooManyPoints
from geogrid.index import GridIndex
from geogrid.io import ENCODING_SAMPLE_BYTES, LAT_NAMES, LON_NAMES, find_column, text_encoding
from geogrid.people import Directory

CRS_NAMES = frozenset({"wgs84", "gcj02", "bd09", "cgcs2000"})  # the geographic names; EPSG:N besides
ARROW = "application/vnd.apache.arrow.stream"
# The text encodings a batch may name in its content-type (codecs' own names), all decoded in linear time.
CHARSETS = frozenset(
    {"utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "gbk", "gb2312", "gb18030", "big5", "ascii"}
    | {"iso8859-1", "cp1252"}
)


@lru_cache(maxsize=64)
def geographic(crs: str) -> bool:
    """True when ``crs`` (a normalized name) takes lon/lat degrees, so that their ranges apply."""
    return crs in CRS_NAMES or is_geographic(crs)


VALUES_PER_POINT = 16  # JSON values a batch may carry per point (a GeoJSON feature with 8 properties)
VALUES_SLACK = 1024  # and besides (a collection's bbox, crs and names)


@njit(cache=True, nogil=True)
def _scan_json(data: NDArray[np.uint8], state: NDArray[np.int64]) -> None:
    """Count a JSON text's elements at the depth of its points, and all its values, a chunk at a time.

    ``state``: in a string, after a backslash, depth, the depth of the points (1 in an array, 2 in an
    object: ``points`` or ``features``), commas at that depth, commas and containers anywhere.
    """
    in_string, escaped, depth, target, elements, values = (
        state[0],
        state[1],
        state[2],
        state[3],
        state[4],
        state[5],
    )
    for b in data:
        if in_string:
            if escaped:
                escaped = 0
            elif b == 92:  # backslash
                escaped = 1
            elif b == 34:  # quote
                in_string = 0
        elif b == 34:
            in_string = 1
        elif b == 91 or b == 123:  # [ {
            if target == 0:
                target = 1 if b == 91 else 2
            depth += 1
            values += 1
        elif b == 93 or b == 125:  # ] }
            depth -= 1
        elif b == 44:  # comma
            values += 1
            if depth == target:
                elements += 1
    state[0], state[1], state[2], state[3], state[4], state[5] = (
        in_string,
        escaped,
        depth,
        target,
        elements,
        values,
    )


class PointCounter:
    """A lower bound on the points of a batch body as it arrives, cheap enough for every chunk.

    CSV: records (line ends outside quotes, blank lines left out) less the header. JSON (UTF-8, as RFC 8259
    has it): the elements of the array of points or features, found by structure (not by key names, which
    a body may spell as it likes), and all its values, which bound what parsing it would take (a body of
    nested empty objects takes 25 times its size). Arrow: none (its columns are read without copies). It
    errs low, so the count after parsing still decides near the limit; it stops a body that is plainly too
    big before the body is kept whole, let alone parsed.
    """

    def __init__(self, kind: str, charset: str | None = None) -> None:
        utf8 = charset is None or charset.lower().replace("_", "-") in ("utf-8", "utf8")
        self.kind = "csv" if kind == "text/csv" else "arrow" if kind == ARROW else "json" if utf8 else ""
        self.state = np.zeros(6, dtype=np.int64)  # JSON: see _scan_json
        self.records, self.quoted, self.last = 0, False, b"\n\n"  # CSV: its state at the last chunk's end

    @property
    def values(self) -> int:
        """JSON values counted so far (commas and containers: each value but the last of its container)."""
        return int(self.state[5])

    def over(self, limit: int) -> str:
        """Why the body is refused for ``limit`` points ('' while it is not)."""
        if self.count() > limit:
            return f"more than {limit:,} points in one request (GEOGRID_MAX_BATCH_POINTS); send them in parts"
        if self.values > VALUES_PER_POINT * limit + VALUES_SLACK:
            return (
                f"more than {VALUES_PER_POINT * limit + VALUES_SLACK:,} JSON values in one request: a batch "
                f"carries at most {VALUES_PER_POINT} a point (GEOGRID_MAX_BATCH_POINTS is {limit:,})"
            )
        return ""

    def count(self) -> int:
        """The points counted so far."""
        if self.kind == "json":
            return int(self.state[4]) + 1 if self.state[3] else 0
        return max(self.records - 1, 0)

    def feed(self, chunk: bytes) -> int:
        """Count ``chunk`` in; the points counted so far."""
        if self.kind == "json":
            _scan_json(np.frombuffer(chunk, np.uint8), self.state)
        elif self.kind == "csv" and chunk:
            edge = self.last + chunk[:2]
            plain = b'"' not in chunk and not self.quoted
            if plain and not any(b in part for b in (b"\n\n", b"\n\r\n") for part in (edge, chunk)):
                self.records += chunk.count(b"\n")  # the usual chunk: every line end ends a record
            else:
                self._count_slowly(chunk)
            self.last = (self.last + chunk[-2:])[-2:]
        return self.count()

    def _count_slowly(self, chunk: bytes) -> None:
        data = np.frombuffer(self.last + chunk, np.uint8)
        quotes = data[2:] == ord('"')
        inside = (np.cumsum(quotes) + self.quoted) % 2 == 1  # RFC 4180: "" inside quotes keeps parity
        ends = (data[2:] == ord("\n")) & ~inside
        after_end = (data[1:-1] == ord("\n")) | ((data[1:-1] == ord("\r")) & (data[:-2] == ord("\n")))
        self.records += int((ends & ~after_end).sum())
        self.quoted = bool((int(quotes.sum()) + self.quoted) % 2)


class Batch:
    """One batch lookup: where and how to look points up; :meth:`run` answers a body."""

    def __init__(
        self,
        index: Callable[[], GridIndex],
        limit: int,
        crs: str,
        snap_m: float,
        lon_col: str | None = None,
        lat_col: str | None = None,
        directory: Callable[[], Directory] | None = None,
    ) -> None:
        self.get_index, self.limit, self.crs, self.snap_m = index, limit, crs, snap_m
        self.lon_col, self.lat_col = lon_col, lat_col
        self.get_directory = directory  # asked for: a grid_leader column
        self.ranks: NDArray[np.int32] = np.zeros(0, dtype=np.int32)

    def run(self, kind: str, charset: str | None, chunks: list[bytes]) -> tuple[bytes, str]:
        """The response body and media type, in the format of the request's body (JSON unless CSV or Arrow)."""
        body = b"".join(chunks)
        chunks.clear()  # the body once, not twice
        self.index = self.get_index()
        if kind == "text/csv":
            text, bom = _utf8(body, charset)
            out = self._table(_read_csv(text))
            sink = pa.BufferOutputStream()
            sink.write(codecs.BOM_UTF8 if bom else b"")  # Excel reads UTF-8 only after a BOM
            _write_csv(out, sink)
            return sink.getvalue().to_pybytes(), "text/csv; charset=utf-8"
        if kind == ARROW:
            out = self._table(_read_arrow(body))
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, out.schema) as writer:
                writer.write_table(out)
            return sink.getvalue().to_pybytes(), kind
        body = body.removeprefix(codecs.BOM_UTF8)
        if charset and _codec(charset) not in ("utf-8", "utf-8-sig"):
            body = _decode(body, charset).encode()
        try:
            payload = orjson.loads(body or b"null")  # orjson refuses 1e400, NaN and nesting past 1024
        except orjson.JSONDecodeError as exc:
            sent_as = "" if "json" in kind else f" (it came as {echo(kind)}; CSV is sent as text/csv)"
            raise InvalidCoordinates(f"the body is not JSON: {exc}{sent_as}", field="body") from None
        if isinstance(payload, dict) and payload.get("type") == "FeatureCollection":
            return self._features(payload), "application/geo+json"
        points = payload.get("points") if isinstance(payload, dict) else payload
        if not isinstance(points, list):
            raise InvalidCoordinates(
                "send a JSON array of {lon, lat}, a GeoJSON FeatureCollection, CSV or Arrow", field="body"
            )
        return self._points(points), "application/json"

    def _check_size(self, n: int) -> None:
        if n > self.limit:
            raise TooManyPoints(
                f"{n:,} points in one request; the limit is {self.limit:,} (GEOGRID_MAX_BATCH_POINTS)",
                field="body",
            )

    def _points(self, points: list[Any]) -> bytes:
        self._check_size(len(points))
        first = next((p for p in points if type(p) is dict), {})
        lon = find_column(list(first), self.lon_col, LON_NAMES) or self.lon_col or "lon"
        lat = find_column(list(first), self.lat_col, LAT_NAMES) or self.lat_col or "lat"
        xs = [p.get(lon) if type(p) is dict else None for p in points]
        ys = [p.get(lat) if type(p) is dict else None for p in points]

        def sent(i: int) -> tuple[Any, Any, str]:
            shape = "" if type(points[i]) is dict else f"a point is an object with {lon} and {lat}, got "
            return xs[i], ys[i], shape and shape + echo(points[i])

        codes, on, errors = self._assign(_floats(xs), _floats(ys), "point", sent, (lon, lat))
        results = [
            {"index": i, "row": i + 1, "unit_code": c, "on_boundary": b, **({"error": e} if e else {})}
            for i, (c, b, e) in enumerate(zip(_pylist(codes), on.tolist(), _pylist(errors), strict=True))
        ]
        if (leaders := self._leaders()) is not None:
            for result, name in zip(results, _pylist(leaders), strict=True):
                result["grid_leader"] = name
        return orjson.dumps(
            {"set": self.index.meta["set"], "version": self.index.meta["version"], "results": results}
        )

    def _features(self, collection: dict[str, Any]) -> bytes:
        features = collection.get("features")
        if not isinstance(features, list):
            raise InvalidGeometry(f"features must be an array, got {echo(features)}", field="features")
        self._check_size(len(features))
        xs: list[Any] = []
        ys: list[Any] = []
        for n, feature in enumerate(features, 1):
            if type(feature) is not dict:
                raise InvalidGeometry(
                    f"feature {n} is not an object: {echo(feature)}", row=n, field="features"
                )
            properties = feature.get("properties")
            if properties is not None and type(properties) is not dict:
                raise InvalidGeometry(
                    f"feature {n}: properties must be an object or null, got {echo(properties)}",
                    row=n,
                    field="properties",
                )
            geometry = feature.get("geometry")
            xy = (
                geometry.get("coordinates")
                if type(geometry) is dict and geometry.get("type") == "Point"
                else None
            )
            if type(xy) is list and len(xy) >= 2:
                xs.append(xy[0])
                ys.append(xy[1])
            else:
                xs.append(None)
                ys.append(None)

        def sent(i: int) -> tuple[Any, Any, str]:
            return xs[i], ys[i], _not_a_point(features[i].get("geometry"))

        codes, on, errors = self._assign(_floats(xs), _floats(ys), "feature", sent)
        for feature, code, flag, error in zip(
            features, _pylist(codes), on.tolist(), _pylist(errors), strict=True
        ):
            feature["properties"] = {
                **(feature.get("properties") or {}),
                "unit_code": code,
                "on_boundary": flag,
            }
            if error:
                feature["properties"]["error"] = error
        if (leaders := self._leaders()) is not None:
            for feature, name in zip(features, _pylist(leaders), strict=True):
                feature["properties"]["grid_leader"] = name
        return orjson.dumps(collection)

    def _table(self, table: pa.Table) -> pa.Table:
        """The table with unit_code, on_boundary and error appended."""
        self._check_size(table.num_rows)
        names = table.column_names
        lon = find_column(names, self.lon_col, LON_NAMES)
        lat = find_column(names, self.lat_col, LAT_NAMES)
        if lon is None or lat is None:
            axis, wanted = ("lon", self.lon_col) if lon is None else ("lat", self.lat_col)
            which = f"no column {echo(wanted)}" if wanted else f"no {axis} column"
            raise MissingColumn(
                f"{which} (columns: {echo(', '.join(names))[1:-1]}); name it with {axis}_col",
                field=f"{axis}_col" if wanted else axis,
            )
        x_col, y_col = table.column(names.index(lon)), table.column(names.index(lat))

        def sent(i: int) -> tuple[Any, Any, str]:
            return x_col[i].as_py(), y_col[i].as_py(), ""

        codes, on, errors = self._assign(
            _column_floats(x_col), _column_floats(y_col), "row", sent, (lon, lat)
        )
        out = (
            table.append_column("unit_code", codes)
            .append_column("on_boundary", pa.array(on))
            .append_column("error", errors)
        )
        leaders = self._leaders()
        return out if leaders is None else out.append_column("grid_leader", leaders)

    def _leaders(self) -> pa.DictionaryArray | None:
        """The grid leader of each point's unit that day (a micro-grid's own, else its grid's), if asked."""
        if self.get_directory is None:
            return None
        directory = self.get_directory()
        codes = self.index.codes.tolist()
        grids = self.index.parents.get("grid")
        grid_codes = grids[0].tolist() if grids is not None else [None] * len(codes)
        names = [directory.leader_of((c, g or None)) for c, g in zip(codes, grid_codes, strict=False)]
        return pa.DictionaryArray.from_arrays(
            pa.array(self.ranks, mask=self.ranks < 0), pa.array(names, pa.string())
        )

    def _assign(
        self,
        x: NDArray[np.float64],
        y: NDArray[np.float64],
        label: str,
        sent: Callable[[int], tuple[Any, Any, str]],
        names: tuple[str, str] = ("lon", "lat"),
    ) -> tuple[pa.DictionaryArray, NDArray[np.bool_], pa.DictionaryArray]:
        """Unit codes, on-boundary flags and per-point errors ("row 3: lat is missing"); ``sent(i)`` gives
        point i (0-based) as sent, and what is wrong with its shape, for its error."""
        bad = ~(np.isfinite(x) & np.isfinite(y))
        if geographic(self.crs):
            bad |= (np.abs(x) > 180) | (np.abs(y) > 90)
        ranks = np.full(len(x), -1, dtype=np.int32)
        on = np.zeros(len(x), dtype=bool)
        if bad.any():
            good = ~bad
            if good.any():
                result = self.index.assign(x[good], y[good], crs=self.crs, snap_m=self.snap_m)
                ranks[good], on[good] = result.rank, result.on_boundary
        elif len(x):
            result = self.index.assign(x, y, crs=self.crs, snap_m=self.snap_m)
            ranks, on = result.rank.astype(np.int32, copy=False), result.on_boundary
        self.ranks = ranks
        # Outside every unit: null (JSON null, Arrow null, an empty CSV cell), as GET's "unit": null.
        dictionary = pa.array(self.index.codes.tolist(), pa.string())
        codes = pa.DictionaryArray.from_arrays(pa.array(ranks, mask=ranks < 0), dictionary)
        failed = np.flatnonzero(bad)
        messages = [f"{label} {i + 1}: {_problem(x[i], y[i], *sent(int(i)), names)}" for i in failed]
        which = np.zeros(len(x), dtype=np.int32)
        which[failed] = np.arange(1, len(failed) + 1, dtype=np.int32)
        errors = pa.DictionaryArray.from_arrays(which, pa.array(["", *messages], pa.string()))
        return codes, on, errors


def _pylist(codes: pa.DictionaryArray) -> list[Any]:
    """The values as Python objects: decoded first, some twenty times faster than one by one."""
    return codes.dictionary_decode().to_pylist()


def _problem(x: float, y: float, sent_x: Any, sent_y: Any, shape: str, names: tuple[str, str]) -> str:
    """What is wrong with a point that cannot be looked up: its shape, or its coordinates."""
    return shape or coordinates.problem(x, y, sent_x, sent_y, names)


def _not_a_point(geometry: Any) -> str:
    """Why a feature's geometry gives no point ('' when it does)."""
    if geometry is None:
        return "geometry is missing"
    if type(geometry) is not dict:
        return f"geometry is not an object: {echo(geometry)}"
    kind = geometry.get("type")
    if kind != "Point":
        return (
            f"geometry is a {kind if isinstance(kind, str) else echo(kind)}"[: ECHO_CHARS + 20]
            + ", a point is needed"
        )
    xy = geometry.get("coordinates")
    return "" if type(xy) is list and len(xy) >= 2 else f"coordinates must be [lon, lat], got {echo(xy)}"


def _codec(charset: str) -> str:
    """The codec of a text encoding a batch may name; others are refused (Python's codecs also hold
    transforms such as rot13 and decoders that take quadratic time, such as punycode)."""
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        name = ""
    if name not in CHARSETS:
        raise InvalidCoordinates(
            f"unknown charset {echo(charset)}; a batch is UTF-8, GBK, GB18030 or UTF-16 (Big5, Latin-1 too)",
            field="charset",
        )
    return name


def _decode(body: bytes, encoding: str) -> str:
    try:
        return body.decode(encoding)
    except (LookupError, UnicodeError, ValueError) as exc:
        where = f" at byte {exc.start:,}" if isinstance(exc, UnicodeDecodeError) else ""
        raise InvalidCoordinates(
            f"the body is not {echo(encoding)[1:-1]} text{where}; name its encoding in the content-type "
            "(e.g. text/csv; charset=gb18030)",
            field="charset",
        ) from None


def _utf8(body: bytes, charset: str | None) -> tuple[memoryview | bytes, bool]:
    """A CSV body as UTF-8 for Arrow (its encoding named or detected as the CLI does), and whether the
    answer gets a byte-order mark: when the body had one or was not UTF-8 (GBK from Excel)."""
    bom = body.startswith(codecs.BOM_UTF8)
    codec = _codec(charset) if charset else text_encoding(body[:ENCODING_SAMPLE_BYTES])[0]
    if codec in ("utf-8", "utf-8-sig"):
        return memoryview(body)[3 if bom else 0 :], bom
    return _decode(body, codec).encode(), True


def _read_csv(body: memoryview | bytes) -> pa.Table:
    """A CSV body with every column as text, so what is echoed back is exactly what was sent."""
    first = bytes(body[:ENCODING_SAMPLE_BYTES])  # Arrow takes a header's bytes as UTF-8 unchecked
    header = _decode(first[: first.find(b"\n") % (len(first) + 1)], "utf-8")
    try:
        names = next(csv.reader([header.rstrip("\r")]))
        types = dict.fromkeys(names, pa.string())
        return pa_csv.read_csv(
            pa.py_buffer(body),
            convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowException, StopIteration, csv.Error) as exc:
        raise InvalidCoordinates(f"the CSV cannot be read: {echo(str(exc))[1:-1]}", field="body") from None


def _read_arrow(body: bytes) -> pa.Table:
    """An Arrow IPC stream, checked whole: the reader trusts a stream's offsets, and a crafted one would
    send every later read past its buffers (the process, not the request, would die)."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        table.validate(full=True)
        return table
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidCoordinates(
            f"the body is not an Arrow IPC stream: {echo(str(exc))[1:-1]}", field="body"
        ) from None


def _write_csv(table: pa.Table, sink: pa.BufferOutputStream) -> None:
    """CSV quoted only where a value needs it (Arrow alone quotes every text value, or none)."""
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(table.column_names)
    sink.write(header.getvalue().encode())
    try:
        body = pa.BufferOutputStream()
        pa_csv.write_csv(table, body, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowInvalid:  # a value holds a comma, quote or line break: quote the text columns
        body = pa.BufferOutputStream()
        pa_csv.write_csv(table, body, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    sink.write(body.getvalue())


def _floats(values: list[Any]) -> NDArray[np.float64]:
    """Numbers from JSON values; anything else (true and false too) becomes NaN, and that point an error."""
    try:
        x = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    except (TypeError, ValueError):  # arrays or objects among the values
        x = np.array([as_number(v) for v in values], dtype=float)
    for i in np.flatnonzero((x == 0) | (x == 1)):  # pandas reads true as 1: only these can be booleans
        if isinstance(values[i], bool):
            x = x if x.flags.writeable else x.copy()
            x[i] = np.nan
    return x


def _column_floats(column: pa.ChunkedArray) -> NDArray[np.float64]:
    """Numbers from a table column (text or numeric); what is not a number becomes NaN."""
    if pa.types.is_boolean(column.type):
        return np.full(len(column), np.nan)
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        # Not "safe": an integer past 2**53 is a number too, if not an exact one (and far out of range).
        return pc.fill_null(pc.cast(column, pa.float64(), safe=False), float("nan")).to_numpy()
    try:
        return pc.cast(column, pa.float64()).to_numpy()  # text that is all numbers: the fast way
    except pa.ArrowException:
        return _floats(column.to_pylist())
