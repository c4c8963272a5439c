"""Which buildings lie within a walk of a service site: the 15-minute reach (15分钟党群服务圈).

The walk runs along the road network. Roads become a graph of straight segments between their vertices
(vertices snapped on a 1 cm grid, so lines that share an end point meet there); a building or a site walks
straight to its nearest point on the nearest road, where that segment is split so the walk can turn either
way. One networkx multi-source Dijkstra from every site, cut off at the limit, gives each building its walk
to the nearest site. With no road layer the walk is a straight line.

Each site's reach polygon is drawn from its own Dijkstra run, when :attr:`Reach.areas` is first asked
for (most of the work; the coverage figures need only :attr:`Reach.inside`): the segments it reaches within
the limit (whole, or the part of a segment the remaining budget covers, from either end) plus the site's
walk to its road, buffered by :data:`BAND_M` (60 m) and unioned. 60 m is the depth of a typical compound behind its
street: the band is where a walk ends with a short step off the road. The polygon is a picture for maps;
whether a building is inside is :attr:`Reach.inside`, computed for the building itself.

>>> import geopandas as gpd
>>> from shapely import LineString, Point
>>> sites = gpd.GeoDataFrame({"id": ["s1"]}, geometry=[Point(111.2, 39.85)], crs=4326)
>>> buildings = gpd.GeoDataFrame({"id": ["b1", "b2"]},
...     geometry=[Point(111.205, 39.8501), Point(111.23, 39.8501)], crs=4326)
>>> roads = gpd.GeoDataFrame(geometry=[LineString([(111.19, 39.85), (111.24, 39.85)])], crs=4326)
>>> r = reach(sites, buildings, roads)
>>> r.method, r.inside.tolist(), r.nearest_site.tolist()
('network', [True, False], ['s1', None])
>>> round(float(r.distance_m[0]))
439
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray

from geogrid.crs import check_lonlat, local_metric_crs
from geogrid.errors import InvalidGeometry, InvalidParameter, MissingColumn

NETWORK = "network"
STRAIGHT_LINE = "straight_line"
SNAP_M = 0.01  # road vertices on the same 1 cm cell are one node: lines sharing an end point meet
BAND_M = 60.0  # half-width of a drawn reach along its roads
SIMPLIFY_M = 1.0  # reach polygons are simplified this much (metres): maps need no finer arcs
AREA_COLUMNS = ("id", "name", "kind")  # what a reach polygon carries of its site, when the site has it

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Reach:
    """Which buildings are within the limit of a site, the walk to the nearest one, and each site's area.

    ``inside``, ``distance_m`` and ``nearest_site`` have one entry per building, in the buildings' order.
    ``distance_m`` is the walk in metres to the nearest site when it is within ``limit_m``, else ``inf``
    (unreachable, or further than the limit: the search stops there); ``nearest_site`` is that site's id,
    else None. ``method`` is ``"network"`` or ``"straight_line"`` (no roads given); ``limit_m`` the walk
    that ``minutes`` at ``speed_kmh`` allow.
    """

    inside: NDArray[np.bool_]
    distance_m: FloatArray
    nearest_site: NDArray[np.object_]
    method: str
    limit_m: float
    draw: Callable[[], gpd.GeoDataFrame] = field(repr=False)  # makes :attr:`areas` when first asked

    @cached_property
    def areas(self) -> gpd.GeoDataFrame:
        """One row per site (id, name and kind when the sites have them; geometry: its reach polygon in
        WGS-84); drawn when first asked (on the demo county most of the work: a Dijkstra and a buffer per
        site, ~3 s), then kept."""
        return self.draw()


def reach(
    sites: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame | None,
    *,
    minutes: float = 15.0,
    speed_kmh: float = 5.0,
) -> Reach:
    """Return which buildings are within ``minutes`` of walking at ``speed_kmh`` from a service site.

    Parameters
    ----------
    sites : GeoDataFrame
        Service sites: an ``id`` column and point geometries (WGS-84; a frame without a CRS is taken as
        WGS-84, one in another CRS is transformed).
    buildings : GeoDataFrame
        Buildings as points; the answer follows their row order.
    roads : GeoDataFrame or None
        Road lines, noded (lines meet at shared end points; crossings without a shared vertex do not
        connect). None or empty: the walk is a straight line and each area a circle.
    minutes, speed_kmh : float
        The walking time and speed; the limit is ``speed_kmh * 1000 / 60 * minutes`` metres.

    Returns
    -------
    Reach

    Raises
    ------
    InvalidParameter
        ``minutes`` or ``speed_kmh`` is not a positive finite number.
    MissingColumn
        The sites have no ``id`` column.
    InvalidGeometry
        A site or building is not a point, or a road not a line (the row is named).
    InvalidCoordinates
        A longitude/latitude outside its range.
    """
    limit = _limit(minutes, speed_kmh)
    site_ll = _wgs84(sites, "sites", ("Point",))
    if "id" not in getattr(sites, "columns", ()):
        raise MissingColumn("sites need an id column", layer="sites", column="id")
    building_ll = _wgs84(buildings, "buildings", ("Point",))
    road_ll = None if roads is None else _wgs84(roads, "roads", ("LineString", "MultiLineString"))
    if road_ll is not None and len(road_ll) == 0:
        road_ll = None
    crs = _metric_crs([s for s in (site_ll, building_ll, road_ll) if s is not None])
    site_xy = _metric(site_ll, crs)
    building_xy = _metric(building_ll, crs)
    road_xy = None if road_ll is None else _metric(road_ll, crs)
    if road_xy is None:
        dist, nearest = _straight(site_xy, building_xy)
    else:
        dist, nearest = _Network(road_xy, site_xy, building_xy).nearest(limit)
    inside = dist <= limit
    site_of = np.full(len(dist), None, dtype=object)
    site_of[inside] = sites["id"].to_numpy(dtype=object)[nearest[inside]]
    columns = [c for c in AREA_COLUMNS if c in sites.columns]
    table = pd.DataFrame({c: sites[c].to_numpy() for c in columns}, columns=columns)
    return Reach(
        inside=inside,
        distance_m=np.where(inside, dist, np.inf),
        nearest_site=site_of,
        method=STRAIGHT_LINE if road_xy is None else NETWORK,
        limit_m=limit,
        draw=partial(_areas, table, crs, road_xy, site_xy, limit),
    )


def _limit(minutes: float, speed_kmh: float) -> float:
    """The walking limit in metres; refuses a time or speed that is not a positive finite number."""
    for name, value in (("minutes", minutes), ("speed_kmh", speed_kmh)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
            raise InvalidParameter(f"{name} must be a positive number, not {value!r}", field=name)
    return float(speed_kmh) * 1000.0 / 60.0 * float(minutes)


def _wgs84(frame: gpd.GeoDataFrame, layer: str, kinds: tuple[str, ...]) -> gpd.GeoSeries:
    """The layer's geometries in WGS-84, each checked to be a non-empty geometry of one of ``kinds``."""
    if not isinstance(frame, gpd.GeoDataFrame | gpd.GeoSeries):
        raise InvalidGeometry(f"{layer} must be a GeoDataFrame, not {type(frame).__name__}", layer=layer)
    geoms = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
    values = geoms.to_numpy()
    kind = shapely.get_type_id(values)
    wanted = [shapely.GeometryType[k.upper()].value for k in kinds]
    bad = ~np.isin(kind, wanted) | shapely.is_empty(values) | shapely.is_missing(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        found = "no geometry" if values[i] is None or values[i].is_empty else values[i].geom_type
        raise InvalidGeometry(
            f"{layer} must be {' or '.join(kinds)} geometries; row {i} is {found}", layer=layer, row=i
        )
    series = gpd.GeoSeries(values, crs=geoms.crs or "EPSG:4326")
    if series.crs is not None and not series.crs.equals(pyproj.CRS.from_epsg(4326)):
        series = series.to_crs(4326)
    if len(series):
        coords = shapely.get_coordinates(series.to_numpy())
        check_lonlat(coords[:, 0], coords[:, 1])
    return series


def _metric_crs(layers: list[gpd.GeoSeries]) -> pyproj.CRS:
    """The local metric CRS (Gauss-Krüger zone, else UTM) at the centre of the layers' joint extent."""
    bounds = np.array([s.total_bounds for s in layers if len(s)])
    if not len(bounds):
        return local_metric_crs(0.0, 0.0)  # nothing to measure; any metric CRS does
    x0, y0 = bounds[:, :2].min(axis=0)
    x1, y1 = bounds[:, 2:].max(axis=0)
    return local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2)


