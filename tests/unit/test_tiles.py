"""Vector tiles of a level: every unit drawn at every zoom, neighbours sharing their edges (no slivers)."""

from __future__ import annotations

import mapbox_vector_tile
import pytest
import shapely
from shapely.geometry import shape

from geogrid.errors import InvalidParameter
from geogrid.tiles import EXTENT, TileLayer, tile_bounds, tiles_over


@pytest.fixture(scope="module")
def microgrids(demo_layers):
    return demo_layers["microgrids"]


@pytest.fixture(scope="module")
def layer(microgrids):
    return TileLayer("microgrid", microgrids)


def decoded(layer, z, x, y):
    data = layer.tile(z, x, y)
    if not data:
        return {}
    features = mapbox_vector_tile.decode(data)["microgrid"]["features"]
    return {f["properties"]["code"]: shape(f["geometry"]) for f in features}


@pytest.mark.parametrize("z", [11, 13, 15])
def test_every_unit_is_drawn_at_every_zoom(layer, microgrids, z):
    codes = set()
    for x, y in tiles_over(microgrids.total_bounds, z):
        codes |= set(decoded(layer, z, x, y))
    assert codes == set(microgrids["code"])


@pytest.mark.parametrize("z", [12, 14])
def test_neighbours_keep_their_shared_edges_when_simplified(layer, microgrids, z):
    """No overlap and no gap between neighbours in a simplified tile: each pair that shares an edge in the
    store shares one in the tile. Simplifying each unit alone fails both (it is what coverage_simplify avoids)."""
    tiles = tiles_over(microgrids.total_bounds, z)
    x, y = tiles[len(tiles) // 2]
    drawn = decoded(layer, z, x, y)
    assert len(drawn) > 20
    codes = sorted(drawn)
    shapes = [drawn[c] for c in codes]
    assert all(s.is_valid for s in shapes)
    assert sum(s.area for s in shapes) == pytest.approx(
        shapely.union_all(shapes).area, abs=1e-6
    )  # no overlap
    minx, miny, maxx, maxy = tile_bounds(z, x, y)  # the units as stored, cut where the tile is
    source = shapely.clip_by_rect(
        microgrids.set_index("code").loc[codes].geometry.to_crs(3857).to_numpy(), minx, miny, maxx, maxy
    )
    tree = shapely.STRtree(source)
    pairs = 0
    for i, j in zip(*tree.query(source, predicate="touches"), strict=True):
        if i < j and shapely.intersection(source[i].boundary, source[j].boundary).length > 50:  # metres
            pairs += 1
            assert shapes[i].boundary.intersection(shapes[j].boundary).length > 0, (codes[i], codes[j])
    assert pairs > 20
    alone = [s.simplify(8) for s in shapes]  # the naive way, to show the check can fail
    assert sum(s.area for s in alone) > shapely.union_all(alone).area + 1


def test_tile_coordinates_are_checked():
    assert tile_bounds(1, 1, 0)[::2] == pytest.approx((0.0, 20037508.342789244))
    with pytest.raises(InvalidParameter, match="no tile 3/8/0"):
        tile_bounds(3, 8, 0)


def test_a_tile_beyond_the_county_is_empty_and_tiles_are_kept(layer):
    assert layer.tile(10, 0, 0) == b""
    first = layer.tile(14, *tiles_over((111.2, 39.85, 111.2, 39.85), 14)[0])
    assert first and layer.tile(14, *tiles_over((111.2, 39.85, 111.2, 39.85), 14)[0]) is first
    assert EXTENT == 4096


def test_a_unit_without_a_name_has_an_empty_one(microgrids):
    unnamed = microgrids.head(3).assign(name=[None, float("nan"), "东关"])
    layer = TileLayer("microgrid", unnamed)
    x, y = tiles_over(unnamed.total_bounds, 12)[0]
    names = {f["properties"]["code"]: f["properties"]["name"] for f in decode_all(layer, 12, x, y)}
    assert sorted(names.values()) == ["", "", "东关"]


def decode_all(layer, z, x, y):
    return mapbox_vector_tile.decode(layer.tile(z, x, y))["microgrid"]["features"]
