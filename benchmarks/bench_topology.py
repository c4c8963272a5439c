"""Topology benchmark: GeoGrid's check beside maup's doctor and a PostGIS ST_Union gap/overlap query.

On the demo county's micro-grids against their grids, clean and with planted defects; one run, times and
ratios printed, plus what each tool found.

    python benchmarks/bench_topology.py [--skip-postgis]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import geopandas as gpd
import sqlalchemy as sa

from geogrid.crs import local_metric_crs
from geogrid.db import Store
from geogrid.io import read_boundaries
from geogrid.topology import check

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgis import scratch_database

ROOT = Path(__file__).resolve().parent.parent


def planted(micro: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Micro-grids with a deleted unit (a gap) and one unit grown by 10 m (overlaps)."""
    out = micro.copy()
    metric = local_metric_crs(111.2, 39.85)
    grown = gpd.GeoSeries([out.geometry.iloc[500]], crs=4326).to_crs(metric).buffer(10).to_crs(4326).iloc[0]
    out.loc[out.index[500], "geometry"] = grown
    return out.drop(index=out.index[1500])


def postgis(micro: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> tuple[float, float, float]:
    """Gap area inside the grids and total overlap area, by ST_Union/ST_Difference and a self-join."""
    with scratch_database() as engine:
        store = Store(engine)
        store.import_units("b", grids, "grid", commit=True)
        store.import_units("b", micro, "microgrid", commit=True)
        with engine.connect() as conn:
            start = time.perf_counter()
            gap = conn.execute(
                sa.text(
                    "SELECT ST_Area(ST_Difference((SELECT ST_Union(geom) FROM unit WHERE level='grid'),"
                    " (SELECT ST_Union(geom) FROM unit WHERE level='microgrid'))::geography)"
                )
            ).scalar()
            overlap = conn.execute(
                sa.text(
                    "SELECT coalesce(sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0) FROM unit a"
                    " JOIN unit b ON a.level='microgrid' AND b.level='microgrid' AND a.id < b.id"
                    " AND ST_Overlaps(a.geom, b.geom)"
                )
            ).scalar()
            seconds = time.perf_counter() - start
    return seconds, float(gap), float(overlap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-postgis", action="store_true")
    args = parser.parse_args(argv)
    micro = read_boundaries(ROOT / "boundaries" / "demo" / "microgrids.geojson")
    grids = read_boundaries(ROOT / "boundaries" / "demo" / "grids.geojson")
    broken = planted(micro)
    print(
        f"Topology check on {len(broken):,} micro-grids against {len(grids)} grids (1 deleted, 1 grown 10 m)\n"
    )
    start = time.perf_counter()
    report = check(broken, grids)
    ours = time.perf_counter() - start
    found = {k: v for k, v in report.summary["count"].items() if v}
    print(f"{'GeoGrid topology.check':34s} {ours:7.2f} s  found {found}")
    results = {"GeoGrid topology.check": ours}
    try:
        import maup

        metric = local_metric_crs(111.2, 39.85)
        shapes = broken.to_crs(metric)
        start = time.perf_counter()
        healthy = maup.doctor(shapes, silent=True)
        took = time.perf_counter() - start
        results["maup.doctor"] = took
        print(f"{'maup.doctor':34s} {took:7.2f} s  healthy={healthy} (says whether, not where or how much)")
    except ImportError:
        print("maup: not installed (pip install maup) — skipped")
    if not args.skip_postgis:
        took, gap, overlap = postgis(broken, grids)
        results["PostGIS ST_Union + self-join"] = took
        print(
            f"{'PostGIS ST_Union + self-join':34s} {took:7.2f} s  gap {gap:,.0f} m², overlaps {overlap:,.0f} m² (totals only)"
        )
    print()
    for name, seconds in results.items():
        print(f"  {name:34s} GeoGrid is {seconds / ours:5.1f}x as fast")

    return 0


if __name__ == "__main__":
    sys.exit(main())
