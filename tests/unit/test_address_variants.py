"""The variant generator: reproducible, every kind made, texts unlike the registry's, the target kept."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from geogrid.addresses.registry import read_addresses
from geogrid.addresses.text import fold, normalize, parse
from geogrid.addresses.variants import (
    ABSENT_KINDS,
    CONFUSABLE,
    KINDS,
    Variant,
    absent,
    canonical_text,
    common_homophones,
    variants,
)

DEMO = Path(__file__).resolve().parents[2] / "boundaries" / "demo" / "addresses.csv"
COLUMNS = ("township", "road", "door", "compound", "building", "village", "group")


def small_registry() -> pd.DataFrame:
    """A few urban and rural addresses, with entrances, Chinese numerals in names, and an alias."""
    rows = []
    for road, compound, town in (("迎泽路", "康和小区", "薛家湾镇"), ("经十二路", "鑫嘉府公寓", "沙圪堵镇")):
        for b in range(1, 7):
            rows.append({"township": town, "road": road, "door": str(10 + 2 * b), "compound": compound,
                         "building": str(b), "entrances": b % 4, "village": None, "group": None})  # fmt: skip
    for group in range(1, 5):
        for door in range(1, 4):
            rows.append({"township": "十二连城乡", "road": None, "door": str(door), "compound": None,
                         "building": None, "entrances": 0, "village": "榆树湾村", "group": str(group)})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.insert(0, "address_id", [f"A{i:03d}" for i in range(len(frame))])
    frame["building_id"] = [f"B{i:03d}" for i in range(len(frame))]
    frame["aliases"] = ["康和苑" if c == "康和小区" else "" for c in frame["compound"]]
    return frame


@pytest.fixture(scope="module")
def registry() -> pd.DataFrame:
    """The demo registry when it is there, else the small one."""
    return read_addresses(DEMO) if DEMO.exists() else small_registry()


@pytest.fixture(scope="module")
def made(registry: pd.DataFrame) -> list[Variant]:
    """2,000 variants of the registry."""
    return variants(registry, 2000, seed=7)


def parts_of(registry: pd.DataFrame) -> dict[str, dict[str, str | None]]:
    """Each address's parts by id (empty cells as None)."""
    return {
        row["address_id"]: {c: str(row[c]) if isinstance(row[c], str) and row[c] else None for c in COLUMNS}
        for row in registry.to_dict("records")
    }


def test_the_same_seed_gives_the_same_variants(registry: pd.DataFrame, made: list[Variant]) -> None:
    assert variants(registry, 2000, seed=7) == made
    assert variants(registry, 2000, seed=8) != made
    assert variants(registry, 50, seed=7) == made[:50]


def test_every_kind_occurs_and_a_variant_combines_one_to_three(made: list[Variant]) -> None:
    counts = Counter(kind for v in made for kind in v.kinds)
    assert set(counts) == set(KINDS), set(KINDS) - set(counts)
    assert min(counts.values()) >= 20, counts
    assert {len(v.kinds) for v in made} == {1, 2, 3}
    assert all(list(v.kinds) == sorted(v.kinds, key=KINDS.index) for v in made)


def test_texts_differ_from_the_registry_text(registry: pd.DataFrame, made: list[Variant]) -> None:
    parts = parts_of(registry)
    assert all(v.text != canonical_text(parts[v.address_id]) for v in made)
    assert len({v.text for v in made}) > 1800


def test_the_target_is_kept(registry: pd.DataFrame, made: list[Variant]) -> None:
    ids = dict(zip(registry["address_id"], registry["building_id"], strict=True))
    parts = parts_of(registry)
    for v in made:
        assert ids[v.address_id] == v.building_id
        p = parts[v.address_id]
        digits = v.text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
        if "no_road" not in v.kinds and p["road"] and "numerals_zh" not in v.kinds:
            assert f"{p['door']}号" in digits, v  # the door number survives unless written in Chinese
        if "no_road" in v.kinds:
            assert p["road"] not in v.text and p["compound"] and p["building"]
        if {"no_compound", "no_building"} & set(v.kinds):
            assert p["road"]  # left out only when road and door still name the building
        if not {"typo", "homophone", "numerals_arabic", "no_road", "no_compound"} & set(v.kinds):
            for name in (p["road"], p["compound"], p["village"]):
                assert name is None or name in re.sub(r"[\s，。、,\-－]", "", digits), v


def test_a_changed_name_is_not_another_registry_name(registry: pd.DataFrame, made: list[Variant]) -> None:
    names = {str(n) for c in ("township", "road", "compound", "village") for n in registry[c] if n}
    parts = parts_of(registry)
    for v in made:
        if {"typo", "homophone"} & set(v.kinds):
            own = {parts[v.address_id][c] for c in ("township", "road", "compound", "village")}
            # every registry name the text contains is one of its own address's names
            found = {n for n in names if n in v.text and not any(n in str(o) for o in own if o)}
            assert not {n for n in found if len(n) >= 4}, (v, found)


def test_the_tables() -> None:
    assert "薜" in CONFUSABLE["薛"]
    assert all(c not in swaps for c, swaps in CONFUSABLE.items())
    sounds = common_homophones()
    assert "康" in sounds["kang"] and "抗" in sounds["kang"]
    assert sum(len(chars) for chars in sounds.values()) == 3755


def test_the_small_registry_too() -> None:
    made = variants(small_registry(), 500, seed=1)
    assert len(made) == 500
    assert {k for v in made for k in v.kinds} == set(KINDS)
    assert variants(small_registry(), 0, seed=1) == []
    assert variants(small_registry().iloc[:0], 5, seed=1) == []


def test_absent_numbers_are_not_in_the_registry(registry: pd.DataFrame) -> None:
    made = absent(registry, 300, seed=3)
    assert len(made) == 300 and made == absent(registry, 300, seed=3)
    assert {v.kinds for v in made} == {(k,) for k in ABSENT_KINDS}
    assert all(v.address_id == "" and v.building_id == "" for v in made)
    have = {
        (part, fold(row[part]), str(row[number]))
        for row in registry.to_dict("records")
        for part, number in (("road", "door"), ("compound", "building"))
        if isinstance(row[part], str) and row[part]
    }
    names = ("township", "road", "compound", "village")
    known = {fold(row[k]): k for row in registry.to_dict("records") for k in names if isinstance(row[k], str)}
    rows = registry.to_dict("records")
    at_door = {(fold(r["road"]), str(r["door"])): r for r in rows if isinstance(r["road"], str)}
    for v in made:
        p = parse(normalize(v.text), known)
        if v.kinds == ("contradiction",):  # the door's address is in a compound with the building said
            row = at_door[(p.road, p.door)]
            assert p.building != str(row["building"]), v
            assert ("compound", fold(row["compound"]), p.building) in have, v
            assert p.compound in (None, fold(row["compound"])), v
            continue
        part, number = ("road", p.door) if v.kinds == ("unknown_door",) else ("compound", p.building)
        name = p.road if part == "road" else p.compound
        assert name and number, v
        assert any(h[:2] == (part, name) for h in have), v  # the name is the registry's
        assert (part, name, number) not in have, v  # and the number is not its
        assert any(h[0] == part and h[2] == number for h in have), v  # another name has the number
