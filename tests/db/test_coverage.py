"""The coverage report on the demo county finds exactly the planted cases, and its figures equal a recount.

Issue 11's done-when, on both databases: the demo county, its buildings, sites, roads and roster are
loaded; ``coverage_of`` on the planted date must find the cases ``boundaries/demo/planted.json`` lists and
nothing else abnormal, and its figures (unstaffed grids, households per worker, households outside reach
per grid) must equal two recounts that share nothing with ``geogrid.coverage`` or ``geogrid.reach``: one
SQL query over the ``post``, ``person`` and ``unit`` tables, and a plain Python loop over the raw rows of
every table read with plain SQL, whose walks come from its own road graph (networkx, a Dijkstra per site).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from typer.testing import CliRunner

from geogrid.cli import app
from geogrid.crs import local_metric_crs
from geogrid.db.coverage import coverage_of
from geogrid.db.layers import Layers
from geogrid.db.people import Roster
from geogrid.rosters import read_roster
from tests.conftest import DEMO, empty_store, published_demo

pytestmark = [pytest.mark.db, pytest.mark.slow]

LEVELS = (
    ("county", "county"),
    ("streets", "street"),
    ("communities", "community"),
    ("grids", "grid"),
    ("microgrids", "microgrid"),
)
PLANTED = (
    json.loads((DEMO / "planted.json").read_text(encoding="utf-8"))
    if (DEMO / "planted.json").exists()
    else {}
)
AT = dt.date.fromisoformat(PLANTED.get("as_of", "2026-12-01"))

# The version in force and the posts in force on :at, as plain SQL (the same text on both databases;
# MATERIALIZED, so that neither planner re-runs a CTE per row).
IN_FORCE = """
WITH v AS MATERIALIZED (
    SELECT bv.id FROM boundary_version bv JOIN boundary_set bs ON bs.id = bv.set_id
    WHERE bs.name = :set_name AND bv.status = 'published'
      AND bv.valid_from <= :at AND (bv.valid_to IS NULL OR bv.valid_to > :at)
),
grid AS MATERIALIZED (SELECT code, households FROM unit WHERE version_id IN (SELECT id FROM v) AND level = 'grid'),
micro AS MATERIALIZED (SELECT code, parent_code FROM unit WHERE version_id IN (SELECT id FROM v) AND level = 'microgrid'),
live AS MATERIALIZED (
    SELECT p.role, pe.person_id, COALESCE(m.parent_code, p.unit_code) AS grid_code
    FROM post p
    JOIN person pe ON pe.id = p.person_ref
    JOIN boundary_set bs ON bs.id = p.set_id AND bs.name = :set_name
    LEFT JOIN micro m ON m.code = p.unit_code
    WHERE p.valid_from <= :at AND (p.valid_to IS NULL OR p.valid_to > :at)
)
"""
STAFF_SQL = (
    IN_FORCE
    + """
SELECT g.code, g.households,
       COUNT(DISTINCT CASE WHEN l.role = 'leader' THEN l.person_id END) AS leaders,
       COUNT(DISTINCT CASE WHEN l.role = 'worker' THEN l.person_id END) AS workers
FROM grid g LEFT JOIN live l ON l.grid_code = g.code
GROUP BY g.code, g.households ORDER BY g.code
"""
)
LOAD_SQL = (
    IN_FORCE
    + """,
wg AS MATERIALIZED (SELECT DISTINCT l.person_id, l.grid_code FROM live l JOIN grid g ON g.code = l.grid_code
       WHERE l.role = 'worker'),
