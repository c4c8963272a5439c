"""Incidents benchmark: intake over HTTP, hotline import and the KPI query, on PostGIS.

1. **Intake**: ``POST /v1/incidents`` (JSON, WGS-84 point, a unique Idempotency-Key each) on the demo
   county, every incident committed before it is acknowledged, at 16 connections (wrk, loopback, ``--seconds``
   per round, interleaved rounds) — beside the peer ``benchmarks/incident_peer.py`` (plain FastAPI +
   SQLAlchemy ORM, one committed insert per request, no placing, no key, no log). Both served by uvicorn with
   ``--workers`` processes. Afterwards every acknowledged incident must be in the database exactly once.
2. **Hotline import**: a generated 12345 export (``--rows``, 80% coordinates in four CRSs, 20% address
   texts of the demo registry) through ``import_hotline`` with commit: rows/s; again (nothing new).
3. **KPIs**: ``--kpi-rows`` synthetic incidents (a year, every micro-grid) written straight into the table,
   then ``IncidentStore.kpis`` by grid and by street over all of them: the median of five runs.

    python benchmarks/bench_incidents.py [--seconds 10] [--rounds 3] [--rows 50000] [--kpi-rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import shapely
import sqlalchemy as sa

from geogrid.access import Role
from geogrid.addresses.matcher import Matcher
from geogrid.addresses.registry import address_text, read_addresses
from geogrid.crs import wgs84_to_bd09, wgs84_to_gcj02
from geogrid.db import Store, incident_kpis
from geogrid.db.addresses import AddressStore
from geogrid.db.incident_imports import VersionIndexes, import_hotline
from geogrid.db.incidents import IncidentStore
from geogrid.db.keys import Keys
from geogrid.db.schema import incident
from geogrid.incidents.calendar import default_calendar
from geogrid.incidents.catalogue import catalogue
from geogrid.io import read_boundaries

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgis import scratch_database
from bench_http import BIN, LAYERS, ROOT, free_port, pinned

CST = ZoneInfo("Asia/Shanghai")
DEMO = ROOT / "boundaries" / "demo"


def microgrid_points(store: Store, n: int = 4000, seed: int = 1) -> list[tuple[float, float]]:
    """``n`` points, each within ~20 m of a micro-grid's representative point and inside that micro-grid
    (every micro-grid in turn, shuffled): reports the county places, none refused as outside it."""
    rng = random.Random(seed)
    units = store.units("demo", level="microgrid")
    cells = list(zip(units.geometry, units.geometry.representative_point(), strict=True))
    rng.shuffle(cells)
    points = []
    for shape, middle in (cells * (n // len(cells) + 1))[:n]:
        x, y = middle.x, middle.y
        for _ in range(20):
            jittered = (middle.x + rng.uniform(-2e-4, 2e-4), middle.y + rng.uniform(-2e-4, 2e-4))
            if shape.contains(shapely.Point(jittered)):
                x, y = jittered
                break
        points.append((x, y))
    return points


def intake_script(path: Path, key: str, points: list[tuple[float, float]], run: str) -> Path:
    """A wrk script posting one incident per request, each with its own idempotency key."""
    rows = ",".join(f"{{{x:.6f},{y:.6f}}}" for x, y in points)
    path.write_text(
        "local points = {" + rows + "}\nlocal n = 0\n"
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        "  n = n + 1\n"
        "  local p = points[n % #points + 1]\n"
        f'  wrk.headers["Idempotency-Key"] = "{run}-" .. n\n'
        '  local body = string.format(\'{"category":"E0102","description":"bench %d","channel":"app",'
        '"coordinates":{"x":%.6f,"y":%.6f,"crs":"wgs84"}}\', n, p[1], p[2])\n'
        "  return wrk.format(nil, nil, nil, body)\n"
        "end\n",
        encoding="utf-8",
    )
    return path


def wrk_post(
    port: int, path: str, script: Path, seconds: int, connections: int, *, strict: bool = True
) -> dict[str, float]:
    """Requests/s, p50/p99 (ms) and the requests completed (all 2xx, or an error) from one wrk run."""
    run = subprocess.run(
        pinned(0, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                   f"http://127.0.0.1:{port}{path}"]),
        capture_output=True, text=True,
    )  # fmt: skip
    out = run.stdout
    if run.returncode:
        raise RuntimeError(f"wrk exited with {run.returncode}:\n{out}\n{run.stderr}")
    if strict and ("Non-2xx" in out or "Socket errors" in out):
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]

    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "done": done}


def serve(
    command: list[str], env: dict[str, str], port: int, log: Path, probe: str
) -> subprocess.Popen[bytes]:
    """Start a server and wait until ``probe`` answers."""
    import os
    import urllib.request

    # not pinned: a committed insert needs PostgreSQL's CPU too, so the servers and the database share
    # both cores (wrk, on CPU 0, takes little)
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=5).read()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.3)
    raise RuntimeError(f"{command} did not answer in 180 s")


def intake(engine: sa.Engine, store: Store, tmp: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    """GeoGrid's intake and the ORM peer's at 16 connections, interleaved rounds; then the exactly-once check."""
    key = Keys(engine).create("bench reporter", Role.reporter)[1]
    url = engine.url.render_as_string(hide_password=False)
    points = microgrid_points(store)
    workers = str(args.workers)
    servers = {
        "GeoGrid `POST /v1/incidents`": (
            [str(BIN / "geogrid"), "serve", "--log-level", "warning", "--workers", workers],
            {"GEOGRID_DATABASE_URL": url, "GEOGRID_CACHE_DIR": str(tmp / "cache"), "GEOGRID_ENVIRONMENT": "benchmark",
             "GEOGRID_RATE_LIMIT_PER_MINUTE": "0", "GEOGRID_ESCALATE_EVERY_S": "0"},
            "/v1/incidents", "/v1/services",
        ),
        "FastAPI + SQLAlchemy ORM, insert per request": (
            [str(BIN / "uvicorn"), "--no-access-log", "--log-level", "warning", "--workers", workers,
             "benchmarks.incident_peer:app"],
            {"GEOGRID_BENCH_URL": url},
            "/incidents", "/docs",
        ),
    }  # fmt: skip
    ports = {label: free_port() for label in servers}
    running = [
        serve([*cmd, "--port", str(ports[label])], env, ports[label], tmp / f"{label[:6]}.log", probe)
        for label, (cmd, env, _, probe) in servers.items()
    ]
    results: dict[str, list[dict[str, float]]] = {label: [] for label in servers}
    acknowledged = 0
    try:
        for label, (_, _, path, _) in servers.items():  # warm-up: indexes, pools, JIT
            wrk_post(
                ports[label], path, intake_script(tmp / "w.lua", key, points, f"warm-{label[:3]}"), 15, 16,
                strict=False,  # start-up work (the address matcher is built beside the first requests)
            )  # fmt: skip
        # the steady state: statistics of tables that are no longer empty (autovacuum's ANALYZE, which a
        # service running for a day has had, re-plans the writers' prepared statements)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for label in order:
                _, _, path, _ = servers[label]
                script = intake_script(tmp / f"r{r}.lua", key, points, f"round{r}-{label[:3]}")
                got = wrk_post(ports[label], path, script, args.seconds, 16)
                results[label].append(got)
                if label.startswith("GeoGrid"):
                    acknowledged += int(got["done"])
    finally:
        for process in running:
            process.terminate()
            process.wait(timeout=30)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT idem_key) FROM incident WHERE idem_key LIKE 'round%'")
        ).one()
    # wrk stops with requests in flight: those may be committed without wrk having counted the answer
    in_flight_max = 16 * args.rounds
    assert stored[0] == stored[1], f"an incident stored twice: {stored}"
    assert acknowledged <= stored[0] <= acknowledged + in_flight_max, (acknowledged, stored[0])
    rows = []
    for label, runs in results.items():
        rows.append({
            "method": label, "rps": statistics.median(r["rps"] for r in runs),
            "p50": statistics.median(r["p50"] for r in runs), "p99": statistics.median(r["p99"] for r in runs),
            "p99_max": max(r["p99"] for r in runs),
        })  # fmt: skip
    print(
        f"\nacknowledged {acknowledged:,} GeoGrid incidents; stored {stored[0]:,}, each once", file=sys.stderr
    )
    return rows


def hotline_file(path: Path, registry_texts: list[str], points: list[tuple[float, float]], n: int) -> Path:
    """A 12345 export of ``n`` rows: 80% with coordinates (WGS-84, GCJ-02, BD-09, CGCS2000), 20% addresses."""
    rng = random.Random(12345)
    codes = [s.code for s in catalogue()]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["工单编号", "受理时间", "事件类型", "诉求内容", "事发地址", "经度", "纬度", "坐标系", "联系电话"]
        )
        start = dt.datetime(2026, 11, 1, 8, 0)
        for i in range(n):
            when = (start + dt.timedelta(seconds=i * 50)).strftime("%Y-%m-%d %H:%M:%S")
            phone = f"13{rng.randrange(10**9):09d}"
            if rng.random() < 0.2:
                row = ["", "", "", rng.choice(registry_texts)]
            else:
                x, y = rng.choice(points)
                crs = rng.choice(["wgs84", "gcj02", "bd09", "cgcs2000"])
                if crs == "gcj02":
                    x, y = (float(v) for v in wgs84_to_gcj02(x, y))
                elif crs == "bd09":
                    x, y = (float(v) for v in wgs84_to_bd09(x, y))
                row = [f"{x:.6f}", f"{y:.6f}", crs, ""]
            writer.writerow(
                [
                    f"GD{i:08d}{path.stem}",
                    when,
                    rng.choice(codes),
                    "市民来电反映",
                    row[3],
                    row[0],
                    row[1],
                    row[2],
                    phone,
                ]
            )
    return path


def hotline(engine: sa.Engine, store: Store, tmp: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    """Rows/s of import_hotline with commit (first time, then the same file again)."""
    registry = AddressStore(engine, "bench").addresses("demo")
    texts = [address_text(r) for r in registry.head(3000).to_dict("records")]
    path = hotline_file(tmp / "hotline.csv", texts, microgrid_points(store), args.rows)
    incidents = IncidentStore(engine, catalogue(), default_calendar(), actor="bench")
    matcher = Matcher(registry)
    rows = []
    for label in ("first import", "the same file again"):
        index_on = VersionIndexes(store, "demo", str(tmp / "cache"))
        index_on(dt.date(2026, 11, 1)).warm()  # built before the clock starts, as a running service holds it
        start = time.perf_counter()
        report = import_hotline(incidents, "demo", path, index_on, matcher, commit=True, chunk_rows=10_000)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB, the process's peak so far
        rows.append({"method": f"`geogrid incidents import`, {label}", "rows": report.rows, "seconds": seconds,
                     "rate": report.rows / seconds, "new": report.new, "seen": report.seen_before,
                     "errors": len(report.errors), "peak_mb": peak})  # fmt: skip
        if label == "first import":
            rows.append(database_share(engine, report.ids))
    return rows


def database_share(engine: sa.Engine, ids: list[int]) -> dict[str, object]:
    """The database's own part of an import: the imported incidents and their first log lines written once
    more inside PostgreSQL (INSERT … SELECT, no Python, no network; rolled back) with every index, key
    and trigger of the real tables — the floor under any import of these rows on this machine."""
    columns = [c.name for c in incident.columns if c.name != "id"]
    cols = ", ".join(columns)
    picked = ", ".join("idem_key || '.again'" if c == "idem_key" else c for c in columns)
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE picked (id int PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO picked VALUES (:id)"), [{"id": i} for i in ids])
        conn.commit()
        start = time.perf_counter()
        conn.execute(sa.text("CREATE TEMP TABLE again (old int, new int)"))
        conn.execute(
            sa.text(
                f"WITH made AS (INSERT INTO incident ({cols}) SELECT {picked} FROM incident "
                f"WHERE id IN (SELECT id FROM picked) ORDER BY id RETURNING id, set_id, idem_key) "
                "INSERT INTO again SELECT i.id, m.id FROM made m JOIN incident i "
                "ON i.set_id = m.set_id AND i.idem_key = substr(m.idem_key, 1, length(m.idem_key) - 6)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, seq, action, from_state, to_state, actor, at, note, "
                "attachments, detail) SELECT a.new, e.seq, e.action, e.from_state, e.to_state, e.actor, e.at, "
                "e.note, e.attachments, e.detail FROM incident_event e JOIN again a ON a.old = e.incident_id"
            )
        )
        seconds = time.perf_counter() - start
        conn.rollback()
    return {"method": "the database's share: the same incidents and log lines written again in PostgreSQL "
            "(INSERT … SELECT, no Python)", "rows": len(ids), "seconds": seconds, "rate": len(ids) / seconds,
            "new": len(ids), "seen": 0, "errors": 0, "peak_mb": 0.0}  # fmt: skip


def kpi(engine: sa.Engine, store: Store, args: argparse.Namespace) -> list[dict[str, object]]:
    """``--kpi-rows`` synthetic incidents written straight into the table, then the KPI query timed."""
    units = store.units("demo", level="microgrid")
    codes = list(units["code"])
    rng = random.Random(7)
    set_id = int(
        engine.connect().execute(sa.text("SELECT id FROM boundary_set WHERE name='demo'")).scalar_one()
    )
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    now = dt.datetime.now(dt.UTC)
    batch: list[dict[str, object]] = []
    with engine.begin() as conn:
        for i in range(args.kpi_rows):
            code = rng.choice(codes)
            reported = start + dt.timedelta(seconds=rng.randrange(365 * 86400))
            closed = rng.random() < 0.9
            state = "closed" if closed else rng.choice(["reported", "accepted", "in_progress", "void"])
            hours = rng.expovariate(1 / 20) if closed else None
            batch.append({
                "set_id": set_id, "idem_key": None, "request_hash": None, "channel": "app", "category": "E0102",
                "kind": "event", "description": "kpi", "reported_at": reported, "received_at": reported,
                "placed_by": "coordinates", "version_number": 1, "microgrid": code, "grid": code[:15],
                "community": code[:12], "street": code[:9], "flags": [], "media": [], "state": state,
                "level": "grid", "deadline": reported + dt.timedelta(hours=8), "accepted_at": reported if closed else None,
                "resolved_at": reported if closed else None, "on_time": closed and rng.random() < 0.85,
                "closed_at": reported + dt.timedelta(hours=hours) if hours else None, "hours_to_close": hours,
                "escalations": int(rng.random() < 0.08), "satisfaction": rng.choice([5, 5, 4, 3]) if closed else None,
                "seq": 7 if closed else 2, "created_by": "bench", "updated_at": now,
            })  # fmt: skip
            if len(batch) == 20_000:
                conn.execute(sa.insert(incident), batch)
                batch = []
                print(f"  {i + 1:,} incidents written", file=sys.stderr, end="\r")
        if batch:
            conn.execute(sa.insert(incident), batch)
        incident_kpis.retally(conn, set_id)  # written past the store: its tallies rebuilt from the rows
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE incident"))
    incidents = IncidentStore(engine, catalogue(), default_calendar(), actor="bench")
    first, end = dt.datetime(2026, 1, 1, tzinfo=CST), dt.datetime(2027, 1, 1, tzinfo=CST)
    rows = []
    for by in ("grid", "street", "county"):
        seconds = []
        for _ in range(5):
            t = time.perf_counter()
            out = incidents.kpis("demo", by, first, end)
            seconds.append(time.perf_counter() - t)
        received = sum(int(r["received"]) for r in out)
        rows.append({"by": by, "units": len(out), "received": received, "median_ms": statistics.median(seconds) * 1e3,
                     "max_ms": max(seconds) * 1e3})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--kpi-rows", type=int, default=1_000_000)
    parser.add_argument("--parts", default="intake,import,kpis")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "intake" in parts and shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    with scratch_database() as engine, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        store = Store(engine, actor="bench")
        for name, level in LAYERS:
            store.import_units("demo", read_boundaries(DEMO / f"{name}.geojson"), level, commit=True)
        store.publish("demo", dt.date(2026, 1, 1))
        AddressStore(engine, "bench").import_addresses(
            "demo", read_addresses(DEMO / "addresses.csv"), commit=True
        )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
            conn.execute(sa.text("CHECKPOINT"))
        if "intake" in parts:
            rows = intake(engine, store, tmp, args)
            print(f"\nIntake over HTTP on PostGIS, 16 connections, {args.workers} uvicorn workers each, "
                  f"{args.rounds} rounds of {args.seconds} s (median; p99 max of the rounds):\n")  # fmt: skip
            print(
                "| method | incidents/s | p50 ms | p99 ms | p99 ms, worst round |\n|---|---:|---:|---:|---:|"
            )
            for r in rows:
                print(
                    f"| {r['method']} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['p99_max']:.1f} |"
                )
        if "import" in parts:
            rows = hotline(engine, store, tmp, args)
            print(f"\nHotline import, {args.rows:,} rows, PostGIS, one transaction:\n")
            print(
                "| run | rows/s | seconds | new | seen before | row errors | peak RSS MB (the process so far) |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|")
            for r in rows:
                print(f"| {r['method']} | {r['rate']:,.0f} | {r['seconds']:.2f} | {r['new']:,} | {r['seen']:,} | "
                      f"{r['errors']:,} | {r['peak_mb']:.0f} |")  # fmt: skip
        if "kpis" in parts:
            rows = kpi(engine, store, args)
            print(f"\nKPI query over {args.kpi_rows:,} incidents (a year), PostGIS, five runs:\n")
            print("| by | units | incidents counted | median ms | worst ms |\n|---|---:|---:|---:|---:|")
            for r in rows:
                print(
                    f"| {r['by']} | {r['units']:,} | {r['received']:,} | {r['median_ms']:.0f} | {r['max_ms']:.0f} |"
                )


if __name__ == "__main__":
    main()
