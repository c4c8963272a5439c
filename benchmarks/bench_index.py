"""Point-in-grid benchmark: GeoGrid's index beside geopandas.sjoin, shapely STRtree and PostGIS, one run.

On the demo county's micro-grids, with N points uniform in the county's box plus every vertex and every
edge midpoint of the units. Prints points/s for each, the ratio to GeoGrid, the index's build time and
memory (and for the same units spread over 100x the area), load-from-cache time, single-lookup
latencies, and each method's disagreements with the exact oracle (shapely ``covers`` plus the
smallest-code rule). Peers that use ``within`` disagree on boundary points by design; that is reported,
not hidden.

    python benchmarks/bench_index.py [--points 10000000] [--postgis-points N] [--skip-postgis]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geogrid.db import Store
from geogrid.index import GridIndex
from geogrid.io import read_boundaries

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgis import scratch_database

ROOT = Path(__file__).resolve().parent.parent


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def smallest(n: int, point_idx: np.ndarray, unit_idx: np.ndarray, n_units: int) -> np.ndarray:
    best = np.full(n, n_units)
    np.minimum.at(best, point_idx, unit_idx)
    best[best == n_units] = -1
    return best


def probe(geoms: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(2026)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    coords = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geoms)))
    mid = (coords[:-1] + coords[1:]) / 2
    xs = np.concatenate([rng.uniform(x0, x1, n), coords[:, 0], mid[:, 0]])
    ys = np.concatenate([rng.uniform(y0, y1, n), coords[:, 1], mid[:, 1]])
    return xs, ys, len(coords) + len(mid)


def postgis_join(micro: gpd.GeoDataFrame, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit ranks by a PostGIS ST_Covers join (smallest code per point), and the join's seconds."""
    with scratch_database() as engine:
        store = Store(engine)
        store.import_units("bench", micro, "microgrid", commit=True)
        store.publish("bench", dt.date(2026, 1, 1))
        raw = engine.raw_connection()
        cur = raw.cursor()
        cur.execute("CREATE UNLOGGED TABLE pts (id int, geom geometry(Point, 4326))")
        with cur.copy("COPY pts (id, geom) FROM STDIN") as copy:
            for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
                copy.write_row((i, f"SRID=4326;POINT({x!r} {y!r})"))
        cur.execute("ANALYZE pts")
        raw.commit()
        start = time.perf_counter()
        cur.execute(
            "SELECT p.id, u.code FROM pts p JOIN unit u ON ST_Covers(u.geom, p.geom) WHERE u.level = 'microgrid'"
        )
        rows = cur.fetchall()
        seconds = time.perf_counter() - start
        raw.close()
    rank_of = {c: i for i, c in enumerate(micro.sort_values("code")["code"])}
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    ranks = np.fromiter((rank_of[r[1]] for r in rows), dtype=np.int64, count=len(rows))
    return smallest(len(xs), ids, ranks, len(rank_of)), seconds