def _metric(series: gpd.GeoSeries, crs: pyproj.CRS) -> NDArray[np.object_]:
    return np.asarray(series.to_crs(crs).to_numpy(), dtype=object)


def _straight(site_xy: NDArray[np.object_], building_xy: NDArray[np.object_]) -> tuple[FloatArray, IntArray]:
    """Each building's straight-line distance to its nearest site, and that site's number."""
    dist = np.full(len(building_xy), np.inf)
    nearest = np.zeros(len(building_xy), dtype=np.int64)
    if len(site_xy) and len(building_xy):
        tree = shapely.STRtree(site_xy)
        (which, site), found = tree.query_nearest(building_xy, return_distance=True, all_matches=False)
        dist[which], nearest[which] = found, site
    return dist, nearest


def _areas(
    table: pd.DataFrame,
    crs: pyproj.CRS,
    road_xy: NDArray[np.object_] | None,
    site_xy: NDArray[np.object_],
    limit: float,
) -> gpd.GeoDataFrame:
    """One row per site: its id (name, kind) and reach polygon (a circle without roads), in WGS-84."""
    if road_xy is None or not len(site_xy):
        polys = shapely.buffer(site_xy, limit, quad_segs=32)
    else:
        # Buildings split segments but change no walk from a site: the graph for drawing leaves them out.
        network = _Network(road_xy, site_xy, np.empty(0, dtype=object))
        polys = np.array([network.area(j, limit) for j in range(len(site_xy))], dtype=object)
    polys = shapely.simplify(np.asarray(polys, dtype=object), SIMPLIFY_M, preserve_topology=True)
    return gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(polys, crs=crs).to_crs(4326).to_numpy(), crs=4326)


