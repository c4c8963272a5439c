"""Office spreadsheets: CSV (UTF-8 with or without a BOM, or GBK) and Excel ``.xlsx``, in bounded memory.

Rosters, address registries and hotline exports arrive this way, with Chinese or English headers and, now
and then, a title row above the header. :func:`read_table` reads a whole (bounded) table into text columns
named by their canonical names; :func:`stream_table` yields the rows of a file of any length in chunks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from geogrid.errors import MissingColumn, UnreadableFile
from geogrid.io.archives import check_archive
from geogrid.io.encoding import text_encoding
from geogrid.io.messages import echo

MAX_COLUMNS = 64  # columns read of a row (a sheet may declare 16,384)
MAX_CELL = 1000  # characters kept of a cell
HEADER_ROWS = 10  # how far down a title may push the header


def read_table(
    source: str | Path | bytes,
    columns: Mapping[str, Sequence[str]],
    required: Sequence[str],
    *,
    filename: str | None = None,
    what: str = "table",
    max_rows: int = 100_000,
) -> pd.DataFrame:
    """Read a CSV or ``.xlsx`` table into text columns named as ``columns`` (canonical → headers), plus ``row``.

    ``columns`` maps each canonical name to the headers offices use for it (matched ignoring case, spaces
    and brackets); the first row holding a known header is the header. ``row`` numbers data rows from 1, as
    errors name them; blank rows are dropped. ``source`` is a path or the file's bytes (then ``filename``
    tells CSV from XLSX; bytes starting ``PK`` are read as XLSX). More than ``max_rows`` rows is refused.
    """
    name = filename or (str(source) if not isinstance(source, bytes) else what)
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    too_many = f"{name} has more than {max_rows:,} rows; a {what} has fewer"
    rows = list(itertools.islice(_rows(data, name), max_rows + HEADER_ROWS + 1))
    header_at = _header_at(rows, columns, name, what)
    header, body = [cell(c) for c in rows[header_at]], rows[header_at + 1 :]
    if len(body) > max_rows:
        raise UnreadableFile(too_many, file=name)
    found = map_header(header, columns, required, name)
    out = {canon: [cell(r[i]) if i < len(r) else "" for r in body] for canon, i in found.items()}
    for canon in columns:
        out.setdefault(canon, [""] * len(body))
    frame = pd.DataFrame(out, columns=list(columns), dtype=object)
    frame.insert(0, "row", range(1, len(body) + 1))
    keep = frame[list(columns)].ne("").any(axis=1)  # blank lines are not rows to report
    return frame[keep].reset_index(drop=True)


def stream_table(
    path: str | Path,
    *,
    chunk_rows: int = 5_000,
    header_names: Sequence[str] = (),
    on_header: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Yield ``(header, rows)`` chunks of a CSV or ``.xlsx`` file of any length, never the whole file.

    The header is the first non-blank row, or the first row holding one of ``header_names`` within the
    first rows (offices put titles above it); ``on_header`` is told its row number in the file (from 1).
    Every row is padded or cut to the header's width.
    """
    name = str(path)
    with open(path, "rb") as handle:
        rows = _stream_rows(handle, name)
        head = list(itertools.islice(rows, HEADER_ROWS))
        wanted = {key(h) for h in header_names}
        at = next((i for i, r in enumerate(head) if wanted & {key(cell(c)) for c in r}), None)
        if at is None:
            at = next((i for i, r in enumerate(head) if any(cell(c) != "" for c in r)), None)
        if at is None:
            raise MissingColumn(f"{name} has no header row", file=name)
        header = [str(cell(c)) for c in head[at]]
        if on_header is not None:
            on_header(at + 1)
        width = len(header)
        pending = [_fit(r, width) for r in head[at + 1 :]]
        for row in rows:
            pending.append(_fit(row, width))
            if len(pending) >= chunk_rows:
                yield header, pending
                pending = []
        if pending:
            yield header, pending


