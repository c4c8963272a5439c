"""What does an import change, unit by unit? Names, counts, attributes, and geometry beyond noise.

A layer re-imported through a projection or the exact GCJ-02 inverse comes back with its vertices moved by
far less than a millimetre: that is arithmetic, not a redraw, so a unit counts as changed only where a
vertex moved by :data:`NOISE_M` or more (and then keeps the geometry the draft already has otherwise).
Values a file does not carry (a column it lacks) are kept from the unit it replaces, matched by code.

>>> import geopandas as gpd, shapely
>>> old = gpd.GeoDataFrame({"code": ["1"], "name": ["a"], "households": [5], "population": [None],
...     "attributes": [{}]}, geometry=[shapely.box(111.2, 39.85, 111.201, 39.851)], crs=4326)
>>> new = old.assign(name=["b"], geometry=[shapely.box(111.2, 39.85, 111.201 + 1e-12, 39.851)])
>>> result = compare(old, new)
>>> result.changed, result.changes[0]["name"], "geometry" in result.changes[0]
(['1'], {'old': 'a', 'new': 'b'}, False)
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geogrid.crs import local_metric_crs

NOISE_M = 0.001  # vertices moved by less than a millimetre: reprojection arithmetic, not a change
COUNT_FIELDS = ("households", "population")
_HAUSDORFF_MAX_PAIRS = 4_000_000  # vertex pairs GEOS's Hausdorff distance may compare for one unit


@dataclass
class Comparison:
    """Codes added, removed, changed and unchanged, what changed per unit, and the geometries to keep."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    geometry: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))


def carry_over(
    before: gpd.GeoDataFrame, after: gpd.GeoDataFrame, columns: Collection[str]
) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Fill in what the file (whose columns are ``columns``) does not carry, from ``before`` by code.

    Households and population come from ``before`` when the file has no such column (whatever its
    case, as :func:`geogrid.hierarchy.prepare_units` reads it); attributes are ``before``'s, updated
    with the file's (a blank cell in a column the file has does replace a value, and the report says
    so). Returns the filled frame and the count fields that were kept.
    """
    out = after.copy()
    if before.empty or out.empty:
        return out, []
    old = before.set_index("code")
    matched = out["code"].isin(old.index).to_numpy()
    lower = {str(c).lower() for c in columns}
    kept: list[str] = []
    for name in COUNT_FIELDS:
        if name in lower:
            continue
        values = old[name].reindex(out["code"]).to_numpy()
        if matched.any() and pd.notna(values[matched]).any():
            kept.append(name)
        out[name] = pd.array(
            [v if m and pd.notna(v) else n for v, m, n in zip(values, matched, out[name], strict=True)],
            dtype="Int64",
        )
    old_attrs = old["attributes"].to_dict()
    out["attributes"] = [
        {**(old_attrs.get(code) or {}), **(attrs or {})}
        for code, attrs in zip(out["code"], out["attributes"], strict=True)
    ]
    return out, kept


def compare(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame, *, noise_m: float = NOISE_M) -> Comparison:
    """Compare two unit layers by code: what is added, removed, changed (and how), unchanged.

    Geometries are compared in a local metric CRS: the area moved is the area of their symmetric
    difference (m²) and the shift the largest distance of a vertex of either from the other (the
    Hausdorff distance, m). A shift under ``noise_m`` is no change, and ``Comparison.geometry`` (after's
    geometries, in after's order) then holds before's geometry, so that writing it changes nothing.
    """
    result = Comparison(geometry=after.geometry.to_numpy().copy())
    old_index = {str(c): j for j, c in enumerate(before["code"])}
    new_codes = {str(c) for c in after["code"]}
    result.removed = sorted(c for c in old_index if c not in new_codes)
    codes = [str(c) for c in after["code"]]
    pairs = [(i, old_index[c]) for i, c in enumerate(codes) if c in old_index]
    result.added = [c for c in codes if c not in old_index]
    if not pairs:
        return result
    ia = np.array([i for i, _ in pairs])
    jb = np.array([j for _, j in pairs])
    new_geoms, old_geoms = result.geometry[ia], before.geometry.to_numpy()[jb]
    moved = _geometry_moves(old_geoms, new_geoms, noise_m)
    for k, (i, j) in enumerate(pairs):
        change: dict[str, Any] = {"code": codes[i]}
        old_name, new_name = _plain(before["name"].iloc[j]), _plain(after["name"].iloc[i])
        if old_name != new_name:
            change["name"] = {"old": old_name, "new": new_name}
        fields = _field_changes(before.iloc[j], after.iloc[i])
        if fields:
            change["attributes"] = fields
            dropped = [f for f, v in fields.items() if v["old"] is not None and v["new"] is None]
            if dropped:
                change["dropped"] = dropped
        if moved[k] is None:
            result.geometry[i] = old_geoms[k]  # the same, or within noise: keep the draft's bit for bit
        else:
            change["geometry"] = moved[k]
        if len(change) > 1:
            result.changed.append(codes[i])
            result.changes.append(change)
        else:
            result.unchanged.append(codes[i])
    return result


def _plain(value: Any) -> Any:
    """A value as JSON would hold it: numpy and pandas scalars as Python ones, missing as None."""
    if value is None or (not isinstance(value, (dict, list, str)) and pd.isna(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _field_changes(old: pd.Series, new: pd.Series) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in COUNT_FIELDS:
        a, b = _plain(old[name]), _plain(new[name])
        if not _same(a, b):
            out[name] = {"old": a, "new": b}
    a_attrs, b_attrs = old["attributes"] or {}, new["attributes"] or {}
    for key in sorted(set(a_attrs) | set(b_attrs)):
        a, b = _plain(a_attrs.get(key)), _plain(b_attrs.get(key))
        if not _same(a, b):
            out[key] = {"old": a, "new": b}
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON keeps them: ``True`` is not ``1`` (Python says it is), and a commit writes the type."""
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _geometry_moves(old: np.ndarray, new: np.ndarray, noise_m: float) -> list[dict[str, float] | None]:
    """Per pair: None when the geometries are equal within ``noise_m``, else area moved and shift."""
    out: list[dict[str, float] | None] = [None] * len(old)
    differ = np.flatnonzero(
        ~shapely.equals_exact(shapely.normalize(old), shapely.normalize(new), 0.0)
        | (shapely.is_missing(old) != shapely.is_missing(new))
    )
    if not len(differ):
        return out
    x0, y0, x1, y1 = shapely.total_bounds(new[differ])
    metric = local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2)
    old_m = gpd.GeoSeries(old[differ], crs=4326).to_crs(metric).to_numpy()
    new_m = gpd.GeoSeries(new[differ], crs=4326).to_crs(metric).to_numpy()
    for k, a, b in zip(differ.tolist(), old_m, new_m, strict=True):
        shift = _shift(a, b)
        moved = _area_moved(a, b)
        # Vertices within noise_m of the other outline move at most a band noise_m wide along it; more
        # area than that (the same vertices joined in another order) is a redraw, whatever the shift.
        band = noise_m * max(_length(a), _length(b))
        if shift < noise_m and moved <= band:
            continue
        out[k] = {"area_m2": round(moved, 3), "shift_m": round(shift, 3)}
    return out


