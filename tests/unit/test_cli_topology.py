"""geogrid repair and compare on files (no database involved)."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from typer.testing import CliRunner

from geogrid.cli import app
from geogrid.io import read_boundaries

runner = CliRunner()


def test_repair_and_compare_files(demo_dir, demo_layers, tmp_path):
    grids = demo_layers["grids"]
    broken = grids.drop(index=grids.index[3]).copy()
    broken.loc[broken.index[10], "geometry"] = broken.geometry.iloc[10].buffer(0.0003)
    broken.to_file(tmp_path / "broken.geojson")
    out = tmp_path / "fixed.gpkg"
    result = runner.invoke(
        app,
        [
            "repair",
            str(tmp_path / "broken.geojson"),
            "--parent",
            str(demo_dir / "communities.geojson"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    fixed = read_boundaries(out)
    assert len(fixed) == len(broken)
    changes = pd.read_csv(tmp_path / "fixed.changes.csv")
    assert {"ceded_overlap", "kept_overlap"} <= set(changes["action"])
    assert len(gpd.read_file(tmp_path / "fixed.unassigned.geojson")) == 1  # the deleted grid, for the planner
    pairs = tmp_path / "pairs.csv"
    merged = tmp_path / "merged.gpkg"
    result = runner.invoke(
        app,
        ["compare", str(demo_dir / "grids.geojson"), str(out), "--out", str(pairs), "--merged", str(merged)],
    )
    assert result.exit_code == 0, result.output
    assert grids["code"].iloc[3] in result.output  # the grid with no counterpart disagrees
    assert set(pd.read_csv(pairs, dtype=str)["code_a"]) <= set(grids["code"])
    assert len(read_boundaries(merged, name=None)) >= len(grids)


def _island_files(tmp_path):
    from tests.unit.test_topology import _island_layer

    units, parent, _ = _island_layer()
    units.to_file(tmp_path / "units.geojson")
    parent.to_file(tmp_path / "parent.geojson")
    return units, tmp_path / "units.geojson", tmp_path / "parent.geojson"


def test_validate_passes_a_layer_whose_only_finding_is_an_island(tmp_path):
    """Issue 10 item 23: a unit in several parts is reported, and blocks nothing (exit code 0)."""
    _, units, parent = _island_files(tmp_path)
    summary = tmp_path / "summary.json"
    result = runner.invoke(app, ["validate", str(units), "--parent", str(parent), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    assert "multipart" in result.output and "information" in result.output
    assert '"multipart": 1' in summary.read_text()


def test_validate_fails_an_island_with_a_gap(tmp_path):
    frame, _, parent = _island_files(tmp_path)
    frame.loc[1, "geometry"] = frame.geometry.iloc[1].buffer(-0.0001)  # B shrinks: a gap
    frame.to_file(tmp_path / "gapped.geojson")
    result = runner.invoke(app, ["validate", str(tmp_path / "gapped.geojson"), "--parent", str(parent)])
    assert result.exit_code == 1, result.output


def test_repair_keeps_the_island_in_the_file_it_writes(tmp_path):
    frame, units, parent = _island_files(tmp_path)
    out = tmp_path / "fixed.geojson"
    result = runner.invoke(app, ["repair", str(units), "--parent", str(parent), "--out", str(out)])
    assert result.exit_code == 0, result.output
    fixed = read_boundaries(out, name=None).set_index("code")
    island = frame.set_index("code").geometry["A"]
    assert len(fixed.geometry["A"].geoms) == 2 and fixed.geometry["A"].equals_exact(island, 1e-9)
    assert "0 fault(s), 1 for information" in result.output