n AS MATERIALIZED (SELECT grid_code, COUNT(*) AS k FROM wg GROUP BY grid_code)
SELECT wg.person_id, COUNT(*) AS grids, SUM(CAST(g.households AS FLOAT) / n.k) AS households
FROM wg JOIN n ON n.grid_code = wg.grid_code JOIN grid g ON g.code = wg.grid_code
GROUP BY wg.person_id ORDER BY wg.person_id
"""
)
SECRETARY_SQL = """
WITH v AS MATERIALIZED (
    SELECT bv.id FROM boundary_version bv JOIN boundary_set bs ON bs.id = bv.set_id
    WHERE bs.name = :set_name AND bv.status = 'published'
      AND bv.valid_from <= :at AND (bv.valid_to IS NULL OR bv.valid_to > :at)
)
SELECT c.code FROM unit c
WHERE c.version_id IN (SELECT id FROM v) AND c.level = 'community' AND NOT EXISTS (
    SELECT 1 FROM post p JOIN boundary_set bs ON bs.id = p.set_id AND bs.name = :set_name
    WHERE p.unit_code = c.code AND p.role = 'secretary'
      AND p.valid_from <= :at AND (p.valid_to IS NULL OR p.valid_to > :at)
)
ORDER BY c.code
"""


def query(engine: sa.Engine, sql: str) -> list[Any]:
    statement = sa.text(sql).bindparams(sa.bindparam("at", AT, type_=sa.Date()), set_name="demo")
    with engine.connect() as conn:
        return list(conn.execute(statement))


def sql_recount(engine: sa.Engine) -> dict[str, Any]:
    """Staffing, load and secretaries as the database counts them."""
    if engine.dialect.name == "postgresql":  # fresh tables: without statistics the planner nests loops
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE post, person, unit, boundary_version, boundary_set"))
    staff = {code: (hh, leaders, workers) for code, hh, leaders, workers in query(engine, STAFF_SQL)}
    load = {pid: (grids, float(hh)) for pid, grids, hh in query(engine, LOAD_SQL)}
    return {"staff": staff, "load": load, "no_secretary": [c for (c,) in query(engine, SECRETARY_SQL)]}


def day(value: Any) -> dt.date | None:
    """A date as either driver returns it (SQLite: text)."""
    return None if value is None else dt.date.fromisoformat(str(value)[:10])


def loop_recount(engine: sa.Engine) -> dict[str, Any]:
    """Staffing, load and households outside reach, by a plain loop over raw rows read with plain SQL."""
    with engine.connect() as conn:
        version = conn.execute(
            sa.text(
                "SELECT bv.id, bv.valid_from, bv.valid_to FROM boundary_version bv JOIN boundary_set bs "
                "ON bs.id = bv.set_id WHERE bs.name = 'demo' AND bv.status = 'published'"
            )
        ).all()
        version_id = next(v for v, f, t in version if day(f) <= AT and (t is None or day(t) > AT))
        units = conn.execute(
            sa.text("SELECT code, level, parent_code, households FROM unit WHERE version_id = :v"),
            {"v": version_id},
        ).all()
        posts = conn.execute(
            sa.text(
                "SELECT pe.person_id, p.role, p.unit_code, p.valid_from, p.valid_to FROM post p "
                "JOIN person pe ON pe.id = p.person_ref"
            )
        ).all()
        raw = {
            kind: conn.execute(sa.text(f"SELECT {columns}, ST_AsBinary(geom) FROM {table}")).all()
            for kind, table, columns in (
                ("buildings", "building", "id, microgrid_code, households"),
                ("sites", "site", "id"),
                ("roads", "road", "id"),
            )
        }
    households = {code: hh for code, level, _, hh in units if level == "grid"}
    grid_of = {code: code for code in households}
    grid_of.update({code: parent for code, level, parent, _ in units if level == "microgrid"})
    people: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for person_id, role, unit_code, valid_from, valid_to in posts:
        if day(valid_from) <= AT and (valid_to is None or day(valid_to) > AT) and unit_code in grid_of:
            people[grid_of[unit_code]][role].add(person_id)
    staff = {
        code: (hh, len(people[code]["leader"]), len(people[code]["worker"]))
        for code, hh in households.items()
    }
    load: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for code, held in people.items():
        for person_id in held["worker"]:
            load[person_id][0] += 1
            load[person_id][1] += households[code] / len(held["worker"])

    def shapes(kind: str) -> np.ndarray:
        return shapely.from_wkb([bytes(r[-1]) for r in raw[kind]])

    walks = walks_to_a_site(shapes("sites"), shapes("buildings"), shapes("roads"), LIMIT_M)
    outside: dict[str, int] = defaultdict(int)
    near_limit: dict[str, int] = defaultdict(int)  # households of buildings within EDGE_M of the limit
    at_the_limit = 0
    for (_, micro, hh, _wkb), walk in zip(raw["buildings"], walks, strict=True):
        if not walk <= LIMIT_M:
            outside[grid_of[micro]] += hh
        if abs(walk - LIMIT_M) <= EDGE_M:
            near_limit[grid_of[micro]] += hh
            at_the_limit += 1
    return {
        "staff": staff,
        "load": {k: tuple(v) for k, v in load.items()},
        "outside": dict(outside),
        "near_limit": dict(near_limit),
        "at_the_limit": at_the_limit,
    }


LIMIT_M = 15 / 60 * 5000  # the default reach: 15 minutes at 5 km/h
EDGE_M = 0.05  # a walk this close to the limit may fall either side: the two paths round differently


def walks_to_a_site(sites: np.ndarray, buildings: np.ndarray, roads: np.ndarray, limit: float) -> np.ndarray:
    """Per building, its shortest walk to any site along the roads (inf beyond ``limit``): WGS-84 geometries in.

    Built here from nothing but the raw geometries: every straight piece of every road is an edge between its
    two ends (named by their coordinates to the centimetre, so pieces meet where they share an end); a point
    steps straight to its nearest piece and walks along it to either end; a site's walks come from one
    networkx Dijkstra, cut off at the limit; a building on the same piece as a site may walk straight to it.
    """
    x0, y0, x1, y1 = shapely.total_bounds(np.concatenate([sites, buildings, roads]))
    crs = local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2)
    sites, buildings, roads = (
        gpd.GeoSeries(g, crs=4326).to_crs(crs).to_numpy() for g in (sites, buildings, roads)
    )
    xy, line = shapely.get_coordinates(shapely.get_parts(roads), return_index=True)
    same_line = line[:-1] == line[1:]
    start, end = xy[:-1][same_line], xy[1:][same_line]
    node: dict[tuple[int, int], int] = {}
    a, b = (
        np.array([node.setdefault((round(x * 100), round(y * 100)), len(node)) for x, y in ends], dtype=int)
        for ends in (start, end)
    )
    length = np.hypot(*(end - start).T)
    pieces = shapely.linestrings(np.stack([start, end], axis=1))
    graph = nx.Graph()
    graph.add_weighted_edges_from((int(i), int(j), w) for i, j, w in zip(a, b, length, strict=True) if i != j)
    tree = shapely.STRtree(pieces)

    def step(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per point: its nearest piece, the step to it, and how far along that piece its foot is."""
        (_, piece), gap = tree.query_nearest(points, return_distance=True, all_matches=False)
        return piece, gap, shapely.line_locate_point(pieces[piece], points)

    piece, gap, along = step(buildings)
    ba, bb, blen = a[piece], b[piece], length[piece]
    best = np.full(len(buildings), math.inf)
    for s_piece, s_gap, s_along in zip(*step(sites), strict=True):
        sa, sb, slen = a[s_piece], b[s_piece], length[s_piece]
        graph.add_weighted_edges_from(
            [("site", int(sa), s_gap + s_along), ("site", int(sb), s_gap + slen - s_along)]
        )
        reached = nx.single_source_dijkstra_path_length(graph, "site", cutoff=limit)
        graph.remove_node("site")
        to = np.full(len(node), math.inf)
        for n, d in reached.items():
            if n != "site":
                to[n] = d
        walk = np.minimum(to[ba] + along, to[bb] + blen - along)
        same, flipped = (ba == sa) & (bb == sb), (ba == sb) & (bb == sa)
        walk[same] = np.minimum(walk[same], s_gap + np.abs(along[same] - s_along))
        walk[flipped] = np.minimum(walk[flipped], s_gap + np.abs(blen[flipped] - along[flipped] - s_along))
        best = np.minimum(best, walk + gap)
    best[best > limit] = math.inf
    return best


