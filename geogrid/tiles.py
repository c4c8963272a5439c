"""Vector tiles (Mapbox Vector Tile, the XYZ scheme of Web Mercator) of one level of one boundary version.

A level is a coverage: its units share their edges. Each zoom draws it simplified to a fraction of a pixel
with :func:`shapely.coverage_simplify`, which simplifies every shared edge once for both neighbours, so no
sliver opens between them on screen; clipping at the tile's edge and rounding to the tile's 4,096-unit grid
then treat a shared vertex alike on both sides. Tiles are encoded by ``mapbox-vector-tile``.

>>> tile_bounds(0, 0, 0) == (-HALF_WORLD, -HALF_WORLD, HALF_WORLD, HALF_WORLD)
True
>>> tiles_over((116.39, 39.90, 116.40, 39.91), 14)
[(13489, 6207), (13489, 6208)]
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pandas as pd
import shapely
from shapely.errors import GEOSException

from geogrid.errors import InvalidParameter

HALF_WORLD = 20037508.342789244  # metres from the centre of Web Mercator to its edge
EXTENT = 4096  # units across a tile (the MVT default)
BUFFER = 64  # units drawn beyond each edge, so that strokes meet across tiles
TOLERANCE = 2.0  # simplification in tile units: an eighth of a pixel on a 256-px tile
EXACT_FROM = 17  # from this zoom on, units are drawn as stored
MAX_ZOOM = 22
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's (minx, miny, maxx, maxy) in Web Mercator metres (EPSG:3857); y counts from the north."""
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidParameter(f"there is no tile {z}/{x}/{y} (zoom 0–{MAX_ZOOM}, x and y below 2^zoom)")
    size = 2 * HALF_WORLD / 2**z
    return (
        -HALF_WORLD + x * size,
        HALF_WORLD - (y + 1) * size,
        -HALF_WORLD + (x + 1) * size,
        HALF_WORLD - y * size,
    )


def tiles_over(bounds: Sequence[float], z: int) -> list[tuple[int, int]]:
    """The (x, y) of the tiles at zoom ``z`` over WGS-84 ``bounds`` (min lon, min lat, max lon, max lat)."""
    n = 2**z

    def column(lon: float) -> int:
        return min(n - 1, max(0, int((lon + 180) / 360 * n)))

    def row(lat: float) -> int:
        rad = math.radians(max(-85.0511, min(85.0511, lat)))
        return min(n - 1, max(0, int((1 - math.asinh(math.tan(rad)) / math.pi) / 2 * n)))

    x0, y0, x1, y1 = bounds
    return [(x, y) for y in range(row(y1), row(y0) + 1) for x in range(column(x0), column(x1) + 1)]


class TileLayer:
    """One level of one version, cut into tiles on demand: each zoom's simplified coverage is made once,
    and the last ``keep`` tiles are kept encoded."""

    def __init__(self, name: str, units: gpd.GeoDataFrame, *, keep: int = 4096) -> None:
        self.name = name
        self.bounds = tuple(
            float(v) for v in units.total_bounds
        )  # WGS-84: min lon, min lat, max lon, max lat
        self._shapes = np.asarray(units.to_crs(3857).geometry.to_numpy())
        names = units["name"] if "name" in units else [None] * len(units)
        self._properties = [
            {"code": str(code), "name": "" if pd.isna(label) else str(label)}
            for code, label in zip(units["code"], names, strict=True)
        ]
        self._zooms: dict[int, tuple[np.ndarray, shapely.STRtree]] = {}
        self._tiles: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()
        self._simplifying = threading.Lock()  # one zoom's coverage made at a time, not once per request

    def __len__(self) -> int:
        return len(self._shapes)

    def names(self) -> list[tuple[str, str]]:
        """Each unit's code and name, in the layer's order."""
        return [(p["code"], p["name"]) for p in self._properties]

    def tile(self, z: int, x: int, y: int) -> bytes:
        """The encoded tile (b"" where no unit reaches it)."""
        bounds = tile_bounds(z, x, y)
        with self._lock:
            kept = self._tiles.get((z, x, y))
            if kept is not None:
                self._tiles.move_to_end((z, x, y))
                return kept
        data = self._encode(z, bounds)
        with self._lock:
            self._tiles[z, x, y] = data
            while len(self._tiles) > self._keep:
                self._tiles.popitem(last=False)
        return data

    def _encode(self, z: int, bounds: tuple[float, float, float, float]) -> bytes:
        shapes, tree = self._at(z)
        minx, miny, maxx, maxy = bounds
        pad = (maxx - minx) * BUFFER / EXTENT
        hits = np.sort(tree.query(shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)))
        clipped = shapely.clip_by_rect(shapes[hits], minx - pad, miny - pad, maxx + pad, maxy + pad)
        scale = EXTENT / (maxx - minx)
        # to the tile's grid (y down), rounded: a vertex two neighbours share lands on one point for both
        drawn = shapely.transform(
            clipped, lambda xy: np.rint((xy - (minx, maxy)) * (scale, -scale)), interleaved=True
        )
        drawn = shapely.orient_polygons(drawn)  # exteriors of positive area on the grid: clockwise on screen
        keep = ~shapely.is_empty(drawn) & (shapely.area(drawn) > 0)
        features = [
            {"geometry": shape, "properties": self._properties[i], "id": i + 1}
            for i, shape in zip(hits[keep].tolist(), drawn[keep], strict=True)
        ]
        if not features:
            return b""
        encoded: bytes = mapbox_vector_tile.encode(  # the geometry as given: no per-vertex Python pass
            [{"name": self.name, "features": features}],
            default_options={"extents": EXTENT, "y_coord_down": True, "check_winding_order": False},
        )
        return encoded

    def _at(self, z: int) -> tuple[np.ndarray, shapely.STRtree]:
        """The coverage as drawn at zoom ``z``, with its search tree (made once per zoom)."""
        zoom = min(z, EXACT_FROM)
        made = self._zooms.get(zoom)
        if made is not None:
            return made
        with self._simplifying:  # the first tiles of a zoom arrive together: the others wait for this one
            made = self._zooms.get(zoom)
            if made is None:
                made = self._zooms[zoom] = self._simplified(zoom)
        return made

    def _simplified(self, zoom: int) -> tuple[np.ndarray, shapely.STRtree]:
        shapes = self._shapes
        if zoom < EXACT_FROM:
            unit = 2 * HALF_WORLD / 2**zoom / EXTENT  # metres per tile unit at this zoom
            try:
                shapes = shapely.coverage_simplify(shapes, TOLERANCE * unit)
            except GEOSException:  # not a clean coverage: drawn as stored (rounding still keeps edges shared)
                shapes = self._shapes
        return shapes, shapely.STRtree(shapes)
