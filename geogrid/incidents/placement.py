"""Where is this incident? Its micro-grid from coordinates or an address, and what to flag about it.

Coordinates (already in WGS-84) go through the index of the version in force **when the incident was
reported**; an address text goes through the matcher. When both are given and the matched building is
further than ``disagree_m`` from the point, the incident is flagged ``address_disagrees`` (the point wins:
a phone's GPS beats a caller's memory); a point within ``near_m`` of a micro-grid boundary is flagged
``near_boundary``. With neither usable the incident goes to the manual-placement queue (``placed_by``
``queue``); a point outside the county is refused or queued, as the caller says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geogrid.addresses.matcher import Match
from geogrid.errors import InvalidCoordinates
from geogrid.index import GridIndex

LEVELS = ("street", "community", "grid")
M_PER_DEG = 111_195.0


@dataclass(frozen=True)
class Placement:
    """Where an incident was put, by what, in which version, and what a person should check."""

    placed_by: str  # coordinates | address | queue
    lon: float | None = None
    lat: float | None = None
    version_number: int | None = None
    microgrid: str | None = None
    units: dict[str, str] = field(default_factory=dict)  # street, community, grid → code
    address_id: str | None = None
    address_confidence: float | None = None
    flags: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, the units flattened (street, community, grid)."""
        units = self.units
        return {
            "placed_by": self.placed_by, "lon": self.lon, "lat": self.lat, "version_number": self.version_number,
            "microgrid": self.microgrid, "street": units.get("street"), "community": units.get("community"),
            "grid": units.get("grid"), "address_id": self.address_id, "address_confidence": self.address_confidence,
            "flags": list(self.flags), "reason": self.reason,
        }  # fmt: skip


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two WGS-84 (lon, lat) points (haversine)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


@dataclass
class Placed:
    """Where many incidents were put, column by column (what a :class:`Placement` holds, without an object a
    row), and the ones refused (position → error)."""

    placed_by: list[str | None]
    lon: list[float | None]
    lat: list[float | None]
    version_number: list[int | None]
    microgrid: list[str | None]
    street: list[str | None]
    community: list[str | None]
    grid: list[str | None]
    address_id: list[str | None]
    address_confidence: list[float | None]
    flags: list[tuple[str, ...]]
    reason: list[str]
    errors: dict[int, Exception] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int) -> Placed:
        """``n`` places not filled in yet."""
        values: dict[str, list[Any]] = {name: [None] * n for name in COLUMNS}
        return cls(**values | {"flags": [()] * n, "reason": [""] * n})  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.placed_by)

    def put(self, rows: Sequence[int], part: Placed) -> None:
        """Fill positions ``rows`` (ascending) with ``part``'s places and errors, in order."""
        for name in COLUMNS:
            mine, theirs = getattr(self, name), getattr(part, name)
            if len(rows) == len(mine):  # all of them: ascending, so 0 … n-1
                setattr(self, name, list(theirs))
                continue
            for at, value in zip(rows, theirs, strict=True):
                mine[at] = value
        self.errors.update({rows[k]: e for k, e in part.errors.items()})

    def take(self, rows: Sequence[int]) -> Placed:
        """Positions ``rows``, in that order (not refused ones)."""
        values: dict[str, list[Any]] = {name: [getattr(self, name)[i] for i in rows] for name in COLUMNS}
        return Placed(**values)  # type: ignore[arg-type]  # every column but the errors

    def placement(self, i: int) -> Placement:
        """Position ``i`` as a Placement (not for a refused one)."""
        units = {
            k: v for k, v in zip(LEVELS, (self.street[i], self.community[i], self.grid[i]), strict=True) if v
        }
        return Placement(
            self.placed_by[i], self.lon[i], self.lat[i], self.version_number[i], self.microgrid[i], units,  # type: ignore[arg-type]
            self.address_id[i], self.address_confidence[i], self.flags[i], self.reason[i],
        )  # fmt: skip

    def items(self) -> list[Placement | Exception]:
        """Each position's Placement, or its error."""
        return [self.errors[i] if i in self.errors else self.placement(i) for i in range(len(self))]


COLUMNS = [name for name in Placed.__dataclass_fields__ if name != "errors"]