class _Network:
    """The road graph with every building and site joined to it at its nearest road point."""

    def __init__(self, road_xy: NDArray[np.object_], site_xy: NDArray[np.object_], building_xy: Any) -> None:
        node_xy, eu, ev = _segments(road_xy)
        n_road, n_b, n_s = len(node_xy), len(building_xy), len(site_xy)
        points = np.concatenate([building_xy, site_xy]).astype(object)
        seg, along, access, foot = _attach(points, node_xy, eu, ev)
        # Attachment k is node n_road + k (buildings first, then sites); site j's own node follows them.
        attach = n_road + np.arange(len(points))
        au, av, aw = _split(eu, ev, node_xy, seg, along, attach)
        site_node = n_road + len(points) + np.arange(n_s)
        self.u = np.concatenate([au, site_node])
        self.v = np.concatenate([av, attach[n_b:]])
        self.w = np.concatenate([aw, access[n_b:]])
        self.xy = np.concatenate([node_xy, foot, shapely.get_coordinates(site_xy).reshape(-1, 2)])
        self.graph = nx.Graph()
        self.graph.add_nodes_from(range(len(self.xy)))
        self.graph.add_weighted_edges_from(
            zip(self.u.tolist(), self.v.tolist(), self.w.tolist(), strict=True)
        )
        self.site_node = site_node
        self.building_attach = attach[:n_b]
        self.building_access = access[:n_b]

    def nearest(self, limit: float) -> tuple[FloatArray, IntArray]:
        """Each building's walk to its nearest site (inf beyond the limit) and that site's number."""
        n_b = len(self.building_attach)
        if not len(self.site_node):
            return np.full(n_b, np.inf), np.zeros(n_b, dtype=np.int64)
        # One run from every site at once; the first node of a path is the site it starts from.
        dist, paths = nx.multi_source_dijkstra(self.graph, self.site_node.tolist(), cutoff=limit)
        at = np.full(len(self.xy), np.inf)
        source = np.zeros(len(self.xy), dtype=np.int64)
        nodes = np.fromiter(dist.keys(), dtype=np.int64, count=len(dist))
        at[nodes] = np.fromiter(dist.values(), dtype=float, count=len(dist))
        source[nodes] = [paths[n][0] for n in nodes.tolist()]
        walk = at[self.building_attach] + self.building_access
        return np.where(walk <= limit, walk, np.inf), source[self.building_attach] - self.site_node[0]

    def area(self, j: int, limit: float) -> shapely.Geometry:
        """Site ``j``'s reach polygon: what it reaches of the network within the limit, buffered."""
        start = int(self.site_node[j])
        dist = nx.single_source_dijkstra_path_length(self.graph, start, cutoff=limit)
        at = np.full(len(self.xy), np.inf)
        at[np.fromiter(dist.keys(), dtype=np.int64, count=len(dist))] = np.fromiter(
            dist.values(), dtype=float, count=len(dist)
        )
        du, dv = at[self.u], at[self.v]
        near = np.isfinite(du) | np.isfinite(dv)
        u, v, w, du, dv = self.u[near], self.v[near], self.w[near], du[near], dv[near]
        # How far the remaining budget carries into the segment from each end.
        from_u = np.clip(limit - du, 0.0, w)
        from_v = np.clip(limit - dv, 0.0, w)
        whole = from_u + from_v >= w
        pu, pv = self.xy[u], self.xy[v]
        frac_u = np.divide(from_u, w, out=np.ones_like(w), where=w > 0)[:, None]
        frac_v = np.divide(from_v, w, out=np.ones_like(w), where=w > 0)[:, None]
        part_u = ~whole & (from_u > 0)
        part_v = ~whole & (from_v > 0)
        starts = np.concatenate([pu[whole], pu[part_u], pv[part_v]])
        ends = np.concatenate(
            [pv[whole], (pu + (pv - pu) * frac_u)[part_u], (pv + (pu - pv) * frac_v)[part_v]]
        )
        site = shapely.points(self.xy[start])
        # A zero-length piece (the walk of a site standing on its road) draws nothing.
        drawn = (starts != ends).any(axis=1)
        starts, ends = starts[drawn], ends[drawn]
        if not len(starts):
            return shapely.buffer(site, BAND_M, quad_segs=4)
        # Merged into runs first, each run buffered alone, then unioned: ~8x faster than one buffer of
        # all the pieces, whose offset curves GEOS would node against each other.
        runs = shapely.line_merge(
            shapely.multilinestrings(shapely.linestrings(np.stack([starts, ends], axis=1)))
        )
        return shapely.union_all(shapely.buffer(shapely.get_parts(runs), BAND_M, quad_segs=4))


