"""The demo address registry (boundaries/demo/addresses.csv): one address per building, each one unique by
road and door, by compound and building, or by village, group and door; doors odd on one side of a road."""

from __future__ import annotations

import importlib.util
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

METRIC = "EPSG:4546"
HEADERS = (
    "地址编码,乡镇街道,道路,门牌号,小区,楼栋,单元数,村,组,经度,纬度,建筑编号,别名,启用日期,停用日期,标准地址"
)
RURAL = {"十二连城乡", "暖水乡", "布尔陶亥苏木"}


@pytest.fixture(scope="module")
def registry(demo_dir) -> pd.DataFrame:
    return pd.read_csv(demo_dir / "addresses.csv", dtype=str, keep_default_na=False, encoding="utf-8")


@pytest.fixture(scope="module")
def buildings(demo_dir) -> gpd.GeoDataFrame:
    return gpd.read_file(demo_dir / "buildings.geojson")


@pytest.fixture(scope="module")
def urban(registry) -> pd.DataFrame:
    return registry[registry["村"] == ""]


@pytest.fixture(scope="module")
def rural(registry) -> pd.DataFrame:
    return registry[registry["村"] != ""]


def test_headers_and_one_row_per_building_at_its_point(demo_dir, registry, buildings):
    first = (demo_dir / "addresses.csv").read_bytes().split(b"\n", 1)[0]
    assert first.decode("utf-8") == HEADERS  # no BOM, headers in the contract's order
    assert len(registry) == len(buildings) == 9243
    assert registry["建筑编号"].tolist() == buildings["id"].tolist()
    assert registry["地址编码"].is_unique and (registry["地址编码"] == "A" + registry["建筑编号"]).all()
    assert np.array_equal(registry["经度"].astype(float), buildings.geometry.x)
    assert np.array_equal(registry["纬度"].astype(float), buildings.geometry.y)
    assert (registry["启用日期"] == "2024-01-01").all() and (registry["停用日期"] == "").all()
    assert (registry["单元数"].astype(int) >= 1).all()


def test_townships_are_the_streets_of_the_micro_grids(demo_dir, registry, buildings):
    streets = gpd.read_file(demo_dir / "streets.geojson").set_index("code")["name"]
    expected = buildings["microgrid_code"].str[:9].map(streets)
    assert registry["乡镇街道"].tolist() == expected.tolist()
    assert set(registry.loc[registry["村"] != "", "乡镇街道"]) == RURAL
    assert not set(registry.loc[registry["村"] == "", "乡镇街道"]) & RURAL


def test_urban_addresses_are_unique_by_road_and_door_and_by_compound_and_building(urban):
    assert len(urban) > 6000
    assert (urban[["道路", "门牌号", "小区", "楼栋"]] != "").all().all()
    assert (urban[["组"]] == "").all().all()
    assert not urban.duplicated(["道路", "门牌号"]).any()
    assert not urban.duplicated(["小区", "楼栋"]).any()
    assert urban["门牌号"].str.fullmatch(r"[1-9]\d*").all() and urban["楼栋"].str.fullmatch(r"[1-9]\d*").all()
    assert urban["道路"].str.contains(r"(?:路|街|大道|巷|国道)$").all()
    assert urban["小区"].str.contains(r"(?:小区|花园|家园|苑|新村|公寓)$").all()
    assert 150 <= urban["道路"].nunique() <= 400 and urban["小区"].nunique() > 2000
    # a compound's buildings stay together: its buildings are numbered 1..n
    n = urban.groupby("小区")["楼栋"].agg(lambda b: sorted(map(int, b)) == list(range(1, len(b) + 1)))
    assert n.all()
    text = urban["乡镇街道"] + urban["道路"] + urban["门牌号"] + "号" + urban["小区"] + urban["楼栋"] + "号楼"
    assert (urban["标准地址"] == text).all()


def test_rural_addresses_have_villages_and_groups(rural, buildings):
    assert len(rural) > 2000
    assert (rural[["道路", "小区", "楼栋", "别名"]] == "").all().all()
    assert not rural.duplicated(["村", "组", "门牌号"]).any()
    community = buildings.set_index("id").loc[rural["建筑编号"], "microgrid_code"].str[:12].to_numpy()
    villages = pd.Series(rural["村"].to_numpy(), index=community).groupby(level=0).nunique()
    assert (villages == 1).all() and rural["村"].nunique() == len(villages)  # one village per community
    assert rural["村"].str.contains(r"(?:村|嘎查)$").all()
    assert rural.loc[rural["乡镇街道"] == "布尔陶亥苏木", "村"].str.endswith("嘎查").all()
    grid = buildings.set_index("id").loc[rural["建筑编号"], "microgrid_code"].str[12:15].astype(int)
    assert (rural["组"].astype(int).to_numpy() == grid.to_numpy()).all()
    text = rural["乡镇街道"] + rural["村"] + rural["组"] + "组" + rural["门牌号"] + "号"
    assert (rural["标准地址"] == text).all()


def test_a_few_dozen_compounds_carry_old_names(urban):
    aliased = urban[urban["别名"] != ""].drop_duplicates("小区")
    assert 20 <= len(aliased) <= 60
    names = aliased["别名"].str.split("；").explode()
    assert names.is_unique and not set(names) & set(urban["小区"])
    assert (aliased["别名"].str.contains("；")).sum() >= 5


def test_doors_are_odd_on_one_side_of_an_arterial_and_even_on_the_other(demo_dir, urban, buildings):
    """Spot check on the arterials (named in roads.geojson): per road part, parity follows the side."""
    roads = gpd.read_file(demo_dir / "roads.geojson").to_crs(METRIC)
    points = buildings.set_index("id").to_crs(METRIC).geometry
    checked = 0
    for name in ["纬三路", "经五路", "109国道", "滨河大道"]:
        mine = urban[urban["道路"] == name]
        parts = shapely.get_parts(
            shapely.line_merge(shapely.union_all(roads.geometry[roads["name"] == name]))
        )
        pts = points.loc[mine["建筑编号"]].to_numpy()
        part = np.argmin([shapely.distance(p, pts) for p in parts], axis=0)
        for k, line in enumerate(parts):
            here = part == k
            c = shapely.get_coordinates(line)
            xy = shapely.get_coordinates(pts[here])
            a, ab = c[:-1], np.diff(c, axis=0)
            rel = xy[:, None, :] - a[None]
            t = np.clip((rel * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
            s = np.argmin(np.hypot(*(rel - ab * t[..., None]).transpose(2, 0, 1)), axis=1)
            side = np.sign(ab[s, 0] * rel[np.arange(len(s)), s, 1] - ab[s, 1] * rel[np.arange(len(s)), s, 0])
            odd = mine["门牌号"].astype(int).to_numpy()[here] % 2 == 1
            if odd.any() and (~odd).any():
                assert len(set(side[odd])) == 1 and set(side[~odd]) == {-side[odd][0]}, (name, k)
                checked += int(here.sum())
    assert checked > 300


def test_generator_reproduces_the_addresses(demo_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("demo_generate", demo_dir / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_generate"] = module
    spec.loader.exec_module(module)
    assert module.main(["--check", "--out", str(demo_dir)]) == 0
    assert module.LAYER_FILES["addresses"] == "addresses.csv"
