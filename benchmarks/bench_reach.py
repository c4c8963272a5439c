"""Reach benchmark: the 15-minute reach on the demo county, its phases, and a per-site Dijkstra beside it.

``reach()`` answers who is inside; the per-site polygons are drawn when ``Reach.areas`` is first read.

GeoGrid's ``reach`` runs one multi-source Dijkstra from every site; the peer runs networkx's single-source
Dijkstra once per site on the same graph (what a plain script would do) and takes the nearest. Wall and CPU
seconds are printed (the 2-core VM is shared; CPU seconds wander less).

    python benchmarks/bench_reach.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np

from geogrid import reach as r

DEMO = Path(__file__).resolve().parent.parent / "boundaries" / "demo"


def timed(label: str, repeat: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` ``repeat`` times; print the best wall and CPU seconds; return its last result."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(f"{label:48s} {min(walls):7.2f} s wall {min(cpus):7.2f} s CPU")
    return out


def per_site(network: r._Network, limit: float) -> np.ndarray:
    """The peer: one single-source Dijkstra per site, the nearest kept per building."""
    best = np.full(len(network.building_attach), np.inf)
    for node in network.site_node.tolist():
        dist = nx.single_source_dijkstra_path_length(network.graph, node, cutoff=limit)
        at = np.array([dist.get(a, np.inf) for a in network.building_attach.tolist()])
        best = np.minimum(best, at + network.building_access)
    return np.where(best <= limit, best, np.inf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sites, buildings, roads = (gpd.read_file(DEMO / f"{n}.geojson") for n in ("sites", "buildings", "roads"))
    print(f"Demo county: {len(sites)} sites, {len(buildings):,} buildings, {len(roads):,} road lines\n")
    got = timed("reach(): network, who is inside", args.repeat, lambda: r.reach(sites, buildings, roads))
    timed("Reach.areas: a polygon per site", 1, lambda: got.areas)
    timed("reach(): straight line (no roads)", args.repeat, lambda: r.reach(sites, buildings, None))

    # The phases, through the module's internals (the public function is the sum of them).
    crs = r._metric_crs([sites.geometry, buildings.geometry, roads.geometry])
    site_xy, building_xy, road_xy = (r._metric(f.geometry, crs) for f in (sites, buildings, roads))
    network = timed(
        "  graph: segments, joins, networkx graph",
        args.repeat,
        lambda: r._Network(road_xy, site_xy, building_xy),
    )
    limit = got.limit_m
    dist, _ = timed(
        "  one multi-source Dijkstra from every site", args.repeat, lambda: network.nearest(limit)
    )
    peer = timed("peer: single-source Dijkstra per site", 1, lambda: per_site(network, limit))
    same = np.array_equal(np.isinf(peer), np.isinf(dist)) and np.allclose(
        peer[np.isfinite(peer)], dist[np.isfinite(dist)]
    )
    print(
        f"\n{network.graph.number_of_nodes():,} nodes, {network.graph.number_of_edges():,} edges; "
        f"{got.inside.mean():.1%} of buildings ({buildings['households'][got.inside].sum():,} of "
        f"{buildings['households'].sum():,} households) within {limit:.0f} m; peer agrees: {same}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