def place_many(
    index: GridIndex,
    lon: np.ndarray,
    lat: np.ndarray,
    matches: Sequence[Match | None],
    *,
    disagree_m: float = 200.0,
    near_m: float = 20.0,
    outside: str = "refuse",
) -> list[Placement | InvalidCoordinates]:
    """:func:`place_columns`, each incident's Placement (or its InvalidCoordinates) in its place."""
    return place_columns(  # type: ignore[return-value]  # place_columns refuses with InvalidCoordinates only
        index, lon, lat, matches, disagree_m=disagree_m, near_m=near_m, outside=outside
    ).items()


def place_columns(
    index: GridIndex,
    lon: np.ndarray,
    lat: np.ndarray,
    matches: Sequence[Match | None],
    *,
    disagree_m: float = 200.0,
    near_m: float = 20.0,
    outside: str = "refuse",
) -> Placed:
    """Place incidents of one version at once (WGS-84 arrays, NaN where no point) from their points and/or
    address matches; ``outside`` (refuse | queue) says what a point outside every micro-grid gets (refused:
    an InvalidCoordinates among the errors)."""
    n = len(lon)
    matched = [m if m is not None and m.placed and m.best is not None else None for m in matches]
    has_point = ~np.isnan(lon)
    # where an address alone places the incident, its building's point is located instead
    px, py = lon.copy(), lat.copy()
    by_address = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(~has_point).tolist():
        best = matched[i].best if matched[i] is not None else None  # type: ignore[union-attr]
        if best is not None:
            px[i], py[i], by_address[i] = best.lon, best.lat, True
    located = has_point | by_address
    rank = np.full(n, -1, dtype=np.int64)
    on = np.zeros(n, dtype=bool)
    if located.any():
        found = index.assign(px[located], py[located])
        rank[located], on[located] = found.rank, found.on_boundary
    codes = index.codes_of(rank).tolist()
    version = index.meta.get("version")
    # read per incident from Python lists: a numpy scalar costs more to read than the work done with it
    levels = {k: v.tolist() for k, v in index.ancestors(rank).items() if k in LEVELS}
    none = [None] * n
    streets, communities, grids = (levels.get(k, none) for k in LEVELS)
    near = index.distances_to_boundary(rank, px, py).tolist()
    lons, lats, points = lon.tolist(), lat.tolist(), has_point.tolist()
    ranks, ons = rank.tolist(), on.tolist()
    out = Placed.empty(n)
    placed_by, xs, ys, microgrid = out.placed_by, out.lon, out.lat, out.microgrid
    street, community, grid, address_id = out.street, out.community, out.grid, out.address_id
    confidence, flagged, reasons = out.address_confidence, out.flags, out.reason
    out.version_number = [version] * n

    def units(i: int) -> None:
        microgrid[i] = str(codes[i])
        street[i], community[i], grid[i] = (
            str(v[i]) if v[i] else None for v in (streets, communities, grids)
        )

    for i in range(n):
        flags: list[str] = []
        m = matched[i]
        if matches[i] is not None and m is None:
            flags.append("address_unsure")
        point = points[i]
        if point and ranks[i] >= 0:
            if ons[i] or near[i] < near_m:
                flags.append("near_boundary")
            if m is not None and m.best is not None:
                if metres((lons[i], lats[i]), (m.best.lon, m.best.lat)) > disagree_m:
                    flags.append("address_disagrees")
                address_id[i], confidence[i] = m.best.address_id or None, m.confidence
            placed_by[i], xs[i], ys[i], flagged[i] = "coordinates", lons[i], lats[i], tuple(flags)
            units(i)
            continue
        if point:
            if outside == "refuse":
                out.errors[i] = InvalidCoordinates(
                    f"({lons[i]:.6f}, {lats[i]:.6f}) is outside every micro-grid of the county",
                    field="coordinates",
                )
                continue
            flags.append("outside")
        elif m is not None and m.best is not None:
            if ranks[i] >= 0:
                if near[i] < near_m:
                    flags.append("near_boundary")
                best = m.best
                placed_by[i], xs[i], ys[i], flagged[i] = "address", best.lon, best.lat, tuple(flags)
                address_id[i], confidence[i] = best.address_id or None, m.confidence
                units(i)
                continue
            flags.append("outside")
        placed_by[i], flagged[i], reasons[i] = "queue", tuple(flags), _queue_reason(flags)
        if point:
            xs[i], ys[i] = lons[i], lats[i]
    return out


def _queue_reason(flags: Sequence[str]) -> str:
    """Why an incident went to the manual-placement queue."""
    if "outside" in flags:
        return "the point is outside the county"
    if "address_unsure" in flags:
        return "the address is not sure enough"
    return "no coordinates and no address"
