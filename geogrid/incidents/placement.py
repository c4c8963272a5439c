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
from dataclasses import dataclass, field
from typing import Any

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
        out = {k: getattr(self, k) for k in ("placed_by", "lon", "lat", "version_number", "microgrid")}
        out |= {level: self.units.get(level) for level in LEVELS}
        out |= {"address_id": self.address_id, "address_confidence": self.address_confidence}
        return out | {"flags": list(self.flags), "reason": self.reason}


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two WGS-84 (lon, lat) points (haversine)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


def place(
    index: GridIndex,
    point: tuple[float, float] | None,
    match: Match | None,
    *,
    disagree_m: float = 200.0,
    near_m: float = 20.0,
    outside: str = "refuse",
) -> Placement:
    """Place an incident with ``index`` (the version in force at its report) from a WGS-84 point and/or
    an address match; ``outside`` (refuse | queue) says what a point outside every micro-grid gets."""
    flags: list[str] = []
    version = index.meta.get("version")
    matched = match if match is not None and match.placed and match.best is not None else None
    if match is not None and matched is None:
        flags.append("address_unsure")
    if point is not None:
        found = index.lookup(*point)
        if found.unit is None:
            if outside == "refuse":
                raise InvalidCoordinates(
                    f"({point[0]:.6f}, {point[1]:.6f}) is outside every micro-grid of the county"
                    + (
                        f" ({found.nearest_distance_m:,.0f} m from the nearest)"
                        if found.nearest_distance_m
                        else ""
                    ),
                    field="coordinates",
                )
            flags.append("outside")
        else:
            if found.on_boundary or (found.distance_to_boundary_m or 0.0) < near_m:
                flags.append("near_boundary")
            extra: dict[str, Any] = {}
            if matched is not None and matched.best is not None:
                apart = metres(point, (matched.best.lon, matched.best.lat))
                if apart > disagree_m:
                    flags.append("address_disagrees")
                extra = {
                    "address_id": matched.best.address_id or None,
                    "address_confidence": matched.confidence,
                }
            return Placement(
                "coordinates",
                found.lon,
                found.lat,
                version,
                found.code,
                {k: u.code for k, u in found.parents.items() if k in LEVELS},
                flags=tuple(flags),
                **extra,
            )
    if matched is not None and matched.best is not None:
        best = matched.best
        found = index.lookup(best.lon, best.lat)
        if found.unit is not None:
            if (found.distance_to_boundary_m or 0.0) < near_m:
                flags.append("near_boundary")
            return Placement(
                "address",
                best.lon,
                best.lat,
                version,
                found.code,
                {k: u.code for k, u in found.parents.items() if k in LEVELS},
                best.address_id or None,
                matched.confidence,
                tuple(flags),
            )
        flags.append("outside")
    reason = (
        "the point is outside the county"
        if "outside" in flags
        else "the address is not sure enough"
        if "address_unsure" in flags
        else "no coordinates and no address"
    )
    return Placement(
        "queue",
        point[0] if point else None,
        point[1] if point else None,
        version,
        flags=tuple(flags),
        reason=reason,
    )
