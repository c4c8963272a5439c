"""Whether a zip archive is safe to unpack: its total size and each member's compression ratio."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import BinaryIO

from geogrid.errors import ArchiveTooLarge, UnreadableFile

MAX_UNPACKED_MB = 1000.0  # an archive may unpack to at most this (settings: GEOGRID_MAX_UNPACKED_MB)
MAX_COMPRESSION_RATIO = 100.0  # nor pack a member tighter than this (GEOGRID_MAX_COMPRESSION_RATIO)


def check_archive(
    path: str | Path | BinaryIO,
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
    if isinstance(path, str | Path):
        path = Path(path)
        label = name or path.name
    else:  # an archive in memory (an .xlsx upload is one)
        label = name or "archive"
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
