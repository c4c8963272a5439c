"""Repair a layer with the least change, logging every square metre moved; gaps too large are left over.

Builds on :mod:`geogrid.topology.checks`: the slivers ``check`` finds say which units to snap, and
``polygonal`` and ``enclosed`` shape the pieces moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geogrid.crs import local_metric_crs
from geogrid.topology.checks import MIN_AREA_M2, TOLERANCE_M, check, enclosed, polygonal


@dataclass
class RepairResult:
    """Repaired units, the change log (one row per area moved) and the gaps left for the planner."""

    units: gpd.GeoDataFrame
    changes: pd.DataFrame  # code, other, action, area_m2: `code` gained (+) or lost (-) area to/from `other`
    unassigned: gpd.GeoDataFrame

    def balance(self) -> pd.DataFrame:
        """Area gained and lost per unit, in m²."""
        c = self.changes
        gained = c[c["area_m2"] > 0].groupby("code")["area_m2"].sum()
        lost = -c[c["area_m2"] < 0].groupby("code")["area_m2"].sum()
        return pd.DataFrame({"gained_m2": gained, "lost_m2": lost}).fillna(0.0)


def _free_code(code: str, taken: set[str]) -> str | None:
    """A DB11 code for a repeat of ``code``: the next free 3-digit suffix under the same parent.

    None when ``code`` is no DB11 code below county level (a county's code is an administrative code
    that cannot be invented), or when its parent has no suffix left.
    """
    if not code.isdigit() or len(code) not in (9, 12, 15, 18):
        return None
    parent, used = code[:-3], {int(c[-3:]) for c in taken if len(c) == len(code) and c[:-3] == code[:-3]}
    after = list(range(max(used, default=0) + 1, 1000))
    free = after or [n for n in range(1, 1000) if n not in used]
    return f"{parent}{free[0]:03d}" if free else None


def repair(
    units: gpd.GeoDataFrame,
    parent: gpd.GeoDataFrame | None = None,
    *,
    tolerance_m: float = TOLERANCE_M,
    max_fill_m2: float = 500.0,
    priority: dict[str, int] | None = None,
    min_area_m2: float = MIN_AREA_M2,
) -> RepairResult:
    """Repair a layer with the least change, logging every square metre moved.

    In order: a repeated code becomes the next free DB11 code under the same parent (logged as
    ``renamed_duplicate``, new code first); geometries are made valid; vertices within ``tolerance_m`` of
    a neighbour's edge are snapped onto it; units are clipped to the parent;
    each overlap goes to one unit (the higher ``priority``, else the unit whose remainder shares the
    longer border with it); parts the repair cut off a unit (by clipping, ceding an overlap or making a
    ring valid), parts thinner than ``tolerance_m``, slivers and gaps up to ``max_fill_m2`` go to the
    neighbour with the longest shared edge, as does a gap of any size enclosed by a single unit; larger
    gaps between several units are returned as ``unassigned`` for the planner. The parts a unit was
    drawn with (islands, exclaves) are legitimate and stay with it (issue 10 item 23).
    """
    frame = (units.to_crs(4326) if units.crs is not None else units.set_crs(4326)).reset_index(drop=True)
    x0, y0, x1, y1 = shapely.total_bounds(frame.geometry.to_numpy())
    project = Transformer.from_crs(4326, local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2), always_xy=True)

    def to_m(geom: Any) -> Any:
        return shapely.transform(geom, lambda xy: np.column_stack(project.transform(xy[:, 0], xy[:, 1])))

    def area(geom: Any) -> float:
        return float(shapely.area(to_m(geom)))

    def border(a: Any, b: Any) -> float:
        return float(shapely.length(to_m(shapely.intersection(shapely.boundary(a), shapely.boundary(b)))))

    log: list[tuple[str, str, str, float]] = []
    codes = frame["code"].astype(str).tolist()
    seen: dict[str, int] = {}
    taken = set(codes)
    for i, code in enumerate(codes):
        seen[code] = seen.get(code, 0) + 1
        if seen[code] > 1:
            codes[i] = _free_code(code, taken) or f"{code}-{seen[code]}"
            taken.add(codes[i])
            log.append((codes[i], code, "renamed_duplicate", 0.0))
    geoms = [shapely.Polygon() if g is None else g for g in frame.geometry.to_numpy()]
    # The parts each unit was drawn with: its islands are legitimate and stay with it (issue 10 item 23).
    # An invalid ring (a bow-tie) was drawn as one area, whatever make_valid cuts it into.
    drawn = [list(shapely.get_parts(g)) if shapely.is_valid(g) else [g] for g in geoms]
    for i, geom in enumerate(geoms):
        if not shapely.is_valid(geom):
            fixed = polygonal(shapely.make_valid(geom))
            log.append((codes[i], "", "made_valid", area(fixed) - area(geom)))
            geoms[i] = fixed
    # Snap the vertices of units beside a sliver onto their neighbours' edges (digitising noise), where
    # that leaves no new overlap; clean edges elsewhere are never touched.
    tol_deg = tolerance_m / (111_320.0 * max(np.cos(np.radians((y0 + y1) / 2)), 0.05))
    first = check(
        gpd.GeoDataFrame({"code": codes}, geometry=geoms, crs=4326),
        parent,
        tolerance_m=tolerance_m,
        min_area_m2=min_area_m2,
    )
    beside_slivers = {c for cs in first.problems.loc[first.problems["kind"] == "sliver", "codes"] for c in cs}
    tree = shapely.STRtree(np.array(geoms, dtype=object))
    for i in [k for k, c in enumerate(codes) if c in beside_slivers]:
        near = [k for k in tree.query(shapely.buffer(geoms[i], tol_deg), predicate="intersects") if k != i]
        if not near:
            continue
        snapped = polygonal(
            shapely.make_valid(
                shapely.snap(geoms[i], shapely.union_all([shapely.boundary(geoms[k]) for k in near]), tol_deg)
            )
        )
        overlap_before = sum(area(shapely.intersection(geoms[i], geoms[k])) for k in near)
        overlap_after = sum(area(shapely.intersection(snapped, geoms[k])) for k in near)
        if shapely.is_valid(snapped) and overlap_after <= overlap_before + min_area_m2:
            change = area(snapped) - area(geoms[i])
            if abs(change) > min_area_m2:
                log.append((codes[i], "", "snapped", change))
                geoms[i] = snapped
    whole = None
    home: dict[str, Any] = {}  # unit code -> the parent geometry its code names
    if parent is not None and len(parent):
        pframe = parent.to_crs(4326) if parent.crs is not None else parent.set_crs(4326)
        pgeoms = [polygonal(shapely.make_valid(g)) for g in pframe.geometry.to_numpy()]
        whole = shapely.union_all(pgeoms)
        pcodes = pframe["code"].astype(str).tolist()
        plen = len(pcodes[0]) if pcodes else 0
        by_code = dict(zip(pcodes, pgeoms, strict=True))
        by_prefix = any(c[:plen] in by_code for c in codes)
        if by_prefix:
            home = {c: by_code[c[:plen]] for c in codes if c[:plen] in by_code}
        for i, geom in enumerate(geoms):
            # each unit is clipped to the parent its code names (or, without such codes, to them all)
            target = by_code.get(codes[i][:plen], whole) if by_prefix else whole
            inside = polygonal(shapely.intersection(geom, target))
            cut = area(geom) - area(inside)
            if cut > min_area_m2:
                log.append((codes[i], "outside its parent", "clipped", -cut))
                geoms[i] = inside
    rank = {c: (-(priority or {}).get(c, 0)) for c in codes}
    for _pass in range(3):  # an overlap resolved can reveal none new; three passes settle chains
        tree = shapely.STRtree(np.array(geoms, dtype=object))
        left, right = tree.query(np.array(geoms, dtype=object), predicate="intersects")
        moved = False
        for i, j in zip(left.tolist(), right.tolist(), strict=True):
            if i >= j:
                continue
            piece = polygonal(shapely.intersection(geoms[i], geoms[j]))
            size = area(piece)
            if size <= min_area_m2:
                continue
            keep_i = (rank[codes[i]], -border(piece, shapely.difference(geoms[i], piece)), codes[i]) < (
                rank[codes[j]],
                -border(piece, shapely.difference(geoms[j], piece)),
                codes[j],
            )
            winner, loser = (i, j) if keep_i else (j, i)
            geoms[loser] = polygonal(shapely.difference(geoms[loser], piece))
            log.append((codes[loser], codes[winner], "ceded_overlap", -size))
            log.append((codes[winner], codes[loser], "kept_overlap", size))
            moved = True
        if not moved:
            break
    unassigned: list[Any] = []

    def neighbours(piece: Any, exclude: int) -> dict[int, float]:
        """Units sharing an edge with ``piece``, and the length shared, in metres."""
        tree = shapely.STRtree(np.array(geoms, dtype=object))
        near = [k for k in tree.query(shapely.buffer(piece, 1e-9), predicate="intersects") if k != exclude]
        lengths = {k: border(piece, geoms[k]) for k in near}
        return {k: v for k, v in lengths.items() if v > 0}

    def give(piece: Any, exclude: int, action: str, source: str) -> bool:
        """Add ``piece`` to the neighbour sharing the longest edge with it, within the same parent; False if
        there is none."""
        lengths = neighbours(piece, exclude)
        if home:
            inside = shapely.point_on_surface(piece)
            lengths = {k: v for k, v in lengths.items() if codes[k] in home and home[codes[k]].covers(inside)}
        best = max(sorted(lengths), key=lambda k: lengths[k]) if lengths else None
        if best is None:
            return False
        geoms[best] = polygonal(shapely.union(geoms[best], piece))
        log.append((codes[best], source, action, area(piece)))
        return True

    def sliver(piece: Any) -> bool:
        """True when ``piece`` is thinner than ``tolerance_m`` everywhere (digitising noise)."""
        return bool(shapely.is_empty(shapely.buffer(to_m(piece), -tolerance_m / 2)))

    def split_parts(i: int) -> tuple[list[Any], list[Any]]:
        """The parts of unit ``i`` it keeps, and the stray ones: made by the repair, or slivers.

        The largest part stays, and so does what is left of each part the unit was drawn with (an
        island, an exclave): a unit in several parts is legitimate. A part cut off by clipping, by an
        overlap ceded or by making a ring valid is stray, as is any part thinner than ``tolerance_m``.
        """
        parts = sorted(shapely.get_parts(polygonal(geoms[i])), key=area, reverse=True)
        if len(parts) < 2:
            return parts, []
        keep = {0}
        if len(drawn[i]) > 1:
            for original in drawn[i]:
                shared = [area(shapely.intersection(p, original)) for p in parts]
                k = int(np.argmax(shared))
                if shared[k] > min_area_m2 and not sliver(parts[k]):
                    keep.add(k)
        return [p for k, p in enumerate(parts) if k in keep], [
            p for k, p in enumerate(parts) if k not in keep
        ]

    for i in range(len(geoms)):  # stray parts go to a neighbour; the unit keeps the rest
        kept, stray = split_parts(i)
        if stray:
            geoms[i] = shapely.MultiPolygon(kept) if len(kept) > 1 else kept[0]
            for part in stray:  # a part with no neighbour is left uncovered: a gap, dealt with below
                given = give(part, i, "took_part", codes[i])
                log.append((codes[i], "neighbour" if given else "", "gave_part", -area(part)))
    for _pass in range(2):  # the second pass takes the crumbs that the first pass's unions leave
        covered = shapely.union_all(geoms + unassigned)
        gaps = polygonal(shapely.difference(whole, covered)) if whole is not None else enclosed(covered)
        for piece in shapely.get_parts(polygonal(gaps)):
            size = area(piece)
            if size <= min_area_m2:
                continue
            thin = sliver(piece)
            surrounded = len(neighbours(piece, -1)) == 1  # a hole in one unit: no one else could claim it
            if not ((thin or size <= max_fill_m2 or surrounded) and give(piece, -1, "filled_gap", "gap")):
                unassigned.append(piece)
    repaired = frame.copy()
    repaired["code"] = codes
    repaired["geometry"] = [shapely.MultiPolygon(list(shapely.get_parts(g))) for g in geoms]
    changes = pd.DataFrame(log, columns=["code", "other", "action", "area_m2"])
    holes = gpd.GeoDataFrame({"area_m2": [area(g) for g in unassigned]}, geometry=unassigned, crs=4326)
    return RepairResult(gpd.GeoDataFrame(repaired, geometry="geometry", crs=4326), changes, holes)