@pytest.fixture(scope="module")
def demo(engine, demo_layers):
    """The demo county with its layers and roster; the report and both recounts, taken at once."""
    if not PLANTED:
        pytest.fail("boundaries/demo/planted.json is missing: run boundaries/demo/generate.py")
    published_demo(engine, demo_layers, LEVELS)
    layers = Layers(engine, "tester")
    for kind in ("buildings", "sites", "roads"):
        layers.write("demo", kind, gpd.read_file(DEMO / f"{kind}.geojson"), commit=True)
    loaded = Roster(engine, "tester").import_roster("demo", read_roster(DEMO / "roster.csv"), commit=True)
    assert not loaded.errors, loaded.errors[:3]
    # Taken now: other modules empty the same databases, and these tests only compare what was taken.
    return coverage_of(engine, "demo", AT), sql_recount(engine), loop_recount(engine)


def test_exactly_the_planted_cases(demo):
    report, *_ = demo
    summary = report.summary()
    assert report.codes("staffing", "no_leader") == sorted(PLANTED["no_leader"])
    assert report.codes("staffing", "no_worker") == sorted(PLANTED["no_worker"])
    assert report.codes("staffing", "unstaffed") == sorted(PLANTED.get("unstaffed", []))
    assert summary["no_secretary"]["codes"] == sorted(PLANTED["no_secretary"])
    assert report.codes("norm", "under") == sorted(PLANTED["under_norm"])
    assert report.codes("norm", "over") == sorted(PLANTED["over_norm"])
    spread = PLANTED["spread_worker"]
    assert len(spread["grids"]) >= 4
    assert [(w["person_id"], w["codes"]) for w in summary["workers"]["spread"]] == [
        (spread["person_id"], sorted(spread["grids"]))
    ]
    assert summary["workers"]["max_grids"]["person_id"] == spread["person_id"]
    assert report.gaps.empty and summary["problems"]["count"] == 0  # the demo county tiles exactly


