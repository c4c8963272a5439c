"""Is this a coordinate? lon/lat values as sent, read as numbers, and what is wrong with those that are not.

One vocabulary for the CLI (``geogrid assign``) and the API (``/v1/lookup``): a coordinate is an ASCII
decimal number (``float()`` would also take ``1_11.2``, ``NaN``, ``1e400`` and other scripts' digits),
finite and, in a geographic CRS, in range; every refusal names the field, and says when lon and lat look
swapped.

>>> problem(math.nan, 39.9, "east", "39.9")
"lon is not a number: 'east'"
>>> problem(39.9, 116.4, "39.9", "116.4")
'lat 116.4 is outside -90..90; lon and lat look swapped (lon comes first)'
"""

from __future__ import annotations

import math
import re
from typing import Any

from geogrid.errors import cut

DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def echo(value: Any) -> str:
    """``value`` as an answer repeats it: its repr, cut to about 200 characters."""
    return cut(repr(value))


def as_number(value: Any) -> float:
    """A JSON number, or text that is an ASCII decimal, as a float; NaN for anything else (booleans too)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return math.nan
    try:
        return float(value) if not isinstance(value, str) or DECIMAL.fullmatch(value.strip()) else math.nan
    except (ValueError, OverflowError):
        return math.nan


def out_of_range(lon: float, lat: float, names: tuple[str, str] = ("lon", "lat")) -> str:
    """Why a lon/lat pair is out of range, with a hint when the two look swapped."""
    name, value, limit = (names[0], lon, 180) if abs(lon) > 180 else (names[1], lat, 90)
    swapped = abs(lon) <= 90 < abs(lat) <= 180
    hint = f"; {names[0]} and {names[1]} look swapped ({names[0]} comes first)" if swapped else ""
    return f"{name} {value:.12g} is outside -{limit}..{limit}{hint}"


def problem(x: float, y: float, sent_x: Any, sent_y: Any, names: tuple[str, str] = ("lon", "lat")) -> str:
    """What is wrong with a point read as ``x, y`` from ``sent_x, sent_y`` (NaN: not read), naming the
    field; the range of a geographic CRS when both were read."""
    for name, number, value in ((names[0], x, sent_x), (names[1], y, sent_y)):
        if math.isfinite(number):
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
            return f"{name} is missing"
        if isinstance(value, bool):
            return f"{name} is {str(value).lower()}, a boolean; a coordinate is a number"
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return f"{name} is not a number: {echo(value)}"
        if not math.isfinite(number):
            return f"{name} is not a finite number: {echo(value)}"
        return f"{name} is not a plain decimal number: {echo(value)}"  # 1_11.2, other scripts' digits
    return out_of_range(x, y, names)
