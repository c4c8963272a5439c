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
