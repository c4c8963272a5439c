"""Which column of a table holds the longitude, latitude, WKT or a named field, whatever its case."""

from __future__ import annotations

from collections.abc import Sequence

LON_NAMES = ("lon", "lng", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")


def find_column(columns: Sequence[str], wanted: str | None, candidates: Sequence[str]) -> str | None:
    """The column named ``wanted``, else the first of ``candidates`` present, matched in any case; or None.

    >>> find_column(["ID", "Lng", "纬度"], None, LON_NAMES)
    'Lng'
    >>> find_column(["ID", "Lng"], "lon", LON_NAMES) is None
    True
    """
    lower = {str(c).lower(): str(c) for c in columns}
    for name in [wanted] if wanted else candidates:
        if name and name.lower() in lower:
            return lower[name.lower()]
    return None
