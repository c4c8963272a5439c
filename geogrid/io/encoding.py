"""Which text encoding a CSV or a shapefile's attributes use: UTF-8 (with or without a BOM) or GB18030."""

from __future__ import annotations

import codecs
import zipfile
import zlib
from pathlib import Path
from typing import IO

from geogrid.errors import UnreadableFile
from geogrid.io.messages import echo

ENCODING_SAMPLE_BYTES = 1 << 20  # what encoding detection reads of a text file or a .dbf's records


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
