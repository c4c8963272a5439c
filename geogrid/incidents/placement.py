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
    """Place incidents of one version at once (WGS-84 arrays, NaN where no point) from their points and/or
    address matches; ``outside`` (refuse | queue) says what a point outside every micro-grid gets (refused:
    its InvalidCoordinates in its place)."""
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
    levels = [(k, v.tolist()) for k, v in index.ancestors(rank).items() if k in LEVELS]
    near = index.distances_to_boundary(rank, px, py).tolist()
    lons, lats, points = lon.tolist(), lat.tolist(), has_point.tolist()
    ranks, ons = rank.tolist(), on.tolist()
    out: list[Placement | InvalidCoordinates] = []
    for i in range(n):
        flags: list[str] = []
        m = matched[i]
        if matches[i] is not None and m is None:
            flags.append("address_unsure")
        units = {k: str(v[i]) for k, v in levels if v[i]}
        point = (lons[i], lats[i]) if points[i] else None
        if point is not None and ranks[i] >= 0:
            if ons[i] or near[i] < near_m:
                flags.append("near_boundary")
            extra: dict[str, Any] = {}
            if m is not None and m.best is not None:
                if metres(point, (m.best.lon, m.best.lat)) > disagree_m:
                    flags.append("address_disagrees")
                extra = {"address_id": m.best.address_id or None, "address_confidence": m.confidence}
            out.append(
                Placement("coordinates", *point, version, str(codes[i]), units, flags=tuple(flags), **extra)
            )
            continue
        if point is not None:
            if outside == "refuse":
                out.append(
                    InvalidCoordinates(
                        f"({point[0]:.6f}, {point[1]:.6f}) is outside every micro-grid of the county",
                        field="coordinates",
                    )
                )
                continue
            flags.append("outside")
        elif m is not None and m.best is not None:
            if ranks[i] >= 0:
                if near[i] < near_m:
                    flags.append("near_boundary")
                best = m.best
                out.append(Placement("address", best.lon, best.lat, version, str(codes[i]), units,
                                     best.address_id or None, m.confidence, tuple(flags)))  # fmt: skip
                continue
            flags.append("outside")
        reason = _queue_reason(flags)
        out.append(Placement("queue", point[0] if point else None, point[1] if point else None, version,
                             flags=tuple(flags), reason=reason))  # fmt: skip
    return out


def _queue_reason(flags: Sequence[str]) -> str:
    """Why an incident went to the manual-placement queue."""
    if "outside" in flags:
        return "the point is outside the county"
    if "address_unsure" in flags:
        return "the address is not sure enough"
    return "no coordinates and no address"
