"""Does this layer tile its parent? Gaps, overlaps, slivers, invalid rings, units outside their parent.

"No gaps, full coverage, no overlaps, clear boundaries" (无缝隙、全覆盖、无空当、不交叉、边界清楚) as a
report a planner can read and open in QGIS. All areas and widths are measured in a local metric CRS.

>>> import geopandas as gpd, shapely
>>> units = gpd.GeoDataFrame({"code": ["a", "b"]},
...     geometry=[shapely.box(111.2, 39.85, 111.201, 39.851), shapely.box(111.2005, 39.85, 111.202, 39.851)],
...     crs=4326)
>>> report = check(units)
>>> report.problems[["kind", "codes"]].to_dict("records")
[{'kind': 'overlap', 'codes': ['a', 'b']}]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geogrid import deadline
from geogrid.crs import local_metric_crs

KINDS = (
    "invalid",
    "gap",
    "overlap",
    "outside_parent",
    "sliver",
    "multipart",
    "hole",
    "duplicate_code",
    "wrong_parent",
)
INFO_KINDS = frozenset({"multipart"})  # reported, but legitimate (islands): they block no publish by default
TOLERANCE_M = 1.0  # gaps and overlaps thinner than this are digitising slivers, reported apart
MIN_AREA_M2 = 0.1  # below this an area is noise (floating point, reprojection), not a problem


@dataclass
class CheckReport:
    """The problems found (one row each: kind, codes, area_m2, detail, geometry) and a summary."""

    problems: gpd.GeoDataFrame
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        """True when nothing at all was found."""
        return self.problems.empty

    @property
    def faults(self) -> gpd.GeoDataFrame:
        """The problems that are faults: all but the information kinds (:data:`INFO_KINDS`)."""
        return self.problems[~self.problems["kind"].isin(INFO_KINDS)]

    def to_file(self, path: str | Path) -> Path:
        """Write the problems as a layer a planner opens in QGIS (GeoJSON or GeoPackage, WGS-84)."""
        out = self.problems.copy()
        out["codes"] = out["codes"].map(lambda c: ",".join(c))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        if out.empty and path.suffix.lower() in (".geojson", ".json"):
            path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
        elif out.empty:  # GDAL cannot infer a layer from nothing: give it the field and geometry types
            out = out.astype({"kind": str, "codes": str, "area_m2": float, "detail": str})
            shp = path.suffix.lower() in (".shp", ".zip")
            out.to_file(path, engine="pyogrio", geometry_type="Polygon" if shp else "Unknown")
        else:
            out.to_file(path)
        return path


def check(
    units: gpd.GeoDataFrame,
    parent: gpd.GeoDataFrame | None = None,
    *,
    tolerance_m: float = TOLERANCE_M,
    min_area_m2: float = MIN_AREA_M2,
) -> CheckReport:
    """Check that ``units`` (a ``code`` column, polygons) tile ``parent`` (or, without one, each other).

    Finds invalid geometries, gaps, overlaps (per pair), parts outside the parent, slivers (gaps and
    overlaps thinner than ``tolerance_m``), units in several parts, holes, duplicate codes, and units
    whose code names a parent they do not lie in. Areas under ``min_area_m2`` are ignored as noise.
    Units in several parts (``multipart``, kinds in :data:`INFO_KINDS`) are information, not faults.
    """
    # Overlays run in WGS-84, where the units were drawn and their shared vertices coincide exactly (a
    # projection bends straight edges, so vertices that lie on an edge would stop doing so); each piece
    # found is then measured in a local metric CRS.
    frame = units.to_crs(4326) if units.crs is not None else units.set_crs(4326)
    center = shapely.centroid(
        shapely.envelope(shapely.union_all(shapely.envelope(frame.geometry.to_numpy())))
    )
    metric = local_metric_crs(center.x, center.y)
    project = Transformer.from_crs(4326, metric, always_xy=True)

    def to_m(geom: Any) -> Any:
        return shapely.transform(geom, lambda xy: np.column_stack(project.transform(xy[:, 0], xy[:, 1])))

    def area(geom: Any) -> float:
        return float(shapely.area(to_m(geom)))

    codes = frame["code"].astype(str).to_numpy()
    geoms = frame.geometry.to_numpy()
    rows: list[dict[str, Any]] = []

    def add(kind: str, involved: list[str], geom: Any, detail: str = "") -> None:
        rows.append(
            {
                "kind": kind,
                "codes": sorted(set(involved)),
                "area_m2": area(geom),
                "detail": detail,
                "geometry": geom,
            }
        )

    def thin(geom: Any) -> bool:
        return bool(shapely.is_empty(shapely.buffer(to_m(geom), -tolerance_m / 2)))

    # duplicates, validity, parts, holes: unit by unit
    values, counts = np.unique(codes, return_counts=True)
    for code in values[counts > 1]:
        add(
            "duplicate_code",
            [code],
            shapely.union_all(geoms[codes == code]),
            f"{int((codes == code).sum())} units",
        )
    usable = geoms.copy()
    simple = (
        shapely.is_valid(geoms)
        & (shapely.get_num_geometries(geoms) == 1)
        & (shapely.get_num_interior_rings(shapely.get_geometry(geoms, 0)) == 0)
    )
    simple &= gpd.GeoSeries(geoms, crs=4326).to_crs(metric).area.to_numpy() > min_area_m2
    for i, (code, geom) in enumerate(zip(codes, geoms, strict=True)):
        if simple[i]:  # valid, one part, no hole, not degenerate: nothing to look at
            continue
        deadline.check()
        reason = shapely.is_valid_reason(geom)
        if geom is None or shapely.is_empty(geom):
            add("invalid", [code], shapely.Polygon(), "empty geometry")
            usable[i] = shapely.Polygon()
            continue
        if reason != "Valid Geometry":
            add("invalid", [code], geom, reason)
            usable[i] = polygonal(shapely.make_valid(geom))
        parts = [p for p in shapely.get_parts(polygonal(usable[i])) if area(p) > min_area_m2]
        degenerate = [p for p in shapely.get_parts(polygonal(usable[i])) if area(p) <= min_area_m2]
        if degenerate and reason == "Valid Geometry":
            add("invalid", [code], shapely.union_all(degenerate), f"{len(degenerate)} degenerate part(s)")
        if len(parts) > 1:
            ordered = sorted(parts, key=area, reverse=True)
            add("multipart", [code], shapely.union_all(ordered[1:]), f"{len(parts)} parts")
        for part in parts:
            for ring in shapely.get_interior_ring(part, range(shapely.get_num_interior_rings(part))):
                hole = shapely.Polygon(ring)
                if area(hole) > min_area_m2:
                    add("hole", [code], hole)

    # overlaps, pair by pair
    tree = shapely.STRtree(usable)
    left, right = tree.query(usable, predicate="intersects")
    pairs = left < right
    for i, j in zip(left[pairs].tolist(), right[pairs].tolist(), strict=True):
        deadline.check()
        shared = polygonal(shapely.intersection(usable[i], usable[j]))
        for piece in shapely.get_parts(shared):
            if area(piece) > min_area_m2:
                add(
                    "sliver" if thin(piece) else "overlap",
                    [codes[i], codes[j]],
                    piece,
                    "overlap" if thin(piece) else "",
                )

    # gaps, and units outside (or in the wrong part of) their parent
    covered = shapely.union_all(usable)
    parent_area = None
    if parent is not None and len(parent):
        pframe = parent.to_crs(4326) if parent.crs is not None else parent.set_crs(4326)
        pcodes = pframe["code"].astype(str).to_numpy()
        pgeoms = np.array(
            [polygonal(shapely.make_valid(g)) for g in pframe.geometry.to_numpy()], dtype=object
        )
        whole = shapely.union_all(pgeoms)
        parent_area = area(whole)
        gaps = polygonal(shapely.difference(whole, covered))
        by_code = dict(zip(pcodes, pgeoms, strict=True))
        plen = len(pcodes[0]) if len(pcodes) else 0
        # Codes link units to parents only where they follow the hierarchy (a parent's code prefixes its units').
        by_prefix = any(code[:plen] in by_code for code in codes)
        shapely.prepare(whole)
        # Only units not plainly inside are measured: the vectorised predicates skip the rest.
        for i in np.flatnonzero(~shapely.covered_by(usable, whole)).tolist():
            for piece in shapely.get_parts(polygonal(shapely.difference(usable[i], whole))):
                if area(piece) > min_area_m2:
                    add(
                        "sliver" if thin(piece) else "outside_parent",
                        [codes[i]],
                        piece,
                        "outside the parent" if thin(piece) else "",
                    )
        if by_prefix:
            named = np.array([by_code.get(code[:plen]) for code in codes], dtype=object)
            for i in np.flatnonzero(shapely.is_missing(named)).tolist():
                add(
                    "wrong_parent",
                    [codes[i]],
                    usable[i],
                    f"its code names {codes[i][:plen]}, which does not exist",
                )
            have = ~shapely.is_missing(named)
            loose = np.flatnonzero(have)[~shapely.covered_by(usable[have], named[have])]
            ptree = shapely.STRtree(pgeoms)
            for i in loose.tolist():
                code = codes[i]
                astray = polygonal(shapely.intersection(shapely.difference(usable[i], named[i]), whole))
                for piece in shapely.get_parts(astray):
                    if area(piece) > min_area_m2:
                        others = [
                            str(pcodes[k])
                            for k in ptree.query(piece, predicate="intersects")
                            if pcodes[k] != code[:plen]
                        ]
                        add(
                            "sliver" if thin(piece) else "wrong_parent",
                            [code, *others],
                            piece,
                            f"lies in {', '.join(others) or 'another parent'}, not {code[:plen]}",
                        )
    else:
        gaps = enclosed(covered)
    for piece in shapely.get_parts(polygonal(gaps)):
        if area(piece) > min_area_m2:
            near = tree.query(shapely.buffer(piece, max(tolerance_m, 0.01) / 111_000), predicate="intersects")
            add(
                "sliver" if thin(piece) else "gap",
                [str(codes[k]) for k in near],
                piece,
                "gap" if thin(piece) else "",
            )

    problems = gpd.GeoDataFrame(
        rows, columns=["kind", "codes", "area_m2", "detail", "geometry"], geometry="geometry", crs=4326
    )
    summary = _summary(problems, len(codes), area(covered), parent_area)
    return CheckReport(problems, summary)


def enclosed(covered: Any) -> Any:
    """The holes of a union of units: land enclosed by units yet covered by none (gaps without a parent)."""
    return shapely.union_all(
        [
            shapely.Polygon(ring)
            for part in shapely.get_parts(polygonal(covered))
            for ring in shapely.get_interior_ring(part, range(shapely.get_num_interior_rings(part)))
        ]
    )


def polygonal(geom: Any) -> Any:
    """The polygonal part of any geometry (empty polygon if none)."""
    if geom is None:
        return shapely.Polygon()
    parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (3, 6)]
    flat = [q for p in parts for q in shapely.get_parts(p)]
    return shapely.MultiPolygon(flat) if len(flat) > 1 else (flat[0] if flat else shapely.Polygon())


def _summary(
    problems: gpd.GeoDataFrame, n_units: int, covered_m2: float, parent_m2: float | None
) -> dict[str, Any]:
    by_kind = problems.groupby("kind")["area_m2"].agg(["count", "sum"]) if len(problems) else pd.DataFrame()
    out: dict[str, Any] = {
        "units": n_units,
        "problems": len(problems),
        "count": {k: int(by_kind.loc[k, "count"]) if k in by_kind.index else 0 for k in KINDS},
        "information": sorted(INFO_KINDS),  # kinds that are reported, not faults (a unit with islands)
        "area_m2": {k: round(float(by_kind.loc[k, "sum"]), 3) if k in by_kind.index else 0.0 for k in KINDS},
        "covered_m2": round(covered_m2, 3),
    }
    if parent_m2:
        gap_m2 = (
            float(problems.loc[problems["kind"].isin(["gap"]), "area_m2"].sum()) if len(problems) else 0.0
        )
        sliver_gaps = (
            problems[(problems["kind"] == "sliver") & (problems["detail"] == "gap")]
            if len(problems)
            else problems
        )
        gap_m2 += float(sliver_gaps["area_m2"].sum()) if len(sliver_gaps) else 0.0
        out["parent_m2"] = round(parent_m2, 3)
        out["covered_share"] = round(1.0 - gap_m2 / parent_m2, 6)
    return out
