"""The demo county: the counts of the issue, exact nesting, and a generator that reproduces it byte for byte."""

from __future__ import annotations

import importlib.util
import itertools
import sys

import numpy as np
import pytest
import shapely

from geogrid.crs import local_metric_crs

LEVELS = ["county", "streets", "communities", "grids", "microgrids"]


@pytest.fixture(scope="module")
def metric(demo_layers):
    crs = local_metric_crs(111.2, 39.85)
    return {name: frame.to_crs(crs) for name, frame in demo_layers.items()}


def test_counts(demo_layers):
    counts = {name: len(frame) for name, frame in demo_layers.items()}
    assert counts["county"] == 1 and counts["streets"] == 13 and counts["communities"] == 42
    assert counts["grids"] == 522
    assert 2800 <= counts["microgrids"] <= 3200


def test_households(demo_layers, demo_dir):
    grids = demo_layers["grids"]
    hh = grids["households"].to_numpy()
    assert np.mean((hh >= 300) & (hh <= 500)) > 0.8  # most grids follow the 300-500 norm...
    assert (hh > 500).sum() >= 10 and (hh < 300).sum() >= 10  # ...a few deliberately do not
    import geopandas as gpd

    buildings = gpd.read_file(demo_dir / "buildings.geojson")
    for name in LEVELS:
        assert demo_layers[name]["households"].sum() == buildings["households"].sum()
    by_micro = buildings.groupby("microgrid_code")["households"].sum()
    micro = demo_layers["microgrids"].set_index("code")["households"]
    assert (by_micro.reindex(micro.index).fillna(0) == micro).all()
    # every building stands inside its own micro-grid
    joined = micro.index.get_indexer(buildings["microgrid_code"])
    geoms = demo_layers["microgrids"].set_index("code").geometry.to_numpy()[joined]
    assert shapely.contains(geoms, buildings.geometry.to_numpy()).all()


@pytest.mark.parametrize(("parent", "child"), list(itertools.pairwise(LEVELS)))
def test_every_level_tiles_its_parent(metric, parent, child):
    parents, children = metric[parent], metric[child]
    assert set(children["parent_code"]) == set(parents["code"])
    for code, geom in zip(parents["code"], parents.geometry, strict=True):
        mine = children.geometry[children["parent_code"] == code].to_numpy()
        union = shapely.union_all(mine)
        assert shapely.area(shapely.symmetric_difference(union, geom)) < 1.0, f"gap or spill in {code}"
        assert shapely.area(mine).sum() - union.area < 1.0, f"overlap inside {code}"


@pytest.mark.parametrize("name", LEVELS)
def test_units_are_valid_single_polygons_without_holes(demo_layers, name):
    geoms = demo_layers[name].geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert (shapely.get_num_geometries(geoms) == 1).all()
    assert (shapely.get_num_interior_rings(shapely.get_geometry(geoms, 0)) == 0).all()


def test_grids_look_like_grids_not_boxes(demo_layers):
    grids = demo_layers["grids"].geometry.to_numpy()
    vertices = shapely.get_num_coordinates(grids)
    assert np.median(vertices) > 12  # jagged block lines, not 5-vertex rectangles
    assert (shapely.area(shapely.oriented_envelope(grids)) / shapely.area(grids)).mean() > 1.1


def test_generator_reproduces_the_committed_files(demo_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("demo_generate", demo_dir / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_generate"] = module
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path)]) == 0
    for filename in module.LAYER_FILES.values():
        assert (tmp_path / filename).read_bytes() == (demo_dir / filename).read_bytes(), filename
    assert sum(p.stat().st_size for p in demo_dir.iterdir()) < 20e6
