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
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
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
from geogrid.hierarchy import Level, check_parents, parse_level

FORMAT = 1  # bump when the cached layout changes
FINE_CELLS_PER_EDGE = 600  # fine cells per boundary edge: ~2.5% of the area lies in boundary cells
MAX_FINE_CELLS = 1 << 24
PAD_DEG = 1e-9  # cells are widened by this when collecting the edges that cross them (conservative)


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


@dataclass(frozen=True)
class ParentCorrection:
    """A unit whose code names one parent while its geometry lies in another (or in none)."""

    code: str
    level: str
    code_says: str
    geometry_says: str | None
    outside_m2: float


@dataclass
class IndexStats:
    """Size and shape of an index."""

    units: int
    edges: int
    cells: int
    boundary_cells: int
    edge_entries: int
    nbytes: int
    build_seconds: float = 0.0


@dataclass
class _Packed:
    F: NDArray[np.float64]
    I: NDArray[np.int32]
    stats: IndexStats = field(default_factory=lambda: IndexStats(0, 0, 0, 0, 0, 0))


class GridIndex:
    """An exact point-in-polygon index over a layer of units with unique codes."""

    def __init__(
        self,
        codes: NDArray[np.str_],
        names: NDArray[np.str_],
        geoms: NDArray[np.object_],
        packed: _Packed,
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
        self._metric: tuple[Any, NDArray[np.object_], shapely.STRtree] | None = None

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
        layers = _split_levels(frame, level)
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
        parents, corrections = _link_parents(layers, code, name, tolerance_m2)
        if strict and corrections:
            shown = "; ".join(f"{c.code} lies outside {c.code_says}" for c in corrections[:10])
            raise HierarchyViolation(
                f"{len(corrections)} unit(s) lie outside the parent their code names: {shown}"
            )
        packed = _build(geoms)
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
                return cls.load(path)
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
            packed = _Packed(data["F"], data["I"], IndexStats(**meta["stats"]))
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
        ranks, on = K.locate_many(x, y, self._F, self._I)
        snapped = np.zeros(len(ranks), dtype=bool)
        if snap_m > 0:
            missing = np.flatnonzero((ranks < 0) & np.isfinite(x) & np.isfinite(y))
            if len(missing):
                near, _ = self._nearest(x[missing], y[missing], max_distance_m=snap_m)
                ok = near >= 0
                ranks[missing[ok]] = near[ok]
                snapped[missing[ok]] = True
        return AssignResult(ranks, on, snapped, self._codes_or_empty)

    def lookup(
        self, lon: float, lat: float, crs: Any = "wgs84", at: dt.date | None = None, *, snap_m: float = 0.0
    ) -> LookupResult:
        """Everything about one point: its unit and ancestors, whether it lies on a boundary, how far the
        nearest boundary is; for a point outside every unit, the nearest unit and its distance."""
        self._check_validity(at)
        x, y = crs_mod.transform([lon], [lat], crs, crs_mod.WGS84)
        px, py = float(x[0]), float(y[0])
        crs_mod.check_lonlat([px], [py])
        encoded = self._one(px, py, self._F, self._I)
        rank, on = (encoded >> 1, bool(encoded & 1)) if encoded >= 0 else (-1, False)
        nearest: Unit | None = None
        nearest_m: float | None = None
        snapped = False
        if rank < 0:
            near, dist = self._nearest(np.array([px]), np.array([py]))
            if near[0] >= 0:
                nearest, nearest_m = self._unit(int(near[0])), float(dist[0])
                if nearest_m <= snap_m:
                    rank, snapped = int(near[0]), True
        if rank < 0:
            return LookupResult(px, py, None, None, {}, False, None, nearest, nearest_m)
        distance = 0.0 if on else self._distance_to_boundary(rank, px, py)
        return LookupResult(
            px,
            py,
            self._unit(rank),
            self.level,
            self._parents_of(rank),
            on,
            distance,
            nearest,
            nearest_m,
            snapped,
        )

    # ---- helpers ----------------------------------------------------------------------------------
    def _unit(self, rank: int) -> Unit:
        return Unit(str(self.codes[rank]), str(self.names[rank]))

    def _parents_of(self, rank: int) -> dict[str, Unit]:
        return {lvl: Unit(str(pc[rank]), str(pn[rank])) for lvl, (pc, pn) in self.parents.items() if pc[rank]}

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

    def _metric_space(self) -> tuple[Any, NDArray[np.object_], shapely.STRtree]:
        if self._metric is None:
            x0, y0, x1, y1 = shapely.total_bounds(self.geoms)
            metric = crs_mod.local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2)
            geoms = gpd.GeoSeries(self.geoms, crs=4326).to_crs(metric).to_numpy()
            self._metric = (metric, geoms, shapely.STRtree(geoms))
        return self._metric

    def _to_metric(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.object_]:
        metric, _, _ = self._metric_space()
        mx, my = crs_mod.transform(x, y, crs_mod.WGS84, f"EPSG:{metric.to_epsg()}")
        return shapely.points(mx, my)

    def _nearest(
        self, x: NDArray[np.float64], y: NDArray[np.float64], max_distance_m: float | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Rank of the nearest unit (ties: smallest code) and its distance in metres; -1 beyond the limit."""
        _, _, tree = self._metric_space()
        points = self._to_metric(x, y)
        kwargs = {"max_distance": max_distance_m} if max_distance_m else {}
        (pt, unit), dist = tree.query_nearest(points, return_distance=True, all_matches=True, **kwargs)
        near = np.full(len(points), -1, dtype=np.int64)
        best = np.full(len(points), np.inf)
        for p, u, d in zip(pt.tolist(), unit.tolist(), dist.tolist(), strict=True):
            if d < best[p] or (d == best[p] and u < near[p]):
                near[p], best[p] = u, d
        return near, best

    def _distance_to_boundary(self, rank: int, x: float, y: float) -> float:
        _, geoms, _ = self._metric_space()
        point = self._to_metric(np.array([x]), np.array([y]))[0]
        return float(shapely.distance(shapely.boundary(geoms[rank]), point))


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


# ---- building the cell cover ----------------------------------------------------------------------


def _edges(geoms: NDArray[np.object_]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Every ring segment of every unit, (ax, ay, bx, by), with the rank of its unit, by rank."""
    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[:-1] == ring_of[1:]
    a, b = coords[:-1][same], coords[1:][same]
    owner = part_owner[ring_part[ring_of[:-1][same]]]
    keep = (a != b).any(axis=1)
    edges = np.ascontiguousarray(np.hstack([a[keep], b[keep]]))
    return edges, owner[keep].astype(np.int64)


def _grid(
    edges: NDArray[np.float64], bounds: NDArray[np.float64]
) -> tuple[float, float, float, float, int, int]:
    """The fine grid: square cells on the ground, about FINE_CELLS_PER_EDGE per boundary edge."""
    x0, y0, x1, y1 = bounds
    margin = max(x1 - x0, y1 - y0, 1e-6) * 1e-4
    x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
    width, height = x1 - x0, y1 - y0
    k = max(np.cos(np.radians((y0 + y1) / 2)), 0.05)
    cells = int(np.clip(FINE_CELLS_PER_EDGE * len(edges), 4096, MAX_FINE_CELLS))
    dy = float(np.sqrt(width * height * k / cells))
    dx = dy / k
    # whole coarse cells of K.BLOCK x K.BLOCK fine cells
    nx = max(int(np.ceil(width / dx / K.BLOCK)), 1) * K.BLOCK
    ny = max(int(np.ceil(height / dy / K.BLOCK)), 1) * K.BLOCK
    return x0, y0, dx, dy, nx, ny


def _build(geoms: NDArray[np.object_]) -> _Packed:
    """The cell cover of ``geoms`` (ranked in the given order) packed into the kernel's two arrays."""
    edges, owner = _edges(geoms)
    n_units = len(geoms)
    x0, y0, dx, dy, fnx, fny = _grid(edges, np.asarray(shapely.total_bounds(geoms)))
    cells, which = K.edge_cells(edges, x0, y0, dx, dy, fnx, fny, PAD_DEG)
    order = np.lexsort((which, owner[which], cells))
    cells, which = cells[order], which[order]
    boundary_cells, first = np.unique(cells, return_index=True)
    n_leaves = len(boundary_cells)
    leaf_of_pair = np.repeat(np.arange(n_leaves), np.diff(np.append(first, len(cells))))

    # Reference points: cell centres, nudged off any edge they happen to lie on.
    bi, bj = boundary_cells % fnx, boundary_cells // fnx
    centres_x, centres_y = x0 + (bi + 0.5) * dx, y0 + (bj + 0.5) * dy
    refs = np.column_stack([centres_x, centres_y])
    starts = np.append(first, len(cells)).astype(np.int64)
    for attempt in range(1, 20):
        bad = K.refs_on_edges(refs, starts, which, edges)
        if not bad.any():
            break
        refs[bad, 0] += dx * 0.0731 * attempt * (-1) ** attempt
        refs[bad, 1] += dy * 0.0497 * attempt
    else:  # pragma: no cover - would need a cell full of edges through every nudge
        raise InvalidGeometry("could not place a reference point off the boundaries; is a unit degenerate?")

    # Which units cover each reference point (GEOS's exact predicates; the point is on no boundary).
    tree = shapely.STRtree(geoms)
    ref_pt, ref_unit = tree.query(shapely.points(refs), predicate="intersects")
    # Candidates of a cell: units with edges in it, plus units covering its reference point.
    edge_keys = leaf_of_pair * n_units + owner[which]
    inside_keys = ref_pt.astype(np.int64) * n_units + ref_unit
    cand_keys = np.union1d(edge_keys, inside_keys)
    cand_leaf, cand_rank = cand_keys // n_units, cand_keys % n_units
    cand_inside = np.isin(cand_keys, inside_keys).astype(np.int64)
    # edge_keys is sorted (pairs are ordered by cell, then unit): each candidate's edges are contiguous
    cand_edges = np.searchsorted(edge_keys, cand_keys, side="left").astype(np.int64)
    cand_edges = np.append(cand_edges, len(edge_keys))
    leaf_cand = np.searchsorted(cand_leaf, np.arange(n_leaves + 1), side="left")

    # Cells crossed by no edge: flood-fill the regions between boundaries, one lookup per region.
    is_boundary = np.zeros(fnx * fny, dtype=np.bool_)
    is_boundary[boundary_cells] = True
    labels, n_regions = K.flood_components(is_boundary, fnx, fny)
    fine = np.full(fnx * fny, K.NONE, dtype=np.int64)
    if n_regions:
        inner = labels >= 0
        _, region_cell = np.unique(labels[inner], return_index=True)
        cell_of_region = np.flatnonzero(inner)[region_cell]
        centres = shapely.points(
            x0 + (cell_of_region % fnx + 0.5) * dx, y0 + (cell_of_region // fnx + 0.5) * dy
        )
        pt, unit = tree.query(centres, predicate="intersects")
        region_unit = np.full(n_regions, n_units, dtype=np.int64)
        np.minimum.at(region_unit, pt, unit)  # overlapping layers: the smallest code
        region_unit[region_unit == n_units] = K.NONE
        fine[inner] = region_unit[labels[inner]]
    del labels, is_boundary
    fine[boundary_cells] = K.NONE - 1  # a placeholder until the records have their places

    # Coarse cells of K.BLOCK x K.BLOCK fine cells: one entry where the block is uniform, else a block.
    nx, ny = fnx // K.BLOCK, fny // K.BLOCK
    blocks = fine.reshape(ny, K.BLOCK, nx, K.BLOCK).transpose(0, 2, 1, 3).reshape(nx * ny, K.BLOCK * K.BLOCK)
    uniform = (blocks == blocks[:, :1]).all(axis=1) & (blocks[:, 0] >= K.NONE)
    mixed = np.flatnonzero(~uniform)
    blocks_base = K.I_HEADER + nx * ny
    records_base = blocks_base + len(mixed) * K.BLOCK * K.BLOCK

    # Boundary records; reference points are cell centres (recomputed by the kernel) unless nudged.
    nudged = np.flatnonzero((refs[:, 0] != centres_x) | (refs[:, 1] != centres_y))
    ref_index = np.full(n_leaves, -1, dtype=np.int64)
    ref_index[nudged] = K.F_HEADER + edges.size + 2 * np.arange(len(nudged))
    records, offsets = K.pack_records(
        ref_index, leaf_cand, cand_rank, cand_inside, cand_edges, which, records_base
    )
    fine[boundary_cells] = -(offsets + 2)
    blocks = fine.reshape(ny, K.BLOCK, nx, K.BLOCK).transpose(0, 2, 1, 3).reshape(nx * ny, K.BLOCK * K.BLOCK)
    coarse = np.where(uniform, blocks[:, 0], 0)
    coarse[mixed] = -(blocks_base + np.arange(len(mixed)) * K.BLOCK * K.BLOCK + 2)
    F = np.concatenate(
        [
            np.array([x0, y0, 1.0 / (dx * K.BLOCK), 1.0 / (dy * K.BLOCK), dx, dy]),
            edges.ravel(),
            refs[nudged].ravel(),
        ]
    )
    I = np.concatenate([np.array([nx, ny, K.BLOCK, K.F_HEADER]), coarse, blocks[mixed].ravel(), records])
    if F.size >= 2**31 - 2 or I.size >= 2**31 - 2:
        raise InvalidGeometry("index too large for 32-bit cell pointers")
    I = I.astype(np.int32)
    stats = IndexStats(
        units=n_units,
        edges=len(edges),
        cells=fnx * fny,
        boundary_cells=n_leaves,
        edge_entries=len(which),
        nbytes=int(F.nbytes + I.nbytes),
    )
    return _Packed(F, I, stats)


# ---- hierarchy -----------------------------------------------------------------------------------


def _split_levels(
    frame: gpd.GeoDataFrame, level: str | Level | None
) -> list[tuple[Level | None, gpd.GeoDataFrame]]:
    """The frame's levels, outermost first, ending with the one to index."""
    if "level" not in frame.columns:
        return [(None, frame)]
    present = sorted({parse_level(v) for v in frame["level"].dropna().unique()})
    target = parse_level(level) if level is not None else present[-1]
    if target not in present:
        raise NotFound(f"no units of level {target.name} to index", level=target.name)
    layers = [(lvl, frame[frame["level"] == lvl.name]) for lvl in present if lvl < target]
    return [*layers, (target, frame[frame["level"] == target.name])]


def _link_parents(
    layers: list[tuple[Level | None, gpd.GeoDataFrame]], code: str, name: str | None, tolerance_m2: float
) -> tuple[dict[str, tuple[dict[str, str], dict[str, str]]], list[ParentCorrection]]:
    """For each ancestor level: leaf code -> ancestor code and leaf code -> ancestor name, by geometry."""
    leaf_level, leaf = layers[-1]
    if leaf_level is None or len(layers) == 1:
        return {}, []
    corrections: list[ParentCorrection] = []
    # Walk up from the indexed level: each level's units are linked to the next level present above.
    child_level, children = leaf_level, leaf
    chain: dict[str, str] = {}  # unit code -> its parent's code (corrected), across all levels
    for parent_level, parents in reversed(layers[:-1]):
        assert parent_level is not None
        codes = children[code].astype(str).to_numpy()
        linked = {c: c[: parent_level.value] for c in codes}
        check = gpd.GeoDataFrame({"code": codes}, geometry=children.geometry.to_numpy(), crs=4326)
        parent_frame = gpd.GeoDataFrame(
            {"code": parents[code].astype(str).to_numpy()}, geometry=parents.geometry.to_numpy(), crs=4326
        )
        violations = check_parents(check, parent_frame, tolerance_m2=tolerance_m2, parent_level=parent_level)
        if violations:
            tree = shapely.STRtree(parent_frame.geometry.to_numpy())
            by_code = dict(zip(codes, children.geometry.to_numpy(), strict=True))
            for v in violations:
                geom = by_code[v.code]
                hits = tree.query(geom, predicate="intersects")
                areas = shapely.area(shapely.intersection(parent_frame.geometry.to_numpy()[hits], geom))
                best = str(parent_frame["code"].iloc[hits[int(np.argmax(areas))]]) if len(hits) else None
                linked[v.code] = best or ""
                corrections.append(
                    ParentCorrection(v.code, child_level.name, v.parent_code, best, v.outside_m2)
                )
        chain.update(linked)
        child_level, children = parent_level, parents
    names: dict[str, str] = {}
    for _, frame in layers[:-1]:
        values = frame[name].astype(str) if name and name in frame.columns else frame[code].astype(str)
        names.update(zip(frame[code].astype(str), values, strict=True))
    leaf_codes = leaf[code].astype(str).to_numpy()
    result: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    current = {c: c for c in leaf_codes}
    for lvl, _ in reversed(layers[:-1]):
        assert lvl is not None
        current = {c: chain.get(p, "") if p else "" for c, p in current.items()}
        result[lvl.name] = (dict(current), {c: names.get(p, "") for c, p in current.items()})
    return result, corrections
