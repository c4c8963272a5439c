"""Which micro-grid (and grid, community, street) holds this point? One point or ten million, exactly.

:class:`GridIndex` is an adaptive cell cover of a polygon layer: a uniform grid of cells, each either
wholly inside one unit (or outside all of them) and answered by a table read, or crossed by boundaries,
in which case the cell keeps only the edges that cross it and a reference point whose containment is
known. A point in such a cell is decided by counting, with exact orientation predicates, the crossings
between the segment reference→point and those few edges. Memory follows the length of the boundaries,
not the area.

The on-edge rule: a point on a shared edge or vertex is *covered* by every unit touching it and is given
to exactly one of them, the unit with the smallest code (plain string order). Every path in GeoGrid
(this index, the PostGIS function ``geogrid_locate``, the CLI) gives the same answer for the same point.

>>> import geopandas as gpd, shapely
>>> frame = gpd.GeoDataFrame({"code": ["B", "A"]},
...     geometry=[shapely.box(1, 0, 2, 1), shapely.box(0, 0, 1, 1)], crs=4326)
>>> index = GridIndex.from_frame(frame)
>>> index.locate(0.5, 0.5), index.locate(1.0, 0.5), index.locate(5.0, 5.0)
('A', 'A', '')
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

from geogrid import crs as crs_mod
from geogrid import index_kernels as K
from geogrid.errors import (
    GeoGridError,
    HierarchyViolation,
    InvalidCoordinates,
    InvalidGeometry,
    MissingColumn,
    NotFound,
)
from geogrid.hierarchy import Level, ParentCorrection, link_ancestors, split_levels
from geogrid.index_build import IndexStats, Packed, build_cover

FORMAT = 1  # bump when the cached layout changes


class OutsideValidity(GeoGridError):
    """A lookup for a date on which the index's version was not in force."""

    title = "Date outside the version's validity"
    status = 409


class VersionSource(Protocol):
    """What :meth:`GridIndex.from_version` needs from a store (``geogrid.db.Store`` is one)."""

    @property
    def identity(self) -> str: ...

    def version_at(self, set_name: str, at: dt.date | None = None) -> Any: ...

    def units(self, set_name: str, *, version: int | None = None) -> gpd.GeoDataFrame: ...


FEW = 256  # fewer points are located on the calling thread: OpenMP's threads spin for a while after each
# parallel call, taking the other core from the database and the requests (1.3 s p99 tails at intake)
MAX_EDGE_SCAN = 20_000  # coverage edges scanned one by one for a nearest unit; beyond, the STRtree


class _Metric(NamedTuple):
    """The units projected to the local metric CRS, for distances in metres."""

    to_metric: pyproj.Transformer
    geoms: NDArray[np.object_]
    segments: NDArray[np.float64]  # boundary segments (x0, y0, x1, y1), unit by unit
    offsets: NDArray[np.int64]  # unit i's segments are segments[offsets[i]:offsets[i + 1]]
    tree: shapely.STRtree
    distance: Callable[..., float]  # the compiled segments_distance
    edges: NDArray[
        np.float64
    ]  # the segments a point outside every unit can be nearest to (see _coverage_edges)
    edge_owner: NDArray[np.int64]  # the rank of each edge's unit
    nearest: Callable[..., tuple[int, float]]  # the compiled nearest_owner


@dataclass(frozen=True)
class Unit:
    """A unit's code and name."""

    code: str
    name: str