@pytest.mark.parametrize("path", ["sql", "loop"])
def test_staffing_and_households_per_worker_equal_the_recount(demo, path):
    report, by_sql, by_loop = demo
    recount = by_sql if path == "sql" else by_loop
    grids = report.grids.set_index("code")
    assert sorted(grids.index) == sorted(recount["staff"])
    for code, (households, leaders, workers) in recount["staff"].items():
        row = grids.loc[code]
        assert (row["households"], len(row["leaders"]), row["workers"]) == (households, leaders, workers), (
            code
        )
        expected = ["staffed", "no_leader", "no_worker", "unstaffed"][(leaders == 0) + 2 * (workers == 0)]
        assert row["staffing"] == expected, code
        if workers:
            assert row["households_per_worker"] == pytest.approx(households / workers, abs=0.005), code
        else:
            assert np.isnan(row["households_per_worker"]), code
    unstaffed = {k: v for k, v in report.summary()["staffing"].items() if k != "staffed"}
    assert sum(v["count"] for v in unstaffed.values()) == sum(
        1 for _, leaders, workers in recount["staff"].values() if not (leaders and workers)
    )


@pytest.mark.parametrize("path", ["sql", "loop"])
def test_worker_load_equals_the_recount(demo, path):
    report, by_sql, by_loop = demo
    recount = (by_sql if path == "sql" else by_loop)["load"]
    workers = report.workers.set_index("person_id")
    assert sorted(workers.index) == sorted(recount)
    for person_id, (grids, households) in recount.items():
        assert workers.loc[person_id, "grids"] == grids, person_id
        assert workers.loc[person_id, "households"] == pytest.approx(households, abs=0.01 * grids), person_id


