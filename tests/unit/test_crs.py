"""Coordinate systems: GCJ-02 and BD-09 against published vectors, exact inverses, pyproj codes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geogrid import crs
from geogrid.errors import InvalidCoordinates, UnknownCRS

# (wgs_lat, wgs_lon, gcj_lat, gcj_lon): the test vectors of googollee/eviltransform.
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]
# wandergis/coordtransform README: input (116.404, 39.915) through each forward transform.
COORDTRANSFORM = {
    "wgs84_to_gcj02": (116.41024449916938, 39.91640428150164),
    "gcj02_to_bd09": (116.41036949371029, 39.92133699351021),
}
# Its closed-form bd09togcj02 is itself an approximation (to a few cm) of the inverse we iterate.
COORDTRANSFORM_BD_TO_GCJ = (116.39762729119315, 39.90865673957631)

china_lon = st.floats(73.7, 134.7)
china_lat = st.floats(18.2, 53.4)


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres (haversine; fine at centimetre scale)."""
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371008.8 * np.arcsin(np.sqrt(a))


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), EVILTRANSFORM)
def test_gcj02_forward_matches_published_vectors(wlat, wlon, glat, glon):
    lon, lat = crs.wgs84_to_gcj02(wlon, wlat)
    assert abs(lon - glon) < 1e-6 and abs(lat - glat) < 1e-6


def test_forward_transforms_match_coordtransform():
    for name, (elon, elat) in COORDTRANSFORM.items():
        lon, lat = getattr(crs, name)(116.404, 39.915)
        assert abs(lon - elon) < 1e-6 and abs(lat - elat) < 1e-6, name
    lon, lat = crs.bd09_to_gcj02(116.404, 39.915)
    assert abs(lon - COORDTRANSFORM_BD_TO_GCJ[0]) < 1e-6 and abs(lat - COORDTRANSFORM_BD_TO_GCJ[1]) < 1e-6


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), EVILTRANSFORM)
def test_gcj02_inverse_is_exact_where_the_one_step_inverse_is_not(wlat, wlon, glat, glon):
    lon, lat = crs.gcj02_to_wgs84(glon, glat)
    assert metres(lon, lat, wlon, wlat) < 0.01
    # The common one-step inverse (subtract the offset computed at the GCJ point) is off by decimetres.
    dlon, dlat = np.subtract(crs.wgs84_to_gcj02(glon, glat), (glon, glat))
    assert metres(glon - dlon, glat - dlat, wlon, wlat) > 0.1


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_gcj02_round_trip_within_a_centimetre(lon, lat):
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    assert metres(glon, glat, lon, lat) > 1.0  # the offset is real inside China
    back = crs.gcj02_to_wgs84(glon, glat)
    assert metres(*back, lon, lat) < 0.01


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_bd09_round_trips_within_a_centimetre(lon, lat):
    assert metres(*crs.bd09_to_wgs84(*crs.wgs84_to_bd09(lon, lat)), lon, lat) < 0.01
    assert metres(*crs.wgs84_to_bd09(*crs.bd09_to_wgs84(lon, lat)), lon, lat) < 0.01
    assert metres(*crs.bd09_to_gcj02(*crs.gcj02_to_bd09(lon, lat)), lon, lat) < 0.01


@pytest.mark.parametrize(
    ("lon", "lat"), [(2.3522, 48.8566), (-74.006, 40.7128), (151.2093, -33.8688), (139.8, 35.7)]
)
def test_gcj02_is_identity_outside_china(lon, lat):
    assert crs.wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert crs.gcj02_to_wgs84(lon, lat) == (lon, lat)
    assert bool(crs.out_of_china(lon, lat))


def test_transforms_are_vectorised_and_keep_nan():
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(100, 120, 100_000), rng.uniform(25, 45, 100_000)
    lon[7] = np.nan
    back = crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat))
    assert np.isnan(back[0][7])
    ok = ~np.isnan(lon)
    assert np.nanmax(metres(back[0][ok], back[1][ok], lon[ok], lat[ok])) < 0.01


@pytest.mark.parametrize("src", ["gcj02", "bd09", "cgcs2000", "wgs84"])
def test_one_point_converts_as_arrays_do(src):
    rng = np.random.default_rng(4)
    lon, lat = rng.uniform(73, 135, 300), rng.uniform(18, 53, 300)
    x, y = crs.transform(lon, lat, src, "wgs84")
    assert [crs.transform_point(a, b, src) for a, b in zip(lon, lat, strict=True)] == list(
        zip(x, y, strict=True)
    )


def test_many_points_in_parallel_equal_a_few_at_a_time():
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(73, 135, 3 * crs._PARALLEL_FROM), rng.uniform(18, 53, 3 * crs._PARALLEL_FROM)
    for convert in (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84, crs.wgs84_to_bd09, crs.bd09_to_wgs84):
        many = convert(lon, lat)  # the parallel kernel
        few = [convert(lon[i : i + 100], lat[i : i + 100]) for i in range(0, lon.size, 100)]  # one by one
        assert np.array_equal(many[0], np.concatenate([f[0] for f in few]))
        assert np.array_equal(many[1], np.concatenate([f[1] for f in few]))


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("WGS84", "wgs84"),
        ("EPSG:4326", "wgs84"),
        (4326, "wgs84"),
        ("GCJ-02", "gcj02"),
        ("bd09", "bd09"),
        ("cgcs2000", "cgcs2000"),
        ("EPSG:4490", "cgcs2000"),
        ("epsg:4546", "EPSG:4546"),
        (32649, "EPSG:32649"),
    ],
)
def test_one_name_for_each_crs(given, name):
    assert crs.normalize_crs(given) == name


@pytest.mark.parametrize("bad", ["mercator-ish", "EPSG:999999", ""])
def test_unknown_crs_is_a_clear_error(bad):
    with pytest.raises(UnknownCRS, match="unknown"):
        crs.normalize_crs(bad)


def test_cgcs2000_and_projected_codes_through_pyproj():
    lon, lat = crs.transform([111.2], [39.85], "cgcs2000", "wgs84")
    assert metres(lon[0], lat[0], 111.2, 39.85) < 1.0  # CGCS2000 and WGS-84 agree to centimetres
    x, y = crs.transform([111.2], [39.85], "wgs84", "EPSG:4546")
    assert abs(x[0] - 500000 - 17_100) < 200 and 4_400_000 < y[0] < 4_420_000
    back = crs.to_wgs84(x, y, "EPSG:4546")
    assert metres(back[0][0], back[1][0], 111.2, 39.85) < 1e-3
    # GCJ-02 from a projected CRS goes through WGS-84.
    glon, glat = crs.transform(x, y, "EPSG:4546", "gcj02")
    assert metres(*crs.gcj02_to_wgs84(glon, glat), 111.2, 39.85) < 0.01


def test_local_metric_crs():
    assert crs.local_metric_crs(111.2, 39.85).to_epsg() == 4546
    assert crs.local_metric_crs(87.6, 43.8).name.endswith("CM 87E")  # Urumqi
    assert crs.local_metric_crs(2.35, 48.85).to_epsg() == 32631  # Paris: UTM 31N
    assert crs.local_metric_crs(151.2, -33.9).to_epsg() == 32756
    with pytest.raises(InvalidCoordinates):
        crs.local_metric_crs(float("nan"), 0)


def test_check_lonlat_names_the_point():
    with pytest.raises(InvalidCoordinates, match="index 2") as info:
        crs.check_lonlat([111, 112, 200], [39, 40, 41])
    assert info.value.where == {"index": 2, "lon": 200.0, "lat": 41.0}
