"""Coverage benchmark: GeoGrid's coverage report and its maps beside a plain geopandas answer to the same questions.

On the demo county (522 grids, ~3,000 micro-grids, ~9,000 buildings, its roads, sites and roster) as of
the planted date: ``geogrid.coverage.coverage`` from frames, ``coverage_of`` from a SpatiaLite (and,
unless ``--skip-postgis``, a PostGIS) database, and each map kind's build time and HTML size; beside them,
the questions answered with pandas ``groupby`` and geopandas ``sjoin``/``overlay`` (staffing, norm, load,
secretaries, households outside the reach *polygons*, land in no grid), and whether the answers agree.

    python benchmarks/bench_coverage.py [--repeat 3] [--skip-postgis]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geogrid.coverage import coverage
from geogrid.crs import local_metric_crs
from geogrid.db import Store, create_engine, upgrade
from geogrid.db.coverage import coverage_of
from geogrid.db.layers import Layers
from geogrid.db.people import Roster
from geogrid.io import read_boundaries
from geogrid.maps import KINDS, build_map
from geogrid.people import POST_COLUMNS, in_force
from geogrid.reach import reach
from geogrid.rosters import read_roster, validate_rows
from geogrid.settings import Settings
from geogrid.topology import check

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgis import scratch_database

DEMO = Path(__file__).resolve().parent.parent / "boundaries" / "demo"
LEVELS = {"county": "county", "street": "streets", "community": "communities", "grid": "grids"}
LEVELS["microgrid"] = "microgrids"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median seconds of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def inputs() -> tuple[dict[str, gpd.GeoDataFrame], pd.DataFrame, dict[str, gpd.GeoDataFrame], dt.date]:
    """The demo county's units, its roster as posts, its layers, and the planted date."""
    units = {level: read_boundaries(DEMO / f"{name}.geojson") for level, name in LEVELS.items()}
    layers = {kind: gpd.read_file(DEMO / f"{kind}.geojson") for kind in ("buildings", "sites", "roads")}
    codes = {code: level for level, frame in units.items() for code in frame["code"]}
    where = dict(zip(layers["buildings"]["id"], layers["buildings"]["microgrid_code"], strict=True))
    good, errors = validate_rows(read_roster(DEMO / "roster.csv"), codes, None, where)
    assert not errors, errors[:3]
    posts = good.assign(post_id=range(1, len(good) + 1))[POST_COLUMNS]
    at = dt.date.fromisoformat(json.loads((DEMO / "planted.json").read_text())["as_of"])
    return units, posts, layers, at


def plain(units: dict[str, gpd.GeoDataFrame], posts: pd.DataFrame, layers: dict[str, gpd.GeoDataFrame],
          at: dt.date, norm: tuple[int, int] = (300, 500), limit_m: float = 1250.0) -> dict[str, Any]:  # fmt: skip
    """The same questions the plain geopandas way: groupby for people, sjoin/overlay for places, and the
    reach as the crow flies (a buffer of 15 minutes at 5 km/h around each site): geopandas has no network."""
    grids, micro = units["grid"], units["microgrid"]
    live = in_force(posts, at)
    up = dict(zip(micro["code"], micro["parent_code"], strict=True))
    live = live.assign(grid=live["unit_code"].map(lambda c: up.get(c, c)))
    on_grid = live[live["grid"].isin(grids["code"])]
    counts = on_grid.groupby(["grid", "role"])["person_id"].nunique().unstack(fill_value=0)
    counts = counts.reindex(grids["code"], fill_value=0)
    table = grids.set_index("code")[["households"]].join(counts[["leader", "worker"]])
    table["per_worker"] = table["households"] / table["worker"].where(table["worker"] > 0)
    staffing = {
        "no_leader": sorted(table.index[(table["leader"] == 0) & (table["worker"] > 0)]),
        "no_worker": sorted(table.index[(table["leader"] > 0) & (table["worker"] == 0)]),
        "unstaffed": sorted(table.index[(table["leader"] == 0) & (table["worker"] == 0)]),
    }
    workers = on_grid[on_grid["role"] == "worker"].drop_duplicates(["person_id", "grid"])
    workers = workers.join(table["per_worker"], on="grid")
    load = workers.groupby("person_id").agg(grids=("grid", "size"), households=("per_worker", "sum"))
    secretaries = live[live["role"] == "secretary"]["unit_code"].unique()
    no_secretary = sorted(set(units["community"]["code"]) - set(secretaries))
    metric = local_metric_crs(111.2, 39.85)
    buildings = gpd.sjoin(layers["buildings"], grids[["code", "geometry"]], predicate="within", how="left")
    circles = gpd.GeoDataFrame(geometry=layers["sites"].to_crs(metric).buffer(limit_m, 64), crs=metric)
    inside = gpd.sjoin(buildings.drop(columns="index_right").to_crs(metric), circles, predicate="within")
    outside = buildings[~buildings.index.isin(inside.index)]
    gaps = gpd.overlay(units["county"][["geometry"]], grids[["geometry"]], how="difference")
    return {
        "staffing": staffing,
        "under": sorted(table.index[table["households"] < norm[0]]),
        "over": sorted(table.index[table["households"] > norm[1]]),
        "load": load,
        "no_secretary": no_secretary,
        "outside": outside.groupby("code")["households"].sum(),
        "gap_m2": float(gaps.to_crs(metric).area.sum()) if len(gaps) else 0.0,
    }


