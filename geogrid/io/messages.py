"""What an error repeats of a file and its values: cut short, and naming an upload as it was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geogrid.errors import ECHO_CHARS, GeoGridError, cut


def echo(value: Any) -> str:
    """``value`` (a cell, a column name, a GDAL message) as an error message repeats it: as text, cut."""
    return cut(str(value))


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
