"""Vector tiles benchmark: every tile a dashboard asks for over the demo county, each once (a cold cache).

GeoGrid's ``GET /tiles/{set}/{level}/{z}/{x}/{y}.mvt`` over HTTP (a fresh ``geogrid serve``, one worker,
so no tile and no simplified zoom was made before), beside PostGIS's own encoder on the same tiles
(``ST_AsMVT`` of ``ST_AsMVTGeom`` in one SQL query a tile, from Python over psycopg, no HTTP) — which rounds
each unit to the tile grid alone and does not simplify along shared edges. Per level, the zooms a
dashboard draws it at: latency p50/p95/max and bytes.

    python benchmarks/bench_tiles.py
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from geogrid.db import Store
from geogrid.io import read_boundaries
from geogrid.tiles import tiles_over

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgis import scratch_database
from bench_http import BIN, LAYERS, ROOT, free_port
from bench_incidents import serve

DEMO = ROOT / "boundaries" / "demo"
PLAN = (("street", (10, 11, 12)), ("community", (12, 13)), ("grid", (13, 14)), ("microgrid", (14, 15, 16)))
POSTGIS = sa.text(
    "SELECT ST_AsMVT(q, :level, 4096, 'geom') FROM ("
    " SELECT u.code, u.name, ST_AsMVTGeom(ST_Transform(u.geom, 3857), ST_TileEnvelope(:z, :x, :y), 4096, 64, true)"
    " AS geom FROM unit u WHERE u.version_id = :version AND u.level = :level"
    " AND u.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096), 4326)) AS q"
)


def summary(
    label: str, level: str, zooms: tuple[int, ...], ms: list[float], sizes: list[int]
) -> dict[str, object]:
    ordered = sorted(ms)
    return {
        "method": label, "level": level, "zooms": f"{zooms[0]}–{zooms[-1]}", "tiles": len(ms),
        "p50": statistics.median(ms), "p95": ordered[int(0.95 * (len(ordered) - 1))], "max": ordered[-1],
        "kb": sum(sizes) / len(sizes) / 1024, "kb_max": max(sizes) / 1024,
    }  # fmt: skip


def main() -> None:
    with scratch_database() as engine, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        store = Store(engine, actor="bench")
        for name, level in LAYERS:
            store.import_units("demo", read_boundaries(DEMO / f"{name}.geojson"), level, commit=True)
        store.publish("demo", dt.date(2026, 1, 1))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
            version = conn.execute(sa.text("SELECT max(id) FROM boundary_version")).scalar_one()
        bounds = store.units("demo", level="county").total_bounds
        port = free_port()
        url = engine.url.render_as_string(hide_password=False)
        env = {"GEOGRID_DATABASE_URL": url, "GEOGRID_CACHE_DIR": str(tmp / "cache"), "GEOGRID_ENVIRONMENT": "benchmark",
               "GEOGRID_RATE_LIMIT_PER_MINUTE": "0", "GEOGRID_ESCALATE_EVERY_S": "0"}  # fmt: skip
        command = [
            str(BIN / "geogrid"),
            "serve",
            "--log-level",
            "warning",
            "--workers",
            "1",
            "--port",
            str(port),
        ]
        server = serve(command, env, port, tmp / "serve.log", "/healthz")
        rows = []
        try:
            for level, zooms in PLAN:
                tiles = [(z, x, y) for z in zooms for x, y in tiles_over(bounds, z)]
                ms, sizes = [], []
                for z, x, y in tiles:
                    start = time.perf_counter()
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/tiles/demo/{level}/{z}/{x}/{y}.mvt"
                    ) as got:
                        body = got.read()
                    ms.append((time.perf_counter() - start) * 1e3)
                    sizes.append(len(body))
                rows.append(summary("GeoGrid `/tiles` over HTTP, cold", level, zooms, ms, sizes))
                ms, sizes = [], []
                with engine.connect() as conn:
                    for z, x, y in tiles:
                        start = time.perf_counter()
                        body = conn.execute(
                            POSTGIS, {"z": z, "x": x, "y": y, "version": version, "level": level}
                        ).scalar()
                        ms.append((time.perf_counter() - start) * 1e3)
                        sizes.append(len(body or b""))
                rows.append(summary("PostGIS `ST_AsMVT`, in SQL (no HTTP)", level, zooms, ms, sizes))
        finally:
            server.terminate()
            server.wait(timeout=30)
    every = [r for r in rows if str(r["method"]).startswith("GeoGrid")]
    print("\n| method | level | zooms | tiles | p50 ms | p95 ms | max ms | mean KB | max KB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['level']} | {r['zooms']} | {r['tiles']} | {r['p50']:.1f} | {r['p95']:.1f} | "
              f"{r['max']:.1f} | {r['kb']:.1f} | {r['kb_max']:.0f} |")  # fmt: skip
    print(f"\nGeoGrid, all {sum(int(str(r['tiles'])) for r in every)} tiles: see the rows above")


if __name__ == "__main__":
    main()
