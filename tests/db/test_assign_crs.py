"""assign from GCJ-02 or BD-09 to a spatial file: the layer is labelled WGS-84, so its points are WGS-84."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geogrid.crs import transform
from tests.db.test_cli_files import geogrid, points  # noqa: F401  (points is a fixture)


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shp"])
def test_a_shifted_input_is_written_as_wgs84_points_and_assigned_again_alike(
    database_url,
    points,  # noqa: F811  (the fixture imported above)
    tmp_path,
    crs,
    fmt,
):
    """The points used to be written as sent (GCJ-02) in a layer labelled EPSG:4326: read again, they
    landed ~500 m off, in other micro-grids."""
    assert geogrid(database_url, "demo", "--valid-from", "2026-01-01").exit_code == 0
    table, expected = points
    lon, lat = transform(table["lon"], table["lat"], "wgs84", crs)
    sent = table.assign(lon=lon, lat=lat)
    source = tmp_path / "sent.csv"
    sent.to_csv(source, index=False)
    placed = tmp_path / f"placed.{fmt}"
    result = geogrid(database_url, "assign", str(source), "--set", "demo", "--crs", crs, "--out", str(placed))
    assert result.exit_code == 0, result.output
    layer = pyogrio.read_dataframe(placed)
    assert layer.crs.to_epsg() == 4326
    order = layer["id"].astype(int).to_numpy() - 1
    xy = shapely.get_coordinates(layer.geometry.to_numpy())
    assert np.abs(xy - table[["lon", "lat"]].to_numpy()[order]).max() < 1e-7  # the WGS-84 points
    assert np.allclose(
        layer[["lon", "lat"]].to_numpy(float), sent[["lon", "lat"]].to_numpy()[order]
    )  # as sent
    again = tmp_path / "again.csv"
    result = geogrid(database_url, "assign", str(placed), "--set", "demo", "--out", str(again))
    assert result.exit_code == 0, result.output
    back = pd.read_csv(again, dtype=str, keep_default_na=False)
    assert dict(zip(back["id"].astype(int), back["unit_code"], strict=True)) == expected