@dataclass(frozen=True)
class LookupResult:
    """Where one point falls: its unit and that unit's ancestors, or the nearest unit if none."""

    lon: float
    lat: float
    unit: Unit | None
    level: str | None
    parents: dict[str, Unit]
    on_boundary: bool
    distance_to_boundary_m: float | None
    nearest: Unit | None = None
    nearest_distance_m: float | None = None
    snapped: bool = False

    @property
    def code(self) -> str | None:
        """The code of the unit holding the point (None when outside every unit)."""
        return self.unit.code if self.unit else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class AssignResult:
    """Units for many points: ``rank`` (-1 where none), ``on_boundary`` and ``snapped`` flags, and
    ``code`` (the unit codes, '' where none), made on first use from the ranks."""

    rank: NDArray[np.int32]
    on_boundary: NDArray[np.bool_]
    snapped: NDArray[np.bool_]
    codes: NDArray[np.object_] = field(repr=False)

    @cached_property
    def code(self) -> NDArray[np.object_]:
        """The unit code of each point ('' where no unit)."""
        return self.codes[self.rank]  # rank -1 picks the trailing ''

    def __len__(self) -> int:
        return len(self.rank)


class GridIndex:
    """An exact point-in-polygon index over a layer of units with unique codes."""

    def __init__(
        self,
        codes: NDArray[np.str_],
        names: NDArray[np.str_],
        geoms: NDArray[np.object_],
        packed: Packed,
        *,
        level: str | None = None,
        parents: dict[str, tuple[NDArray[np.str_], NDArray[np.str_]]] | None = None,
        corrections: list[ParentCorrection] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.codes = codes
        self.names = names
        self.geoms = geoms
        self.level = level
        self.parents = parents or {}
        self.corrections = corrections or []
        self.meta = meta or {}
        self._F, self._I = packed.F, packed.I
        self.stats = packed.stats
        self._codes_or_empty = np.array([*codes.tolist(), ""], dtype=object)
        self._one = _entry_point(K.locate_one, 0.0, 0.0, self._F, self._I)
        self.locate = _fast_locate(self._one, self._F, self._I, [*codes.tolist(), ""])  # type: ignore[method-assign,assignment]
        self._metric: _Metric | None = None
        self._units: dict[int, tuple[Unit, dict[str, Unit]]] = {}  # rank -> (unit, parents), made on demand

    # ---- construction -----------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        frame: gpd.GeoDataFrame,
        code: str = "code",
        *,
        name: str | None = "name",
        level: str | Level | None = None,
        tolerance_m2: float = 1.0,
        strict: bool = False,
    ) -> GridIndex:
        """Build an index from any polygon layer with a unique code column.

        With a ``level`` column holding several levels (as a published version does), the finest level
        present (or ``level``) is indexed and the others give each result its ancestors, linked by code
        and checked by geometry: a unit lying outside the parent its code names more than
        ``tolerance_m2`` is given the parent its geometry lies in, and reported in ``corrections``
        (``strict=True`` raises HierarchyViolation instead).
        """
        import time

        started = time.perf_counter()
        if code not in frame.columns:
            raise MissingColumn(f"no {code!r} column to index by", field=code)
        if frame.crs is not None and crs_mod.normalize_crs(frame.crs) != crs_mod.WGS84:
            frame = frame.to_crs(4326)
        layers = split_levels(frame, level)
        leaf_level, leaf = layers[-1]
        leaf = leaf.assign(_code=leaf[code].astype(str)).sort_values("_code", kind="stable")
        codes = leaf["_code"].to_numpy().astype(str)
        if len(np.unique(codes)) != len(codes):
            dup = codes[:-1][codes[:-1] == codes[1:]][0]
            raise InvalidGeometry(f"code {dup!r} appears more than once; codes must be unique", code=dup)
        geoms = leaf.geometry.to_numpy()
        kinds = shapely.get_type_id(geoms)
        if not np.isin(kinds, [3, 6]).all():
            bad = int(np.flatnonzero(~np.isin(kinds, [3, 6]))[0])
            raise InvalidGeometry(
                f"unit {codes[bad]} is a {geoms[bad].geom_type}; only polygons can be indexed",
                code=str(codes[bad]),
            )
        names = (leaf[name].astype(str).to_numpy() if name and name in leaf.columns else codes).astype(str)
        parents, corrections = link_ancestors(layers, code, name, tolerance_m2)
        if strict and corrections:
            shown = "; ".join(f"{c.code} lies outside {c.code_says}" for c in corrections[:10])
            raise HierarchyViolation(
                f"{len(corrections)} unit(s) lie outside the parent their code names: {shown}"
            )
        packed = build_cover(geoms)
        packed.stats.build_seconds = time.perf_counter() - started
        ordered_parents = {
            lvl: (
                np.array([pc.get(c, "") for c in codes], dtype=str),
                np.array([pn.get(c, "") for c in codes], dtype=str),
            )
            for lvl, (pc, pn) in parents.items()
        }
        return cls(
            codes,
            names,
            geoms,
            packed,
            level=leaf_level.name if leaf_level else None,
            parents=ordered_parents,
            corrections=corrections,
        )

    @classmethod
    def from_version(
        cls,
        store: VersionSource,
        set_name: str,
        at: dt.date | None = None,
        *,
        cache_dir: str | Path | None = None,
        strict: bool = False,
    ) -> GridIndex:
        """Build (or load from ``cache_dir``) the index of the version of ``set_name`` in force ``at``."""
        version = store.version_at(set_name, at)
        meta = {
            "set": set_name,
            "version": int(version.number),
            "valid_from": version.valid_from.isoformat() if version.valid_from else None,
            "valid_to": version.valid_to.isoformat() if version.valid_to else None,
        }
        path = None
        if cache_dir is not None:
            key = hashlib.sha256(
                f"{store.identity}|{set_name}|{version.number}|{FORMAT}".encode()
            ).hexdigest()[:12]
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", set_name)
            path = Path(cache_dir) / f"{slug}-v{version.number}-{key}.npz"
            if path.exists():
                index = cls.load(path)
                index.meta.update(meta)  # validity may have closed since the file was written
                return index
        index = cls.from_frame(store.units(set_name, version=version.number), strict=strict)
        index.meta.update(meta)
        if path is not None:
            index.save(path)
        return index

    # ---- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the index to an ``.npz`` file (loaded by :meth:`load` in well under a second)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "F": self._F,
            "I": self._I,
            "codes": self.codes,
            "names": self.names,
            "wkb": np.array(shapely.to_wkb(self.geoms), dtype=object).astype(bytes),
        }
        for lvl, (pc, pn) in self.parents.items():
            arrays[f"parent_code_{lvl}"] = pc
            arrays[f"parent_name_{lvl}"] = pn
        meta = {
            "format": FORMAT,
            "level": self.level,
            "meta": self.meta,
            "stats": asdict(self.stats),
            "parents": list(self.parents),
            "corrections": [asdict(c) for c in self.corrections],
        }
        arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GridIndex:
        """Load an index written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise NotFound(f"index cache {path} has format {meta.get('format')}, expected {FORMAT}")
            parents = {
                lvl: (data[f"parent_code_{lvl}"], data[f"parent_name_{lvl}"]) for lvl in meta["parents"]
            }
            geoms = shapely.from_wkb(data["wkb"])
            packed = Packed(data["F"], data["I"], IndexStats(**meta["stats"]))
            return cls(
                data["codes"],
                data["names"],
                np.asarray(geoms, dtype=object),
                packed,
                level=meta["level"],
                parents=parents,
                corrections=[ParentCorrection(**c) for c in meta["corrections"]],
                meta=meta["meta"],
            )

    # ---- queries ----------------------------------------------------------------------------------
    def locate(self, lon: float, lat: float) -> str:
        """The code of the unit holding a WGS-84 point ('' if none): the fastest single lookup."""
        return str(self._codes_or_empty[self._one(lon, lat, self._F, self._I) >> 1])  # replaced per instance

    def assign(
        self, lon: ArrayLike, lat: ArrayLike, crs: Any = "wgs84", *, snap_m: float = 0.0
    ) -> AssignResult:
        """Codes for arrays of points, vectorised and in parallel.

        Points outside every unit get '' unless one lies within ``snap_m`` metres of a unit: it is given
        the nearest and flagged ``snapped``.
        """
        if crs_mod.normalize_crs(crs) != crs_mod.WGS84:
            lon, lat = crs_mod.transform(lon, lat, crs, crs_mod.WGS84)
        x = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        y = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise InvalidCoordinates(f"{x.size} longitudes but {y.size} latitudes")
        locate = K.locate_few if x.size < FEW else K.locate_many
        ranks, on = locate(x, y, self._F, self._I)
        snapped = np.zeros(len(ranks), dtype=bool)
        if snap_m > 0:
            missing = np.flatnonzero((ranks < 0) & np.isfinite(x) & np.isfinite(y))
            if len(missing):
                near, _ = self._nearest(x[missing], y[missing], max_distance_m=snap_m)
                ok = near >= 0
                ranks[missing[ok]] = near[ok]
                snapped[missing[ok]] = True
        return AssignResult(ranks, on, snapped, self._codes_or_empty)

    def distances_to_boundary(
        self, rank: NDArray[np.integer[Any]], lon: NDArray[np.float64], lat: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Metres from each WGS-84 point to the boundary of its unit ``rank`` (NaN where rank < 0)."""
        out = np.full(len(rank), np.nan)
        inside = np.flatnonzero(rank >= 0)
        if len(inside):
            m = self._metric_space()
            mx, my = m.to_metric.transform(lon[inside], lat[inside])
            out[inside] = K.distances_to_own(
                np.asarray(mx, np.float64), np.asarray(my, np.float64), rank[inside].astype(np.int64),
                m.segments, m.offsets,
            )  # fmt: skip
        return out

    def codes_of(self, rank: NDArray[np.integer[Any]]) -> NDArray[np.object_]:
        """The code of each unit by rank ('' where rank < 0)."""
        return self._codes_or_empty[rank]

    def ancestors(self, rank: NDArray[np.integer[Any]]) -> dict[str, NDArray[np.object_]]:
        """The code of each unit's ancestor at every level ('' where rank < 0 or none)."""
        return {level: padded[rank] for level, padded in self._parents_or_empty.items()}  # -1 picks the ''

    @cached_property
    def _parents_or_empty(self) -> dict[str, NDArray[np.object_]]:
        """Each level's ancestor codes by rank, with a trailing '' (made once: a report places one point)."""
        return {
            level: np.append(np.asarray(codes, dtype=object), "")
            for level, (codes, _) in self.parents.items()
        }

    def lookup(
        self, lon: float, lat: float, crs: Any = "wgs84", at: dt.date | None = None, *, snap_m: float = 0.0
    ) -> LookupResult:
        """Everything about one point: its unit and ancestors, whether it lies on a boundary, how far the
        nearest boundary is; for a point outside every unit, the nearest unit and its distance."""
        self._check_validity(at)
        if crs == crs_mod.WGS84:
            px, py = float(lon), float(lat)
        else:
            px, py = crs_mod.transform_point(lon, lat, crs)
        if not (-180.0 <= px <= 180.0 and -90.0 <= py <= 90.0):  # also false for NaN
            crs_mod.check_lonlat([px], [py])
        encoded = self._one(px, py, self._F, self._I)
        rank, on = (encoded >> 1, bool(encoded & 1)) if encoded >= 0 else (-1, False)
        nearest: Unit | None = None
        nearest_m: float | None = None
        snapped = False
        if rank < 0:
            near, distance_m = self._nearest_one(px, py)
            if near >= 0:  # none when the point is too far away to project (the other side of the world)
                nearest, nearest_m = self._unit(near), distance_m
                if distance_m <= snap_m:
                    rank, snapped = near, True
        if rank < 0:
            return LookupResult(px, py, None, None, {}, False, None, nearest, nearest_m)
        distance = 0.0 if on else self._distance_to_boundary(rank, px, py)
        found, parents = self._hierarchy(rank)
        return LookupResult(
            px,
            py,
            found,
            self.level,
            parents,
            on,
            distance,
            nearest,
            nearest_m,
            snapped,
        )

    def warm(self) -> GridIndex:
        """Do now what the first lookups would do (project the units for distances, fill the caches)."""
        self._metric_space()
        for rank in range(len(self.codes)):
            self._hierarchy(rank)
        return self

    # ---- helpers ----------------------------------------------------------------------------------
    def _unit(self, rank: int) -> Unit:
        return self._hierarchy(rank)[0]

    def _hierarchy(self, rank: int) -> tuple[Unit, dict[str, Unit]]:
        """The unit of ``rank`` and its ancestors by level (shared, read-only objects)."""
        found = self._units.get(rank)
        if found is None:
            parents = {
                lvl: Unit(str(pc[rank]), str(pn[rank])) for lvl, (pc, pn) in self.parents.items() if pc[rank]
            }
            found = self._units[rank] = (Unit(str(self.codes[rank]), str(self.names[rank])), parents)
        return found

    def _check_validity(self, at: dt.date | None) -> None:
        if at is None or not self.meta.get("valid_from"):
            return
        start = dt.date.fromisoformat(self.meta["valid_from"])
        end = dt.date.fromisoformat(self.meta["valid_to"]) if self.meta.get("valid_to") else None
        if at < start or (end is not None and at >= end):
            raise OutsideValidity(
                f"this index holds v{self.meta.get('version')} of {self.meta.get('set')!r}, in force "
                f"{start}–{end or 'now'}; {at} needs the version in force then",
                at=at.isoformat(),
            )

    def _metric_space(self) -> _Metric:
        """The units in the local metric CRS (made on first use): for distances in metres."""
        if self._metric is None:
            x0, y0, x1, y1 = shapely.total_bounds(self.geoms)
            metric = crs_mod.local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2)
            geoms = gpd.GeoSeries(self.geoms, crs=4326).to_crs(metric).to_numpy()
            to_metric = pyproj.Transformer.from_crs(4326, metric, always_xy=True)
            segments, offsets = _boundary_segments(geoms)
            distance = _entry_point(K.segments_distance, 0.0, 0.0, segments, 0, 0)
            edges, owner = _coverage_edges(geoms)
            nearest: Callable[..., tuple[int, float]] = _entry_point(  # type: ignore[assignment]
                K.nearest_owner, 0.0, 0.0, edges, owner
            )
            self._metric = _Metric(
                to_metric, geoms, segments, offsets, shapely.STRtree(geoms), distance, edges, owner, nearest
            )
        return self._metric

    def _to_metric(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.object_]:
        mx, my = self._metric_space().to_metric.transform(x, y)
        return shapely.points(mx, my)

    def _nearest(
        self, x: NDArray[np.float64], y: NDArray[np.float64], max_distance_m: float | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Rank of the nearest unit (ties: smallest code) and its distance in metres; -1 beyond the limit."""
        tree = self._metric_space().tree
        points = self._to_metric(x, y)
        kwargs = {"max_distance": max_distance_m} if max_distance_m else {}
        (pt, unit), dist = tree.query_nearest(points, return_distance=True, all_matches=True, **kwargs)
        near = np.full(len(points), -1, dtype=np.int64)
        best = np.full(len(points), np.inf)
        for p, u, d in zip(pt.tolist(), unit.tolist(), dist.tolist(), strict=True):
            if d < best[p] or (d == best[p] and u < near[p]):
                near[p], best[p] = u, d
        return near, best

    def _nearest_one(self, x: float, y: float) -> tuple[int, float]:
        """:meth:`_nearest` for one point outside every unit: a scan of the coverage's edges while they are
        few, else the tree (the single-lookup path)."""
        m = self._metric_space()
        if len(m.edges) <= MAX_EDGE_SCAN:
            mx, my = m.to_metric.transform(x, y)
            if math.isfinite(mx) and math.isfinite(my):
                return m.nearest(mx, my, m.edges, m.edge_owner)
            return -1, float("inf")
        units, dist = m.tree.query_nearest(
            shapely.Point(*m.to_metric.transform(x, y)), return_distance=True, all_matches=True
        )
        if len(dist) == 0:
            return -1, float("inf")
        best = float(dist.min())
        return int(units[dist == best].min()), best

    def _distance_to_boundary(self, rank: int, x: float, y: float) -> float:
        m = self._metric_space()
        mx, my = m.to_metric.transform(x, y)
        return float(m.distance(mx, my, m.segments, m.offsets[rank], m.offsets[rank + 1]))


def _coverage_edges(geoms: NDArray[np.object_]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The unit edges a point outside every unit can be nearest to, with the rank of each edge's unit.

    Taking every edge in the direction that has its unit on the left, an edge whose reverse belongs to
    another unit has units on both sides: it is inside the coverage and never nearest. The rest bound the
    coverage (outside and around gaps); edges meeting those at a vertex are kept too, so that a unit that
    touches the coverage's boundary at a corner only still ties there, as it does by polygon distance.
    Edges keep their stored direction, so that distances match GEOS's to the last bit.
    """
    polygons, unit_of_polygon = shapely.get_parts(geoms, return_index=True)
    rings, polygon_of_ring = shapely.get_rings(polygons, return_index=True)
    exterior = np.r_[True, polygon_of_ring[1:] != polygon_of_ring[:-1]]  # each polygon's first ring
    unit_left = exterior == shapely.is_ccw(rings)  # an exterior running anticlockwise, or a hole clockwise
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[:-1] == ring[1:]
    a, b = coords[:-1][same], coords[1:][same]
    ring_of = ring[:-1][same]
    owner = unit_of_polygon[polygon_of_ring[ring_of]]
    flip = ~unit_left[ring_of][:, None]
    tails = [tuple(p) for p in np.where(flip, b, a).tolist()]
    heads = [tuple(p) for p in np.where(flip, a, b).tolist()]
    reverse = set(zip(heads, tails, strict=True))
    outer = np.array([edge not in reverse for edge in zip(tails, heads, strict=True)], dtype=bool)
    corners = {p for t, h, o in zip(tails, heads, outer, strict=True) if o for p in (t, h)}
    touching = np.array([t in corners or h in corners for t, h in zip(tails, heads, strict=True)], dtype=bool)
    keep = outer | touching
    return np.ascontiguousarray(np.column_stack([a, b])[keep]), owner[keep].astype(np.int64)


def _boundary_segments(geoms: NDArray[np.object_]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Every unit's boundary as segments, with the offsets of each unit's first segment."""
    parts, owner = shapely.get_parts(shapely.boundary(geoms), return_index=True)
    coords, part = shapely.get_coordinates(parts, return_index=True)
    same = part[:-1] == part[1:]  # consecutive vertices of one ring or line make a segment
    segments = np.ascontiguousarray(np.column_stack([coords[:-1][same], coords[1:][same]]))
    unit_of = owner[part[:-1][same]]
    offsets = np.searchsorted(unit_of, np.arange(len(geoms) + 1)).astype(np.int64)
    return segments, offsets


def _fast_locate(
    one: Callable[..., int], F: NDArray[np.float64], I: NDArray[np.int32], codes: list[str]
) -> Callable[[float, float], str]:
    """:meth:`GridIndex.locate` as a closure: no attribute lookups on the hot path."""

    def locate(lon: float, lat: float) -> str:
        return codes[one(lon, lat, F, I) >> 1]

    locate.__doc__ = GridIndex.locate.__doc__
    return locate


def _entry_point(kernel: Any, *example: Any) -> Callable[..., int]:
    """The compiled function behind a numba dispatcher, called without re-dispatching on types."""
    kernel(*example)
    try:
        entry: Callable[..., int] = kernel.overloads[kernel.signatures[0]].entry_point
        return entry
    except (AttributeError, IndexError, KeyError):  # pure-Python mode (NUMBA_DISABLE_JIT) or a newer numba
        fallback: Callable[..., int] = kernel
        return fallback
