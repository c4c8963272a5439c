"""The coverage report of a stored set on a date: its units, posts and layers gathered, then :func:`coverage`.

The household norm is per set in the issue's words, but a set has no place for settings yet: it is a
parameter here (``norm``, default 300-500), which the CLI and the API pass through from their callers.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
from sqlalchemy.engine import Engine

from geogrid.coverage import DEFAULT_NORM, CoverageReport, Mask, coverage, parse_norm
from geogrid.db.layers import Layers
from geogrid.db.people import Roster
from geogrid.db.store import Store
from geogrid.hierarchy import Level


def inputs(
    engine: Engine, set_name: str, at: dt.date | None = None
) -> tuple[int, dict[str, gpd.GeoDataFrame], dict[str, gpd.GeoDataFrame | None]]:
    """The version in force on ``at``, its units by level, and the set's buildings, sites and roads."""
    store = Store(engine)
    number = store.version_at(set_name, at).number
    every = store.units(set_name, version=number)
    units = {lv.name: every[every["level"] == lv.name].reset_index(drop=True) for lv in Level}
    layers = Layers(engine)
    found: dict[str, gpd.GeoDataFrame | None] = {}
    for kind in ("buildings", "sites", "roads"):
        frame = layers.read(set_name, kind)
        found[kind] = frame if len(frame) else None
    return number, units, found


def coverage_of(
    engine: Engine,
    set_name: str,
    at: dt.date | None = None,
    *,
    norm: tuple[int, int] | str | None = None,
    minutes: float = 15.0,
    speed_kmh: float = 5.0,
    mask: Mask | None = None,
) -> CoverageReport:
    """The coverage report of ``set_name`` on ``at`` (default: today), from the version then in force.

    ``norm`` (households per grid, default 300-500) is the set's norm; ``mask`` is applied to every phone.
    """
    at = at or dt.date.today()
    _, units, layers = inputs(engine, set_name, at)
    posts = Roster(engine).posts(set_name, at)
    return coverage(
        units,
        posts,
        layers["buildings"],
        layers["sites"],
        layers["roads"],
        at=at,
        norm=parse_norm(norm) if norm is not None else DEFAULT_NORM,
        minutes=minutes,
        speed_kmh=speed_kmh,
        set_name=set_name,
        mask=mask,
    )