def _fit(row: Sequence[Any], width: int) -> list[str]:
    cells = [c.strip()[:MAX_CELL] if type(c) is str else str(cell(c)) for c in row[:width]]  # CSV: all text
    return cells + [""] * (width - len(cells))


def _rows(data: bytes, name: str) -> Iterator[list[Any]]:
    """The rows of a file's bytes, CSV or XLSX, as they are read."""
    if name.lower().endswith(".xls"):
        raise UnreadableFile(f"{name}: old Excel .xls is not read; save it as .xlsx or CSV", file=name)
    return _stream_rows(io.BytesIO(data), name)


def _stream_rows(handle: Any, name: str) -> Iterator[list[Any]]:
    start = handle.read(2)
    handle.seek(0)
    if name.lower().endswith((".xlsx", ".xlsm")) or start == b"PK":
        return _xlsx_rows(handle, name)
    if name.lower().endswith(".xls"):
        raise UnreadableFile(f"{name}: old Excel .xls is not read; save it as .xlsx or CSV", file=name)
    return _csv_rows(handle, name)


def _csv_rows(handle: Any, name: str) -> Iterator[list[Any]]:
    codec, _ = text_encoding(handle.read(1 << 20))
    handle.seek(0)
    # Decoded as it is read: no second copy of the text, and rows past a limit are never made.
    reader = csv.reader(io.TextIOWrapper(handle, encoding=codec, newline=""))
    try:
        for row in reader:
            yield row[:MAX_COLUMNS]
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{name} is neither UTF-8 nor GBK text (byte {exc.start})", file=name) from exc
    except csv.Error as exc:
        raise UnreadableFile(f"{name} is not valid CSV: {exc}", file=name) from exc


def _xlsx_rows(handle: Any, name: str) -> Iterator[list[Any]]:
    from openpyxl import load_workbook

    check_archive(handle, name=name)  # a workbook is a zip: no bombs
    handle.seek(0)
    try:
        book = load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UnreadableFile(f"{name} is not a readable .xlsx workbook: {echo(str(exc))}", file=name) from exc
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # a sheet's declared size (A1:XFD1048576) would pad every row
        for values in sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS):
            if any(v is not None for v in values):  # empty rows (formatting only) are not rows
                yield list(values)
    finally:
        book.close()


def _header_at(rows: list[list[Any]], columns: Mapping[str, Sequence[str]], name: str, what: str) -> int:
    """The first row with a known column name is the header (offices put titles above it)."""
    known = {key(a) for names in columns.values() for a in names} | {key(c) for c in columns}
    for i, row in enumerate(rows[:HEADER_ROWS]):
        if any(key(cell(c)) in known for c in row):
            return i
    examples = ", ".join(names[0] for names in list(columns.values())[:4] if names)
    raise MissingColumn(f"{name} has no {what} header ({examples} ...)", file=name)


def map_header(
    header: Sequence[Any], columns: Mapping[str, Sequence[str]], required: Sequence[str], name: str
) -> dict[str, int]:
    """Canonical column → position in ``header``; a missing required column is refused, named."""
    found: dict[str, int] = {}
    for i, text in enumerate(header):
        k = key(text)
        for canon, aliases in columns.items():
            if canon not in found and k in {key(canon), *(key(a) for a in aliases)}:
                found[canon] = i
                break
    missing = [c for c in required if c not in found]
    if missing:
        wanted = ", ".join(f"{c} ({columns[c][0]})" if columns[c] else c for c in missing)
        raise MissingColumn(f"{name} lacks the column(s) {wanted}", file=name, field=missing[0])
    return found


def key(text: Any) -> str:
    """A header as compared: no spaces, underscores, asterisks or brackets; lower case."""
    return re.sub(r"[\s_*（）()]", "", str(text)).lower()


def cell(value: Any) -> Any:
    """A cell as text; Excel numbers that are whole (phones, codes) without ``.0``; dates kept."""
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()[:MAX_CELL]
