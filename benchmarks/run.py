"""Benchmarks, side by side with their peers in one run; reported as throughput and ratios.

Today: coordinate conversion (GeoGrid's exact GCJ-02 inverse against the common one-step inverse and
against pyproj doing a projection of the same points), and loading the demo county into each store.
The point-in-grid benchmarks arrive with the index.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyproj
import sqlalchemy as sa

from geogrid import crs
from geogrid.db import Store, create_engine, upgrade
from geogrid.io import read_boundaries
from geogrid.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
N = 2_000_000


def rate(fn: Callable[[], object], n: int, repeat: int = 3) -> float:
    """Best-of-``repeat`` throughput in items per second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def bench_crs() -> None:
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(110.9, 111.5, N), rng.uniform(39.6, 40.1, N)
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    gk = pyproj.Transformer.from_crs(4326, 4546, always_xy=True)

    def one_step() -> tuple[np.ndarray, np.ndarray]:
        f = crs.wgs84_to_gcj02(glon, glat)
        return 2 * glon - f[0], 2 * glat - f[1]

    results = {
        "geogrid wgs84_to_gcj02": rate(lambda: crs.wgs84_to_gcj02(lon, lat), N),
        "geogrid gcj02_to_wgs84 (exact)": rate(lambda: crs.gcj02_to_wgs84(glon, glat), N),
        "one-step gcj02 inverse (approx.)": rate(one_step, N),
        "pyproj WGS-84 -> EPSG:4546": rate(lambda: gk.transform(lon, lat), N),
    }
    exact = crs.gcj02_to_wgs84(glon, glat)
    approx = one_step()
    err_exact = np.hypot((exact[0] - lon) * 85_000, (exact[1] - lat) * 111_000).max()
    err_approx = np.hypot((approx[0] - lon) * 85_000, (approx[1] - lat) * 111_000).max()
    base = results["geogrid gcj02_to_wgs84 (exact)"]
    print(f"\nCoordinate conversion, {N:,} points near 111.2E 39.85N")
    for name, value in results.items():
        print(f"  {name:36s} {value / 1e6:8.2f} M points/s   x{value / base:5.2f} of exact inverse")
    print(f"  max error: exact inverse {err_exact * 1000:.3f} mm, one-step inverse {err_approx:.3f} m")


def bench_store() -> None:
    layers = [
        ("county", "county"),
        ("streets", "street"),
        ("communities", "community"),
        ("grids", "grid"),
        ("microgrids", "microgrid"),
    ]
    frames = {
        level: read_boundaries(ROOT / "boundaries" / "demo" / f"{name}.geojson") for name, level in layers
    }
    n_units = sum(len(f) for f in frames.values())
    print(f"\nLoading the demo county ({n_units:,} units) and publishing it")
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"spatialite": f"sqlite:///{tmp}/bench.sqlite"}
        pg_name = f"geogrid_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
            urls["postgis"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
        except Exception as exc:
            print(f"  postgis: unavailable ({exc})")
        for backend, url in urls.items():
            engine = create_engine(Settings(database_url=url))
            upgrade(engine)
            store = Store(engine)
            start = time.perf_counter()
            for level, frame in frames.items():
                store.import_units("demo", frame, level, commit=True)
            loaded = time.perf_counter()
            store.publish("demo", dt.date(2026, 1, 1))
            published = time.perf_counter()
            store.units("demo")
            read = time.perf_counter()
            print(
                f"  {backend:10s} import {loaded - start:5.2f} s ({n_units / (loaded - start):6.0f} units/s)"
                f"  publish+hierarchy check {published - loaded:5.2f} s  read all {read - published:5.2f} s"
            )
            engine.dispose()
        if "postgis" in urls:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def main() -> int:
    bench_crs()
    bench_store()
    return 0


if __name__ == "__main__":
    sys.exit(main())