def load_database(
    engine: Any, units: dict[str, gpd.GeoDataFrame], layers: dict[str, gpd.GeoDataFrame]
) -> None:
    """The demo county, its layers and roster, published from 2026-01-01."""
    upgrade(engine)
    store = Store(engine, "bench")
    for level, frame in units.items():
        store.import_units("demo", frame, level, commit=True)
    store.publish("demo", dt.date(2026, 1, 1))
    for kind, frame in layers.items():
        Layers(engine, "bench").write("demo", kind, frame, commit=True)
    Roster(engine, "bench").import_roster("demo", read_roster(DEMO / "roster.csv"), commit=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark in interleaved rounds (the VM's drift falls on every step alike); a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-postgis", action="store_true")
    args = parser.parse_args(argv)
    units, posts, layers, at = inputs()
    print(f"demo county: {len(units['grid'])} grids, {len(layers['buildings'])} buildings, "
          f"{len(layers['roads'])} roads, {len(layers['sites'])} sites, {len(posts)} posts; as of {at}")  # fmt: skip
    b, sites, roads = layers["buildings"], layers["sites"], layers["roads"]
    report = coverage(units, posts, b, sites, roads, at=at)
    crow = coverage(units, posts, b, sites, None, at=at)
    theirs = plain(units, posts, layers, at)
    agree = {
        "staffing": all(crow.codes("staffing", k) == v for k, v in theirs["staffing"].items()),
        "norm": crow.codes("norm", "under") == theirs["under"]
        and crow.codes("norm", "over") == theirs["over"],
        "no_secretary": crow.summary()["no_secretary"]["codes"] == theirs["no_secretary"],
        "load": bool(
            (crow.workers.set_index("person_id")["households"] - theirs["load"]["households"]).abs().max()
            < 0.01
        ),
        "outside": bool(
            (
                crow.grids.set_index("code")["households_outside_reach"]
                == theirs["outside"].reindex(crow.grids["code"], fill_value=0)
            ).all()
        ),
        "gap_m2": round(crow.summary()["gaps"]["area_m2"] - theirs["gap_m2"], 1) == 0,
    }
    print("straight-line answers agree with the plain peer:", json.dumps(agree))
    print(f"households beyond 15 min: {report.summary()['reach']['households_outside']:,} walking the roads, "
          f"{crow.summary()['reach']['households_outside']:,} as the crow flies")  # fmt: skip

    steps: dict[str, tuple[Callable[[], Any], str]] = {
        "plain pandas groupby + geopandas sjoin/overlay (crow flies)": (
            lambda: plain(units, posts, layers, at), "the peer"),
        "GeoGrid `coverage()`, crow flies (roads=None)": (
            lambda: coverage(units, posts, b, sites, None, at=at), "the same questions as the peer"),
        "GeoGrid `coverage()`, along the roads": (
            lambda: coverage(units, posts, b, sites, roads, at=at), "the report as shipped"),
        "  of which `reach()` (network walks)": (lambda: reach(sites, b, roads).inside, "networkx"),
        "  of which `topology.check()` (land in no grid, every fault)": (
            lambda: check(units["grid"], units["county"]), "the peer: one overlay difference"),
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        lite = create_engine(Settings(database_url=f"sqlite:///{folder}/bench.sqlite"))
        stack.callback(lite.dispose)
        load_database(lite, units, layers)
        steps["GeoGrid `coverage_of()` on SpatiaLite"] = (lambda: coverage_of(lite, "demo", at), "reads too")
        if not args.skip_postgis:
            pg = stack.enter_context(scratch_database())
            load_database(pg, units, layers)
            steps["GeoGrid `coverage_of()` on PostGIS"] = (lambda: coverage_of(pg, "demo", at), "reads too")
        sizes: dict[str, str] = {}
        for kind in KINDS:
            html = build_map(kind, report)
            sizes[kind] = f"{len(html.encode()) / 1e6:.2f} MB HTML"
            steps[f"`build_map({kind!r})`"] = (lambda kind=kind: build_map(kind, report), sizes[kind])
        gpkg = Path(folder) / "c.gpkg"
        steps["`CoverageReport.to_gpkg()`"] = (lambda: report.to_gpkg(gpkg), "")
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeat):
            for name, (fn, _note) in steps.items():
                times[name].append(timed(fn, 1)[0])
        size = f"{gpkg.stat().st_size / 1e6:.2f} MB"
    base = statistics.median(times[next(iter(steps))])
    print("\n| step | seconds | × the plain peer | note |\n|---|---:|---:|---|")
    for name, (_fn, note) in steps.items():
        seconds = statistics.median(times[name])
        print(f"| {name} | {seconds:.2f} | {seconds / base:.1f} | {note or size} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