def single_lookups(
    index: GridIndex, xs: np.ndarray, ys: np.ndarray, n: int = 200_000
) -> tuple[float, float, float]:
    """p50 and p99 of one ``locate`` call (timer overhead subtracted), and the timer's own cost, in µs."""
    locate, clock = index.locate, time.perf_counter_ns
    pts = list(zip(xs[:n].tolist(), ys[:n].tolist(), strict=True))
    for x, y in pts[:1000]:
        locate(x, y)
    empty = []
    for _ in range(20_000):
        t = clock()
        empty.append(clock() - t)
    overhead = float(np.median(empty))
    times = np.empty(len(pts))
    for k, (x, y) in enumerate(pts):
        t = clock()
        locate(x, y)
        times[k] = clock() - t
    times -= overhead
    return float(np.percentile(times, 50)) / 1e3, float(np.percentile(times, 99)) / 1e3, overhead / 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--postgis-points", type=int, default=None, help="default: the same as --points")
    parser.add_argument("--skip-postgis", action="store_true")
    args = parser.parse_args(argv)

    micro = read_boundaries(ROOT / "boundaries" / "demo" / "microgrids.geojson")
    GridIndex.from_frame(micro.head(50))  # compile the kernels outside the timings
    index, build_s = timed(lambda: GridIndex.from_frame(micro))
    geoms = index.geoms
    with tempfile.TemporaryDirectory() as tmp:
        path = index.save(Path(tmp) / "index.npz")
        _, load_s = timed(lambda: GridIndex.load(path))
    rural = micro.assign(
        geometry=micro.geometry.scale(10, 10, origin=shapely.centroid(shapely.union_all(geoms)))
    )
    rural_index = GridIndex.from_frame(rural)

    xs, ys, n_edge_points = probe(geoms, args.points)
    n = len(xs)
    print(
        f"Point-in-grid on the demo county: {len(geoms):,} micro-grids, {n:,} points "
        f"({args.points:,} uniform + {n_edge_points:,} vertices and edge midpoints)\n"
    )
    print(
        f"index: build {build_s:.1f} s, load from cache {load_s * 1000:.0f} ms, "
        f"memory {index.stats.nbytes / 1e6:.1f} MB ({index.stats.boundary_cells:,} boundary cells); "
        f"same units over 100x the area: {rural_index.stats.nbytes / 1e6:.1f} MB "
        f"(x{rural_index.stats.nbytes / index.stats.nbytes:.2f})"
    )

    # The exact oracle: GEOS covers + the smallest code.
    pt, unit = shapely.STRtree(geoms).query(shapely.points(xs, ys), predicate="covered_by")
    truth = smallest(n, pt, unit, len(geoms))

    results: dict[str, tuple[float, np.ndarray, int]] = {}
    index.assign(xs[:1000], ys[:1000])
    runs = []
    for _ in range(3):
        res, sec = timed(lambda: index.assign(xs, ys))
        runs.append(sec)
    results["GeoGrid GridIndex.assign"] = (min(runs), res.rank, n)

    tree = shapely.STRtree(geoms)
    points = shapely.points(xs, ys)
    (p_idx, u_idx), sec = timed(lambda: tree.query(points, predicate="within"))
    results["shapely STRtree.query(within)"] = (sec, smallest(n, p_idx, u_idx, len(geoms)), n)

    frame = gpd.GeoDataFrame({"code": index.codes}, geometry=geoms, crs=4326)
    pts_frame = gpd.GeoDataFrame(geometry=points, crs=4326)
    joined, sec = timed(lambda: gpd.sjoin(pts_frame, frame, predicate="within", how="left"))
    rank = joined["index_right"].fillna(-1).to_numpy(dtype=np.int64)
    results["geopandas.sjoin(within)"] = (
        sec,
        smallest(n, joined.index.to_numpy(), np.where(rank < 0, len(geoms), rank), len(geoms)),
        n,
    )

    if not args.skip_postgis:
        m = args.postgis_points or n
        try:
            ranks, sec = postgis_join(micro, xs[:m], ys[:m])
            results["PostGIS ST_Covers join"] = (sec, ranks, m)
        except Exception as exc:  # report, don't hide
            print(f"PostGIS: unavailable ({exc})")

    base = results["GeoGrid GridIndex.assign"]
    base_rate = base[2] / base[0]
    print(f"\n{'method':34s} {'points/s':>12s} {'GeoGrid is':>12s} {'disagree w/ oracle':>20s}")
    for name, (sec, ranks, m) in results.items():
        rate = m / sec
        disagree = int((ranks != truth[:m]).sum())
        print(f"{name:34s} {rate / 1e6:9.2f} M/s {base_rate / rate:10.1f}x {disagree:>20,}")
    p50, p99, overhead = single_lookups(index, xs, ys)
    print(
        f"\nsingle lookups, GridIndex.locate in process: p50 {p50:.2f} µs, p99 {p99:.2f} µs "
        f"(timer overhead {overhead:.2f} µs subtracted)"
    )
    t0 = time.perf_counter()
    for x, y in zip(xs[:20000].tolist(), ys[:20000].tolist(), strict=True):
        shapely.intersects_xy(geoms[0], x, y)
    print(
        f"for scale: one shapely intersects_xy call on one polygon: {(time.perf_counter() - t0) / 20000 * 1e6:.2f} µs"
    )
    return 0


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    sys.exit(main())
