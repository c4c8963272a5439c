"""Hierarchy and codes: levels from code lengths, parents derived from codes and checked by geometry."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from shapely import affinity

from geogrid.errors import InvalidCode
from geogrid.hierarchy import (
    Level,
    check_parents,
    level_of,
    parent_code,
    parse_level,
    prepare_units,
    validate_codes,
)


@pytest.mark.parametrize(
    ("code", "level", "parent"),
    [
        ("150622", Level.county, None),
        ("150622001", Level.street, "150622"),
        ("150622001002", Level.community, "150622001"),
        ("150622001002003", Level.grid, "150622001002"),
        ("150622001002003004", Level.microgrid, "150622001002003"),
    ],
)
def test_levels_and_parents_from_codes(code, level, parent):
    assert level_of(code) is level
    assert parent_code(code) == parent


@pytest.mark.parametrize("bad", ["15062200100", "15062A001", ""])
def test_malformed_codes(bad):
    with pytest.raises(InvalidCode):
        level_of(bad)


def test_parse_level_aliases():
    assert parse_level("micro-grid") is Level.microgrid
    assert parse_level("township") is Level.street
    assert parse_level(15) is Level.grid
    with pytest.raises(InvalidCode, match="unknown level 'block'"):
        parse_level("block")


def test_validate_codes_names_the_row():
    with pytest.raises(InvalidCode, match="row 2: code '15062200100' is not a grid code") as info:
        validate_codes(["150622001001001", "15062200100"], Level.grid)
    assert info.value.where["row"] == 2
    with pytest.raises(InvalidCode, match="row 3: code '150622001001001' repeats row 1"):
        validate_codes(["150622001001001", "150622001001002", "150622001001001"], Level.grid)
    with pytest.raises(InvalidCode, match="ends in 000"):
        validate_codes(["150622001001000"], Level.grid)


def test_check_parents_uses_geometry_not_the_code(demo_layers):
    grids = demo_layers["grids"]
    micro = demo_layers["microgrids"]
    assert check_parents(micro, grids) == []
    moved = micro.copy()
    i = 10
    moved.loc[moved.index[i], "geometry"] = affinity.translate(moved.geometry.iloc[i], xoff=0.02)
    violations = check_parents(moved, grids)
    assert [v.code for v in violations] == [micro["code"].iloc[i]]
    assert violations[0].outside_m2 > 1000 and "outside its parent" in violations[0].reason
    orphan = micro.head(1).assign(code="150622999999999001")
    assert "does not exist" in check_parents(orphan, grids)[0].reason


def test_prepare_units_types_and_checks():
    frame = gpd.GeoDataFrame(
        {
            "code": ["150622001001001"],
            "name": ["网格一"],
            "households": ["420"],
            "owner": ["张三"],
            "parent_code": ["150622001001"],
        },
        geometry=[shapely.box(111.2, 39.85, 111.21, 39.86)],
        crs=4326,
    )
    units = prepare_units(frame, "grid")
    assert units.iloc[0][["level", "parent_code", "households"]].tolist() == ["grid", "150622001001", 420]
    assert units["attributes"].iloc[0] == {"owner": "张三"}
    with pytest.raises(InvalidCode, match="row 1: parent_code '150622001002' contradicts the code"):
        prepare_units(frame.assign(parent_code="150622001002"), "grid")
    with pytest.raises(InvalidCode, match="row 1: households must be a whole number"):
        prepare_units(frame.assign(households="many"), "grid")
    # the level given wins; a file's own level column is data (issue 10, item 22)
    assert prepare_units(frame.assign(level="community"), "grid")["level"].tolist() == ["grid"]
    with pytest.raises(InvalidCode, match="has no name"):
        prepare_units(frame.assign(name=" "), "grid")