def _area_moved(a: Any, b: Any) -> float:
    """The area of the symmetric difference of ``a`` and ``b`` (m², in a metric CRS)."""
    if a is None or b is None:
        present = b if a is None else a
        return 0.0 if present is None else float(shapely.area(present))
    try:
        return float(shapely.area(shapely.symmetric_difference(a, b)))
    except shapely.errors.GEOSException:  # an invalid ring: measure what make_valid makes of it
        return float(shapely.area(shapely.symmetric_difference(shapely.make_valid(a), shapely.make_valid(b))))


def _length(geom: Any) -> float:
    """The length of a polygon's outline, holes included (0 for a missing one)."""
    return 0.0 if geom is None else float(shapely.length(geom))


def _shift(a: Any, b: Any) -> float:
    """The largest distance of a vertex of ``a`` or ``b`` from the other (metres, in a metric CRS)."""
    if a is None or b is None or shapely.is_empty(a) or shapely.is_empty(b):
        return float("inf")
    n, m = shapely.get_num_coordinates(a), shapely.get_num_coordinates(b)
    if n * m <= _HAUSDORFF_MAX_PAIRS:
        return float(shapely.hausdorff_distance(a, b))
    return max(_directed(a, b), _directed(b, a))  # large units: nearest segment from an index, O(n log m)


def _directed(a: Any, b: Any) -> float:
    segments = []
    for ring in shapely.get_parts(shapely.boundary(b)):
        xy = shapely.get_coordinates(ring)
        segments.append(shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1)))
    tree = shapely.STRtree(np.concatenate(segments))
    _, distances = tree.query_nearest(shapely.points(shapely.get_coordinates(a)), return_distance=True)
    return float(distances.max())