def test_secretaries_equal_the_sql_recount(demo):
    report, by_sql, _ = demo
    assert report.summary()["no_secretary"]["codes"] == by_sql["no_secretary"]


def test_households_outside_reach_per_grid_equal_the_loop(demo):
    report, _, by_loop = demo
    found = {
        c: int(n)
        for c, n in zip(report.grids["code"], report.grids["households_outside_reach"], strict=True)
        if n
    }
    recount, near = by_loop["outside"], by_loop["near_limit"]
    assert (
        by_loop["at_the_limit"] <= 5
    )  # buildings whose walk is within a few cm of the limit: rare (none here)
    for code in sorted(set(found) | set(recount)):
        # only the households of buildings right at the limit may fall on the other side
        assert recount.get(code, 0) <= found.get(code, 0) + near.get(code, 0), code
        assert found.get(code, 0) <= recount.get(code, 0) + near.get(code, 0), code
    if not near:
        assert found == recount
        assert report.summary()["reach"]["households_outside"] == sum(recount.values())
    assert report.reach.method == "network" and report.reach.limit_m == pytest.approx(LIMIT_M)
    assert len(found) > 10 and len(report.outside) > 0


def test_the_cli_prints_writes_and_masks_map_phones(engine, demo_layers, tmp_path):
    """geogrid coverage (table, --json, --out) and geogrid map on one street: a leader, a worker, a site."""
    store = empty_store(engine)
    street = "150622001"
    for name, level in LEVELS[1:]:
        frame = demo_layers[name]
        store.import_units("s", frame[frame["code"].str.startswith(street)], level, commit=True)
    store.publish("s", dt.date(2026, 1, 1))
    buildings = gpd.read_file(DEMO / "buildings.geojson")
    buildings = buildings[buildings["microgrid_code"].str.startswith(street)]
    Layers(engine, "tester").write("s", "buildings", buildings, commit=True)
    grid = sorted(demo_layers["grids"]["code"])[0]
    for role, phone in (("leader", "13812341234"), ("worker", "13912341234")):
        Roster(engine, "tester").create_post(
            "s", name=role, phone=phone, kind="leader" if role == "leader" else "worker_parttime", role=role,
            unit_code=grid, valid_from=dt.date(2026, 1, 1), buildings=list(buildings["id"].iloc[:1]),
        )  # fmt: skip
    runner = CliRunner()
    url = engine.url.render_as_string(hide_password=False)

    def cli(*args: str) -> Any:
        result = runner.invoke(app, ["--database-url", url, *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result

    shown = cli("coverage", "--set", "s", "--at", "2026-12-01", "--norm", "300-500")
    assert "grids with no leader" in shown.stdout and "grids most in need" in shown.stdout
    out = tmp_path / "c.gpkg"
    summary = json.loads(
        cli("coverage", "--set", "s", "--at", "2026-12-01", "--json", "--out", str(out)).stdout
    )
    assert summary["staffing"]["staffed"]["codes"] == [grid] and summary["reach"]["sites"] == 0
    assert b"13812341234" in out.read_bytes()  # the local administrator's file: phones in full
    page = tmp_path / "m.html"
    cli("map", "responsibility", "--set", "s", "--at", "2026-12-01", "--out", str(page))
    text = page.read_text(encoding="utf-8")
    assert grid in text and "138****1234" in text and "13812341234" not in text
    cli("map", "responsibility", "--set", "s", "--at", "2026-12-01", "--out", str(page), "--no-mask-phones")
    assert "13812341234" in page.read_text(encoding="utf-8")
    refused = runner.invoke(app, ["--database-url", url, "map", "heat", "--set", "s", "--out", str(page)])
    assert refused.exit_code == 2 and "responsibility, gaps, service" in refused.output