def _segments(road_xy: NDArray[np.object_]) -> tuple[FloatArray, IntArray, IntArray]:
    """The roads as straight segments between snapped vertices: node coordinates, and each segment's ends."""
    # A MultiLineString's parts are separate runs: consecutive vertices of one part make a segment.
    coords, part = shapely.get_coordinates(shapely.get_parts(road_xy), return_index=True)
    cell = np.round(coords / SNAP_M).astype(np.int64)
    _, first, node = np.unique(cell, axis=0, return_index=True, return_inverse=True)
    node = node.ravel()
    node_xy = coords[first]  # the cell decides who meets; lengths stay those of the drawn vertices
    same = part[1:] == part[:-1]
    eu, ev = node[:-1][same], node[1:][same]
    keep = eu != ev  # a zero-length segment (repeated vertex) joins nothing
    pairs = np.unique(np.sort(np.column_stack([eu[keep], ev[keep]]), axis=1), axis=0)  # a shared stretch once
    return node_xy, pairs[:, 0], pairs[:, 1]


def _attach(
    points: NDArray[np.object_], node_xy: FloatArray, eu: IntArray, ev: IntArray
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """Each point's nearest segment, the distance along it from its first end, the access walk, and the foot."""
    segs = shapely.linestrings(np.stack([node_xy[eu], node_xy[ev]], axis=1))
    if not len(points):
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 2))
    tree = shapely.STRtree(segs)
    (_, seg), access = tree.query_nearest(points, return_distance=True, all_matches=False)
    along = shapely.line_locate_point(segs[seg], points)
    foot = shapely.get_coordinates(shapely.line_interpolate_point(segs[seg], along))
    return seg.astype(np.int64), np.asarray(along, dtype=float), np.asarray(access, dtype=float), foot


def _split(
    eu: IntArray, ev: IntArray, node_xy: FloatArray, seg: IntArray, along: FloatArray, attach: IntArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """The graph's edges: each segment cut at the points attached to it, in order along it."""
    length = np.hypot(*(node_xy[ev] - node_xy[eu]).T)
    along = np.clip(along, 0.0, length[seg])
    order = np.lexsort((along, seg))
    seg, along, attach = seg[order], along[order], attach[order]
    first = np.ones(len(seg), dtype=bool)
    first[1:] = seg[1:] != seg[:-1]
    last = np.ones(len(seg), dtype=bool)
    last[:-1] = seg[1:] != seg[:-1]
    prev_node = np.where(first, eu[seg], np.roll(attach, 1))
    prev_along = np.where(first, 0.0, np.roll(along, 1))
    bare = np.ones(len(eu), dtype=bool)
    bare[seg] = False
    u = np.concatenate([eu[bare], prev_node, attach[last]])
    v = np.concatenate([ev[bare], attach, ev[seg[last]]])
    w = np.concatenate([length[bare], along - prev_along, length[seg[last]] - along[last]])
    return u, v, w
