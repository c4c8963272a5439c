"""How a polygon layer is cut into the cells of a GridIndex: the adaptive cell cover and its packing.

Coarse cells of BLOCK x BLOCK fine cells; a coarse cell wholly inside one unit (or outside all) is one
table entry, a mixed one holds a fine block; a fine cell crossed by boundaries keeps a record with only the
edges crossing it and a reference point whose containment GEOS decided. See index_kernels for the layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from numpy.typing import NDArray

from geogrid import index_kernels as K
from geogrid.errors import InvalidGeometry

FINE_CELLS_PER_EDGE = 600  # fine cells per boundary edge: ~2.5% of the area lies in boundary cells
MAX_FINE_CELLS = 1 << 24
PAD_DEG = 1e-9  # cells are widened by this when collecting the edges that cross them (conservative)


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
class Packed:
    F: NDArray[np.float64]
    I: NDArray[np.int32]
    stats: IndexStats = field(default_factory=lambda: IndexStats(0, 0, 0, 0, 0, 0))


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


def build_cover(geoms: NDArray[np.object_]) -> Packed:
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
    return Packed(F, I, stats)
