"""Compiled kernels of the point-in-grid index: exact orientation, cell build, point location.

Everything here is plain numba-compatible Python: with ``NUMBA_DISABLE_JIT=1`` the same code runs as
pure Python, which the tests use to check the compiled kernels against it.

Exactness: every geometric decision reduces to the sign of a 2x2 orientation determinant of double
coordinates. :func:`orient` computes it with Shewchuk's fast filter and, when the filter cannot decide,
exactly (error-free products and an expansion sum), so the index agrees with GEOS's robust predicates
on every point, including points on edges and vertices.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_EPS = 2.0**-53
_CCW_ERRBOUND_A = (3.0 + 16.0 * _EPS) * _EPS
_SPLITTER = 134217729.0  # 2**27 + 1

NONE = -1  # a top-grid entry or result meaning "no unit"


@njit(cache=True, inline="always")
def _two_sum(a: float, b: float) -> tuple[float, float]:
    x = a + b
    bv = x - a
    av = x - bv
    return x, (a - av) + (b - bv)


@njit(cache=True, inline="always")
def _split(a: float) -> tuple[float, float]:
    c = _SPLITTER * a
    big = c - a
    hi = c - big
    return hi, a - hi


@njit(cache=True, inline="always")
def _two_product(a: float, b: float) -> tuple[float, float]:
    x = a * b
    ahi, alo = _split(a)
    bhi, blo = _split(b)
    err = x - ahi * bhi
    err -= alo * bhi
    err -= ahi * blo
    return x, alo * blo - err


@njit(cache=True)
def _orient_exact(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> int:
    """Sign of the orientation determinant, exactly: six error-free products summed as an expansion."""
    terms = np.empty(12)
    x, y = _two_product(ax, by)
    terms[0], terms[1] = x, y
    x, y = _two_product(-ax, cy)
    terms[2], terms[3] = x, y
    x, y = _two_product(-by, cx)
    terms[4], terms[5] = x, y
    x, y = _two_product(-ay, bx)
    terms[6], terms[7] = x, y
    x, y = _two_product(ay, cx)
    terms[8], terms[9] = x, y
    x, y = _two_product(bx, cy)
    terms[10], terms[11] = x, y
    expansion = np.zeros(13)
    m = 0
    for t in range(12):
        q = terms[t]
        for i in range(m):  # Shewchuk's Grow-Expansion: stays non-overlapping, ascending magnitude
            q, h = _two_sum(q, expansion[i])
            expansion[i] = h
        expansion[m] = q
        m += 1
    for i in range(m - 1, -1, -1):
        if expansion[i] > 0.0:
            return 1
        if expansion[i] < 0.0:
            return -1
    return 0


@njit(cache=True, inline="always")
def orient(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> int:
    """+1 if c lies left of a→b, -1 if right, 0 if on the line; exact for any double inputs.

    Shewchuk's filter: the rounded determinant's sign is right whenever its magnitude exceeds the
    error bound, which is almost always; otherwise the exact expansion decides.
    """
    detleft = (ax - cx) * (by - cy)
    detright = (ay - cy) * (bx - cx)
    det = detleft - detright
    if abs(det) > _CCW_ERRBOUND_A * (abs(detleft) + abs(detright)):
        return int(det > 0.0) - int(det < 0.0)
    return _orient_exact(ax, ay, bx, by, cx, cy)


@njit(cache=True, inline="always")
def on_segment(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> bool:
    """True when p lies on the closed segment a-b (exactly)."""
    if px < min(ax, bx) or px > max(ax, bx) or py < min(ay, by) or py > max(ay, by):
        return False
    return orient(ax, ay, bx, by, px, py) == 0


@njit(cache=True, inline="always")
def crosses(cx: float, cy: float, px: float, py: float, ax: float, ay: float, bx: float, by: float) -> bool:
    """Whether segment c→p crosses edge a-b, with vertices on the line c-p counted on its left side.

    That rule is a consistent symbolic perturbation of the vertices, so the parity of crossings along
    c→p equals inside(c) xor inside(p) exactly, provided neither c nor p lies on the boundary.
    """
    o1 = orient(cx, cy, px, py, ax, ay)
    o2 = orient(cx, cy, px, py, bx, by)
    if (o1 >= 0) == (o2 >= 0):
        return False
    o3 = orient(ax, ay, bx, by, cx, cy)
    o4 = orient(ax, ay, bx, by, px, py)
    if o3 == 0 or o4 == 0:
        return False
    return (o3 > 0) != (o4 > 0)


@njit(cache=True)
def segment_hits_box(
    ax: float, ay: float, bx: float, by: float, x0: float, y0: float, x1: float, y1: float
) -> bool:
    """Liang-Barsky: does segment a-b meet the closed box (callers pad the box, so this is conservative)."""
    t0, t1 = 0.0, 1.0
    dx, dy = bx - ax, by - ay
    for k in range(4):
        if k == 0:
            p, q = -dx, ax - x0
        elif k == 1:
            p, q = dx, x1 - ax
        elif k == 2:
            p, q = -dy, ay - y0
        else:
            p, q = dy, y1 - ay
        if p == 0.0:
            if q < 0.0:
                return False
        else:
            r = q / p
            if p < 0.0:
                if r > t1:
                    return False
                if r > t0:
                    t0 = r
            else:
                if r < t0:
                    return False
                if r < t1:
                    t1 = r
    return True


@njit(cache=True)
def edge_cells(
    edges: np.ndarray, x0: float, y0: float, dx: float, dy: float, nx: int, ny: int, pad: float
) -> tuple[np.ndarray, np.ndarray]:
    """(cell, edge) pairs for every grid cell (padded by ``pad``) that each edge meets."""
    n = edges.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    for pass_ in range(2):
        if pass_ == 1:
            total = counts.sum()
            cells = np.empty(total, dtype=np.int64)
            which = np.empty(total, dtype=np.int64)
            k = 0
        for e in range(n):
            ax, ay, bx, by = edges[e, 0], edges[e, 1], edges[e, 2], edges[e, 3]
            i0 = max(int(math.floor((min(ax, bx) - pad - x0) / dx)), 0)
            i1 = min(int(math.floor((max(ax, bx) + pad - x0) / dx)), nx - 1)
            j0 = max(int(math.floor((min(ay, by) - pad - y0) / dy)), 0)
            j1 = min(int(math.floor((max(ay, by) + pad - y0) / dy)), ny - 1)
            c = 0
            for j in range(j0, j1 + 1):
                for i in range(i0, i1 + 1):
                    cx0 = x0 + i * dx - pad
                    cy0 = y0 + j * dy - pad
                    if segment_hits_box(ax, ay, bx, by, cx0, cy0, cx0 + dx + 2 * pad, cy0 + dy + 2 * pad):
                        if pass_ == 1:
                            cells[k] = j * nx + i
                            which[k] = e
                            k += 1
                        c += 1
            counts[e] = c
    return cells, which


@njit(cache=True)
def flood_components(boundary: np.ndarray, nx: int, ny: int) -> tuple[np.ndarray, int]:
    """Label 4-connected components of non-boundary cells (boundary cells get -1)."""
    n = nx * ny
    label = np.full(n, -1, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    current = 0
    for start in range(n):
        if boundary[start] or label[start] != -1:
            continue
        label[start] = current
        top = 0
        stack[top] = start
        top += 1
        while top > 0:
            top -= 1
            c = stack[top]
            i, j = c % nx, c // nx
            for k in range(4):
                ni, nj = i, j
                if k == 0:
                    ni = i - 1
                elif k == 1:
                    ni = i + 1
                elif k == 2:
                    nj = j - 1
                else:
                    nj = j + 1
                if ni < 0 or nj < 0 or ni >= nx or nj >= ny:
                    continue
                nb = nj * nx + ni
                if not boundary[nb] and label[nb] == -1:
                    label[nb] = current
                    stack[top] = nb
                    top += 1
        current += 1
    return label, current


# The index travels as two flat arrays, so that a single lookup from Python passes two arguments.
#   F (float64): x0, y0, 1/cdx, 1/cdy (coarse cells), fdx, fdy (fine cells), then the edge table
#                (ax, ay, bx, by per edge) and the reference points of the few cells whose centre lies
#                on an edge.
#   I (int32):   nx, ny, m, offset of the edge table in F, then the coarse grid (nx * ny), the m x m fine
#                blocks, and the boundary records. An entry >= 0 is a unit's rank, -1 no unit; in the
#                coarse grid <= -2 points to a fine block at I[-v - 2], in a fine block to a record at
#                I[-v - 2]: ref (-1: the cell centre, else an index into F), n_candidates, then per
#                candidate (ascending code) rank, inside(ref), n_edges and the edges' ids.
# Everything a lookup touches is a few tens of MB for a county, so it stays in the CPU's last-level cache.
F_X0, F_Y0, F_IDX, F_IDY, F_FDX, F_FDY, F_HEADER = 0, 1, 2, 3, 4, 5, 6
I_NX, I_NY, I_M, I_EDGES, I_HEADER = 0, 1, 2, 3, 4
BLOCK = 8  # fine cells per coarse cell side (a compile-time constant: the kernels index with it)
CHUNK = 8192


@njit(cache=True)
def _in_record(px: float, py: float, rx: float, ry: float, F: np.ndarray, I: np.ndarray, k: int) -> int:
    """Rank*2 + on_boundary of the first candidate (smallest code) of the record at I[k] covering p; -1 if none."""
    ref = I[k]
    if ref >= 0:
        rx, ry = F[ref], F[ref + 1]
    n_cand = I[k + 1]
    edges = I[I_EDGES]
    k += 2
    for _ in range(n_cand):
        rank = I[k]
        inside = I[k + 1] == 1
        n_edges = I[k + 2]
        k += 3
        on = False
        for t in range(n_edges):
            e = edges + 4 * I[k + t]
            ax, ay, bx, by = F[e], F[e + 1], F[e + 2], F[e + 3]
            if on_segment(px, py, ax, ay, bx, by):
                on = True
                break
            if crosses(rx, ry, px, py, ax, ay, bx, by):
                inside = not inside
        k += n_edges
        if on or inside:
            return rank * 2 + (1 if on else 0)
    return NONE


@njit(cache=True, inline="always")
def _sub(f: float) -> tuple[int, int]:
    """(coarse index, fine index within the coarse cell) of a non-negative coarse-grid coordinate."""
    i = int(f)
    s = int((f - i) * BLOCK)
    return i, s if s < BLOCK else BLOCK - 1


@njit(cache=True)
def locate_one(px: float, py: float, F: np.ndarray, I: np.ndarray) -> int:
    """One point: rank*2 + on_boundary of the unit with the smallest code covering it, or -1."""
    fi = (px - F[F_X0]) * F[F_IDX]
    fj = (py - F[F_Y0]) * F[F_IDY]
    nx = I[I_NX]
    if not (fi >= 0.0 and fj >= 0.0 and fi < nx and fj < I[I_NY]):  # also false for NaN
        return NONE
    i, si = _sub(fi)
    j, sj = _sub(fj)
    v = I[I_HEADER + j * nx + i]
    if v >= NONE:
        return v * 2 if v >= 0 else NONE
    v = I[-v - 2 + sj * BLOCK + si]
    if v >= NONE:
        return v * 2 if v >= 0 else NONE
    rx = F[F_X0] + (i * BLOCK + si + 0.5) * F[F_FDX]
    ry = F[F_Y0] + (j * BLOCK + sj + 0.5) * F[F_FDY]
    return _in_record(px, py, rx, ry, F, I, -v - 2)


@njit(cache=True)  # keeps the GIL: released for microseconds, it takes a thread switch (ms) to get back
def locate_few(xs: np.ndarray, ys: np.ndarray, F: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A few points, one by one on the calling thread, as :func:`locate_many` answers them (for a handful,
    waking the parallel pool costs far more than the work, and its threads take the cores requests need)."""
    n = xs.shape[0]
    ranks = np.empty(n, dtype=np.int32)
    on = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        r = locate_one(xs[i], ys[i], F, I)
        if r < 0:
            ranks[i] = NONE
        else:
            ranks[i] = r >> 1
            on[i] = (r & 1) == 1
    return ranks, on


