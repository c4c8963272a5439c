"""The geogrid command on both databases: import (dry run, commit, GCJ-02), publish, versions, export, info."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from geogrid import cli
from geogrid.access import Principal, Role
from geogrid.cli import app
from geogrid.db import Store
from geogrid.db.keys import Keys
from geogrid.io import read_boundaries, read_layer

runner = CliRunner()


def geogrid(database_url: str, *args: str):
    return runner.invoke(app, ["--database-url", database_url, "--actor", "planner-li", *args])


def test_import_is_a_dry_run_until_commit(database_url, store, demo_dir):
    result = geogrid(
        database_url, "import", str(demo_dir / "streets.geojson"), "--set", "c", "--level", "street"
    )
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.output and "Nothing was written" in result.output
    assert store.sets() == []
    result = geogrid(
        database_url,
        "import",
        str(demo_dir / "streets.geojson"),
        "--set",
        "c",
        "--level",
        "street",
        "--commit",
    )
    assert result.exit_code == 0, result.output
    assert "Written to draft v1" in result.output
    assert store.audit("c")[-1]["actor"] == "planner-li"


def test_gcj02_grid_layer_lands_within_a_centimetre(database_url, store, demo_dir, demo_layers):
    result = geogrid(
        database_url,
        "import",
        str(demo_dir / "grids_gcj02.geojson"),
        "--set",
        "g",
        "--level",
        "grid",
        "--crs",
        "gcj02",
        "--commit",
    )
    assert result.exit_code == 0, result.output
    result = geogrid(database_url, "publish", "--set", "g", "--valid-from", "2026-01-01")
    assert result.exit_code == 0, result.output
    stored = store.units("g", level="grid")
    original = demo_layers["grids"].sort_values("code")
    assert stored["code"].tolist() == original["code"].tolist()
    a = shapely.get_coordinates(stored.geometry.to_numpy())
    b = shapely.get_coordinates(original.geometry.to_numpy())
    dx = (a[:, 0] - b[:, 0]) * 111_320 * np.cos(np.radians(b[:, 1]))
    dy = (a[:, 1] - b[:, 1]) * 110_574
    assert np.hypot(dx, dy).max() < 0.01


def test_demo_publish_versions_export_info(database_url, store: Store, tmp_path, demo_layers):
    result = geogrid(database_url, "demo", "--valid-from", "2026-01-01")
    assert result.exit_code == 0, result.output
    n_micro = f"{len(demo_layers['microgrids']):,}"
    assert "522" in result.output and n_micro in result.output
    again = geogrid(database_url, "demo")
    assert "already loaded" in again.output
    result = geogrid(database_url, "versions", "--set", "demo")
    assert result.exit_code == 0 and "published" in result.output
    out = tmp_path / "grids.gpkg"
    result = geogrid(
        database_url, "export", str(out), "--set", "demo", "--level", "grid", "--at", "2026-03-01"
    )
    assert result.exit_code == 0, result.output
    exported = read_boundaries(out)
    assert exported["code"].tolist() == sorted(demo_layers["grids"]["code"])
    result = geogrid(database_url, "info", "--set", "demo")
    households = f"{int(demo_layers['grids']['households'].sum()):,}"
    assert result.exit_code == 0 and households in result.output


def test_validate_a_file_and_a_set(database_url, store, demo_dir, demo_layers, tmp_path):
    result = geogrid(
        database_url,
        "validate",
        str(demo_dir / "grids.geojson"),
        "--parent",
        str(demo_dir / "communities.geojson"),
    )
    assert result.exit_code == 0 and "no problems" in result.output
    broken = demo_layers["grids"].iloc[1:]
    broken.to_file(tmp_path / "broken.geojson")
    out, summary = tmp_path / "problems.gpkg", tmp_path / "summary.json"
    result = geogrid(
        database_url,
        "validate",
        str(tmp_path / "broken.geojson"),
        "--parent",
        str(demo_dir / "communities.geojson"),
        "--out",
        str(out),
        "--summary",
        str(summary),
    )
    assert result.exit_code == 1 and "gap" in result.output
    assert json.loads(summary.read_text())["count"]["gap"] == 1
    assert read_layer(out)["kind"].tolist() == ["gap"]
    geogrid(database_url, "demo", "--valid-from", "2026-01-01")
    result = geogrid(database_url, "validate", "--set", "demo", "--level", "grid")
    assert result.exit_code == 0 and "no problems" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "missing.geojson", "--set", "x", "--level", "grid"], "no such file"),
        (["publish", "--set", "nope", "--valid-from", "2026-01-01"], "no boundary set named 'nope'"),
        (["import", "{demo}/grids.geojson", "--set", "x", "--level", "street"], "is not a street code"),
    ],
)
def test_errors_are_one_clear_line(database_url, demo_dir, args, message, monkeypatch, capsys):
    args = [a.replace("{demo}", str(demo_dir)) for a in args]
    monkeypatch.setattr(sys, "argv", ["geogrid", "--database-url", database_url, *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    printed = capsys.readouterr().err
    assert printed.startswith("error: ") and message in printed and "Traceback" not in printed


def test_keys_create_list_revoke(database_url, store):
    made = geogrid(database_url, "keys", "create", "--name", "热线 12345", "--role", "reporter")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("gg_")
    keys = Keys(store.engine)
    assert keys.resolve(key) == Principal("热线 12345", Role.reporter, None)
    scoped = geogrid(
        database_url, "keys", "create", "--name", "p", "--role", "planner", "--scope", "150622001002"
    )
    assert scoped.exit_code == 0 and keys.list()[-1].scope == "150622001002"
    listed = geogrid(database_url, "keys", "list")
    assert "热线 12345" in listed.stdout and key not in listed.stdout
    first = keys.list()[0].id  # ids go on from earlier tests' keys on PostgreSQL
    assert geogrid(database_url, "keys", "revoke", str(first)).exit_code == 0
    assert keys.resolve(key) is None
    bad = geogrid(database_url, "keys", "create", "--name", "x", "--role", "admin", "--scope", "150622001")
    assert bad.exit_code != 0 and "cannot be limited" in str(bad.exception)  # main() prints it as one line
    assert [a["action"] for a in store.audit()] == ["create_key", "create_key", "revoke_key"]
