"""The address matcher on the demo registry: parts, aliases, nearest, honesty when unsure, calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geogrid.addresses import calibration
from geogrid.addresses.matcher import Match, Matcher
from geogrid.addresses.registry import read_addresses, validate_addresses
from geogrid.addresses.variants import absent, variants
from geogrid.errors import InvalidAddress

DEMO = Path(__file__).resolve().parents[2] / "boundaries" / "demo" / "addresses.csv"
NOISE_SEED = 2024  # neither the fit seed (1201) nor the acceptance test's


@pytest.fixture(scope="module")
def registry() -> pd.DataFrame:
    """The demo registry as an import gives it."""
    good, errors = validate_addresses(read_addresses(DEMO))
    assert not errors
    return good


@pytest.fixture(scope="module")
def matcher(registry: pd.DataFrame) -> Matcher:
    """A matcher on the demo registry at the default threshold."""
    return Matcher(registry, threshold=0.9)


def _row(registry: pd.DataFrame, **where: str) -> pd.Series:
    """The first registry row with the given non-empty parts."""
    rows = registry
    for column in where:
        rows = rows[rows[column].fillna("").astype(str) != ""]
    return rows.iloc[0]


def test_canonical_text_is_placed_exactly(registry: pd.DataFrame, matcher: Matcher) -> None:
    row = _row(registry, road="x", compound="x")
    m = matcher.match(f"{row['township']}{row['road']}{row['door']}号{row['compound']}{row['building']}号楼")
    assert m.placed and m.best is not None and m.best.address_id == row["address_id"]
    assert m.confidence >= 0.99
    assert m.best.matched["road"] == m.best.matched["compound"] == "exact"
    assert m.best.building_id == row["building_id"] and m.reason == ""


def test_one_key_is_enough(registry: pd.DataFrame, matcher: Matcher) -> None:
    row = _row(registry, road="x", compound="x")
    by_road = matcher.match(f"{row['road']}{row['door']}号")
    by_compound = matcher.match(f"{row['compound']}{row['building']}栋二单元")
    assert by_road.best is not None and by_road.best.address_id == row["address_id"]
    assert by_compound.best is not None and by_compound.best.address_id == row["address_id"]
    assert by_compound.parts.entrance == "2"


def test_rural_address(registry: pd.DataFrame, matcher: Matcher) -> None:
    row = _row(registry, village="x")
    m = matcher.match(f"准格尔旗{row['village']}{row['group']}组{row['door']}号")
    assert m.placed and m.best is not None and m.best.address_id == row["address_id"]


def test_two_compounds_differing_by_suffix_are_unsure(registry: pd.DataFrame, matcher: Matcher) -> None:
    urban = registry[registry["compound"].fillna("") != ""]
    core = urban["compound"].str[:-2]
    pairs = urban.assign(core=core).groupby(["core", "building"])["compound"].nunique()
    (name, building) = pairs[pairs > 1].index[0]
    m = matcher.match(f"{name}{building}号楼")  # 康安苑5号楼 with 康安苑公寓 and 康安苑小区 in the registry
    assert not m.placed and m.confidence <= 0.5
    assert len({c.address_id for c in m.candidates}) >= 2 and m.reason


@pytest.mark.parametrize("text", ["hello world", "😀 hello", "Block B, Room 5"])
def test_latin_and_emoji_are_unsure_without_candidates(matcher: Matcher, text: str) -> None:
    m = matcher.match(text)
    assert not m.placed and m.best is None and m.candidates == () and m.confidence == 0.0 and m.reason


@pytest.mark.parametrize("text", ["", "   ", "，，。", "😀😀", "康和\x00小区", "康" * 10_000])
def test_bad_text_raises(matcher: Matcher, text: str) -> None:
    with pytest.raises(InvalidAddress):
        matcher.match(text)


def test_match_many_keeps_bad_rows_in_place(registry: pd.DataFrame, matcher: Matcher) -> None:
    row = _row(registry, road="x")
    out = matcher.match_many([f"{row['road']}{row['door']}号", "", "😀 ok", f"{row['road']}{row['door']}号"])
    assert isinstance(out[0], Match) and isinstance(out[1], InvalidAddress) and isinstance(out[2], Match)
    assert out[0] == out[3]


def test_match_many_answers_as_match_does_text_by_text(registry: pd.DataFrame) -> None:
    """The batch works stage by stage over all its texts; each answer must be the one ``match`` gives."""
    row = _row(registry, compound="x")
    m = Matcher(registry, {"人民医院家属院": str(row["address_id"])}, threshold=0.9)
    texts = [v.text for v in variants(registry, 300, NOISE_SEED)]
    texts += [
        *(v.text for v in absent(registry, 60, NOISE_SEED)),
        "人民医院 家属院",
        "",
        "!!",
        "x" * 300,
        texts[0],
        "经九路",
    ]
    batch = m.match_many(texts)
    for text, got in zip(texts, batch, strict=True):
        try:
            want: Match | InvalidAddress = m.match(text)
        except InvalidAddress as error:
            want = error
        if isinstance(want, InvalidAddress):
            assert isinstance(got, InvalidAddress) and str(got) == str(want), text
        else:
            assert got == want, text
    assert sum(isinstance(r, Match) and r.placed for r in batch) > 250  # the variants are mostly placed


def test_aliases_take_effect_at_once(registry: pd.DataFrame) -> None:
    row = _row(registry, compound="x")
    m = Matcher(registry, {"人民医院家属院": str(row["address_id"])})
    hit = m.match("人民医院 家属院")  # the alias is keyed by the normalised text
    assert hit.placed and hit.confidence == 1.0 and hit.best is not None
    assert hit.best.address_id == row["address_id"] and hit.best.matched == {"alias": "exact"}
    assert not m.match("老粮站后面那栋").placed
    m.add_alias("老粮站后面那栋", (111.2, 39.9))
    point = m.match("老粮站后面那栋")
    assert point.placed and point.best is not None and point.best.address_id == ""
    assert (point.best.lon, point.best.lat) == (111.2, 39.9) and point.best.text == "老粮站后面那栋"
    with pytest.raises(InvalidAddress, match="not an address"):
        m.add_alias("某处", "A-no-such-id")


def test_nearest(registry: pd.DataFrame, matcher: Matcher) -> None:
    row = registry.iloc[100]
    found = matcher.nearest(float(row["lon"]) + 0.0001, float(row["lat"]), max_m=100)
    assert found is not None
    cand, dist = found
    assert cand.address_id == row["address_id"] and 5 < dist < 15  # 0.0001° of longitude ≈ 8.5 m here
    assert matcher.nearest(0.0, 0.0) is None


def test_to_dict_shape(registry: pd.DataFrame, matcher: Matcher) -> None:
    row = _row(registry, road="x")
    d = matcher.match(f"{row['road']}{row['door']}号").to_dict()
    assert set(d) == {"query", "placed", "confidence", "address", "candidates", "reason"}
    assert d["address"]["address_id"] == row["address_id"] and isinstance(d["address"]["matched"], dict)


def test_accuracy_and_precision_on_own_noise(registry: pd.DataFrame, matcher: Matcher) -> None:
    data = calibration.noisy(registry, 1500, NOISE_SEED)
    results = matcher.match_many([t for t, _ in data])
    right = [
        isinstance(m, Match) and m.best is not None and m.best.address_id == a
        for (_, a), m in zip(data, results, strict=True)
    ]
    wrong_placed = [
        (t, m.best.text)
        for (t, a), m, ok in zip(data, results, right, strict=True)
        if isinstance(m, Match) and m.placed and not ok and m.best is not None
    ]
    print(
        f"\nown noise: top-1 {np.mean(right):.2%}, placed {np.mean([getattr(m, 'placed', False) for m in results]):.2%}"
    )
    assert np.mean(right) >= 0.97
    assert not wrong_placed


def test_confidence_is_calibrated_on_a_held_out_seed(registry: pd.DataFrame, matcher: Matcher) -> None:
    x, y = calibration.evidence(matcher, calibration.noisy(registry, 3000, calibration.HOLDOUT_SEED))
    model = calibration.load()
    for lower, count, accuracy in calibration.reliability(model, x, y):
        print(f"confidence >= {lower:.2f}: {count} texts, right {accuracy:.3f}")
        if count >= 30:
            assert accuracy >= lower - 0.05


def test_fit_recovers_a_usable_model(registry: pd.DataFrame) -> None:
    model = calibration.fit(registry, n=600, seed=99, path=None)
    assert len(model["coef"]) == 10 and model["table"]
    assert calibration.predict(model, [2, 2, 1.0, 0, 1.5, 1, 0, 2, 0, 0]) > 0.95  # two exact keys, no rival
    assert calibration.predict(model, [0, 0, 1.0, 0, 1.5, 1, 0, 1, 0, 0]) <= 0.5  # no key agrees
