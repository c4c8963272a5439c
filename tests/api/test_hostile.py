"""Hostile-client regressions (issue 10): inputs that used to crash or be misread get a clear refusal."""

from __future__ import annotations

import pytest

from geogrid.crs import normalize_crs
from geogrid.errors import UnknownCRS


@pytest.mark.parametrize("spelling", ["EPSG:²", "EPSG:٤٣٢٦", "EPSG:４３２６", "²", "EPSG:5773", "EPSG:4978"])
def test_crs_codes_are_ascii_digits_of_a_horizontal_crs(spelling):
    """int('²') raised ValueError (a 500); Arabic-Indic and full-width digits were accepted as 4326."""
    with pytest.raises(UnknownCRS):
        normalize_crs(spelling)


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("GCJ02", "gcj02"),
        ("gcj-02", "gcj02"),
        ("EPSG:4490", "cgcs2000"),
        ("epsg:4326", "wgs84"),
        (" 4546 ", "EPSG:4546"),
    ],
)
def test_every_cli_spelling_is_one_name(spelling, name):
    assert normalize_crs(spelling) == name


def test_unknown_crs_echo_is_truncated():
    with pytest.raises(UnknownCRS) as caught:
        normalize_crs("x" * 100_000)
    assert len(caught.value.detail) < 400 and len(caught.value.where["crs"]) <= 201