@njit(cache=True, parallel=True, nogil=True)  # batches: the GIL is free for requests meanwhile
def locate_many(
    xs: np.ndarray, ys: np.ndarray, F: np.ndarray, I: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every point, in parallel: (rank or -1, on_boundary).

    Chunk by chunk, in stages that are each a tight loop of independent loads, so the CPU keeps many
    memory reads in flight: the coarse grid for every point; the fine blocks for points in mixed coarse
    cells; for the few points in boundary cells, a pass that touches their records and edges (a software
    prefetch) before the exact test runs on data already in cache.
    """
    n = xs.shape[0]
    x0, y0, idx, idy = F[F_X0], F[F_Y0], F[F_IDX], F[F_IDY]
    fdx, fdy = F[F_FDX], F[F_FDY]
    nx, ny = I[I_NX], I[I_NY]
    edges = I[I_EDGES]
    n_chunks = (n + CHUNK - 1) // CHUNK
    ranks = np.empty(n, dtype=np.int32)
    on = np.zeros(n, dtype=np.bool_)
    sink = np.zeros(n_chunks)
    for c in prange(n_chunks):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        pending = np.empty(hi - lo, dtype=np.int64)
        where = np.empty(hi - lo, dtype=np.int64)
        value = np.empty(hi - lo, dtype=np.int32)
        k = 0
        for i in range(lo, hi):  # 1. the coarse grid
            fi = (xs[i] - x0) * idx
            fj = (ys[i] - y0) * idy
            v = NONE
            if fi >= 0.0 and fj >= 0.0 and fi < nx and fj < ny:  # also false for NaN
                v = I[I_HEADER + int(fj) * nx + int(fi)]
            ranks[i] = v
            pending[k] = i
            k += v < NONE
        for t in range(k):  # 2. fine blocks: addresses, then a pure gather
            i = pending[t]
            _, si = _sub((xs[i] - x0) * idx)
            _, sj = _sub((ys[i] - y0) * idy)
            where[t] = -ranks[i] - 2 + sj * BLOCK + si
        for t in range(k):
            value[t] = I[where[t]]
        k2 = 0
        for t in range(k):
            v = value[t]
            i = pending[t]
            ranks[i] = v
            pending[k2] = i
            where[k2] = -v - 2
            k2 += v < NONE
        acc = 0.0
        for t in range(k2):  # 3. touch the records...
            acc += I[where[t] + 1]
        for t in range(k2):  # ...and their edges
            r = where[t]
            n_cand = I[r + 1]
            r += 2
            for _ in range(n_cand):
                n_edges = I[r + 2]
                r += 3
                for e in range(n_edges):
                    acc += F[edges + 4 * I[r + e]]
                r += n_edges
        sink[c] = acc
        for t in range(k2):  # ...then decide exactly, from cache
            i = pending[t]
            ci, si = _sub((xs[i] - x0) * idx)
            cj, sj = _sub((ys[i] - y0) * idy)
            rx = x0 + (ci * BLOCK + si + 0.5) * fdx
            ry = y0 + (cj * BLOCK + sj + 0.5) * fdy
            r = _in_record(xs[i], ys[i], rx, ry, F, I, where[t])
            if r < 0:
                ranks[i] = NONE
            else:
                ranks[i] = r >> 1
                on[i] = (r & 1) == 1
    if sink.sum() == 0.123456789:  # keeps the prefetch loops from being optimised away
        ranks[0] = ranks[0]
    return ranks, on


@njit(cache=True)
def pack_records(
    ref_index: np.ndarray,
    leaf_cand: np.ndarray,
    cand_rank: np.ndarray,
    cand_inside: np.ndarray,
    cand_edges: np.ndarray,
    edge_ids: np.ndarray,
    base: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Lay out one contiguous record per boundary cell; return the records and each one's offset."""
    n_leaves = ref_index.shape[0]
    n_cand = cand_rank.shape[0]
    out = np.empty(2 * n_leaves + 3 * n_cand + edge_ids.shape[0], dtype=np.int64)
    offsets = np.empty(n_leaves, dtype=np.int64)
    k = 0
    for leaf in range(n_leaves):
        offsets[leaf] = base + k
        out[k] = ref_index[leaf]
        out[k + 1] = leaf_cand[leaf + 1] - leaf_cand[leaf]
        k += 2
        for c in range(leaf_cand[leaf], leaf_cand[leaf + 1]):
            out[k] = cand_rank[c]
            out[k + 1] = cand_inside[c]
            out[k + 2] = cand_edges[c + 1] - cand_edges[c]
            k += 3
            for e in range(cand_edges[c], cand_edges[c + 1]):
                out[k] = edge_ids[e]
                k += 1
    return out, offsets


@njit(cache=True)
def refs_on_edges(
    refs: np.ndarray, starts: np.ndarray, edge_ids: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """For each cell, whether its reference point lies on one of its edges ``edge_ids[starts[i]:starts[i+1]]``."""
    n = refs.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        for k in range(starts[i], starts[i + 1]):
            e = edge_ids[k]
            if on_segment(refs[i, 0], refs[i, 1], edges[e, 0], edges[e, 1], edges[e, 2], edges[e, 3]):
                out[i] = True
                break
    return out


@njit(cache=True, inline="always")
def _segment_distance(px: float, py: float, seg: np.ndarray, i: int) -> float:
    """Distance from (px, py) to segment ``seg[i]``, computed as GEOS computes it (Distance::pointToSegment),
    so that distances, and therefore ties between units, come out the same to the last bit."""
    ax, ay, bx, by = seg[i, 0], seg[i, 1], seg[i, 2], seg[i, 3]
    if ax == bx and ay == by:
        return math.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    length2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / length2
    if r <= 0.0:
        return math.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    if r >= 1.0:
        return math.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / length2
    return abs(s) * math.sqrt(length2)


@njit(cache=True)
def segments_distance(px: float, py: float, seg: np.ndarray, start: int, end: int) -> float:
    """Distance from (px, py) to the nearest of the segments ``seg[start:end]`` (rows x0, y0, x1, y1)."""
    best = math.inf
    for i in range(start, end):
        best = min(best, _segment_distance(px, py, seg, i))
    return best


@njit(cache=True)
def distances_to_own(
    px: np.ndarray, py: np.ndarray, rank: np.ndarray, seg: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """:func:`segments_distance` of each point to its own unit's segments (unit ``rank``; NaN where < 0)."""
    out = np.full(px.shape[0], np.nan)
    for k in range(px.shape[0]):
        r = rank[k]
        if r >= 0:
            out[k] = segments_distance(px[k], py[k], seg, offsets[r], offsets[r + 1])
    return out


@njit(cache=True)
def nearest_owner(px: float, py: float, seg: np.ndarray, owner: np.ndarray) -> tuple[int, float]:
    """The owner of the segment nearest (px, py) (ties: the smallest owner) and the distance; (-1, inf)
    when there are no segments."""
    best, found = math.inf, -1
    for i in range(seg.shape[0]):
        d = _segment_distance(px, py, seg, i)
        if d < best or (d == best and owner[i] < found):
            best, found = d, owner[i]
    return found, best
