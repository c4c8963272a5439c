"""One vocabulary for coordinates (issue 10 items 15, 16): the CLI's errors file says what the API says."""

from __future__ import annotations

import pytest

from geogrid.batch import _coordinates

CASES = [
    ("east", "39.85", "lon is not a number: 'east'"),
    ("39.9", "116.4", "lat 116.4 is outside -90..90; lon and lat look swapped (lon comes first)"),
    ("500", "39.85", "lon 500 is outside -180..180"),
    ("1_11.2", "39.85", "lon is not a plain decimal number: '1_11.2'"),
    ("1e400", "39.85", "lon is not a finite number: '1e400'"),
    ("", "39.85", "lon is missing"),
    ("111.2", None, "lat is missing"),
]


@pytest.mark.parametrize(("lon", "lat", "reason"), CASES)
def test_the_cli_words_a_bad_coordinate_as_the_api_does(lon, lat, reason):
    """The CLI said "lon is not a finite number: 'east'" for anything unreadable and "out of range: lon 39.9,
    lat 116.4" with no hint; the API's words are in tests/api/test_hostile.py."""
    _, _, reasons = _coordinates([lon, "111.2"], [lat, "39.85"], True)
    assert reasons.tolist() == [reason, ""]


def test_a_projected_crs_has_no_range():
    _, _, reasons = _coordinates(["500000", "east"], ["4400000", "1"], False)
    assert reasons.tolist() == ["", "lon is not a number: 'east'"]
