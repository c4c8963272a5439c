"""The demo county: the counts of the issue, exact nesting, its roads, sites and roster, and a generator that
reproduces it byte for byte."""

from __future__ import annotations

import collections
import importlib.util
import itertools
import json
import sys

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from geogrid.crs import local_metric_crs

LEVELS = ["county", "streets", "communities", "grids", "microgrids"]
METRIC = "EPSG:4546"
AS_OF, MONTH_BEFORE = "2026-12-01", "2026-11-01"
COLUMNS = ["人员编号", "姓名", "手机号", "人员类别", "岗位", "单位编码", "起始日期", "结束日期", "包保楼栋"]
KINDS = {
    "网格长": "leader",
    "专职网格员": "worker_fulltime",
    "兼职网格员": "worker_parttime",
    "社区书记": "secretary",
    "街道干部": "street_staff",
    "部门联络员": "liaison",
    "楼栋长": "building_head",
    "党员中心户": "party_household",
}
ROLES = {"网格员": "worker", **{k: v for k, v in KINDS.items() if not v.startswith("worker")}}
ROLE_LEVEL = {
    "leader": "grids",
    "worker": "grids",
    "party_household": "grids",
    "building_head": "microgrids",
    "secretary": "communities",
    "street_staff": "streets",
    "liaison": "streets",
}


@pytest.fixture(scope="module")
def metric(demo_layers):
    crs = local_metric_crs(111.2, 39.85)
    return {name: frame.to_crs(crs) for name, frame in demo_layers.items()}


def test_counts(demo_layers):
    counts = {name: len(frame) for name, frame in demo_layers.items()}
    assert counts["county"] == 1 and counts["streets"] == 13 and counts["communities"] == 42
    assert counts["grids"] == 522
    assert 2800 <= counts["microgrids"] <= 3200


def test_households(demo_layers, demo_dir):
    grids = demo_layers["grids"]
    hh = grids["households"].to_numpy()
    assert np.mean((hh >= 300) & (hh <= 500)) > 0.8  # most grids follow the 300-500 norm...
    assert (hh > 500).sum() >= 10 and (hh < 300).sum() >= 10  # ...a few deliberately do not
    import geopandas as gpd

    buildings = gpd.read_file(demo_dir / "buildings.geojson")
    for name in LEVELS:
        assert demo_layers[name]["households"].sum() == buildings["households"].sum()
    by_micro = buildings.groupby("microgrid_code")["households"].sum()
    micro = demo_layers["microgrids"].set_index("code")["households"]
    assert (by_micro.reindex(micro.index).fillna(0) == micro).all()
    # every building stands inside its own micro-grid
    joined = micro.index.get_indexer(buildings["microgrid_code"])
    geoms = demo_layers["microgrids"].set_index("code").geometry.to_numpy()[joined]
    assert shapely.contains(geoms, buildings.geometry.to_numpy()).all()


@pytest.mark.parametrize(("parent", "child"), list(itertools.pairwise(LEVELS)))
def test_every_level_tiles_its_parent(metric, parent, child):
    parents, children = metric[parent], metric[child]
    assert set(children["parent_code"]) == set(parents["code"])
    for code, geom in zip(parents["code"], parents.geometry, strict=True):
        mine = children.geometry[children["parent_code"] == code].to_numpy()
        union = shapely.union_all(mine)
        assert shapely.area(shapely.symmetric_difference(union, geom)) < 1.0, f"gap or spill in {code}"
        assert shapely.area(mine).sum() - union.area < 1.0, f"overlap inside {code}"


@pytest.mark.parametrize("name", LEVELS)
def test_units_are_valid_single_polygons_without_holes(demo_layers, name):
    geoms = demo_layers[name].geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert (shapely.get_num_geometries(geoms) == 1).all()
    assert (shapely.get_num_interior_rings(shapely.get_geometry(geoms, 0)) == 0).all()


def test_grids_look_like_grids_not_boxes(demo_layers):
    grids = demo_layers["grids"].geometry.to_numpy()
    vertices = shapely.get_num_coordinates(grids)
    assert np.median(vertices) > 12  # jagged block lines, not 5-vertex rectangles
    assert (shapely.area(shapely.oriented_envelope(grids)) / shapely.area(grids)).mean() > 1.1


def test_generator_reproduces_the_committed_files(demo_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("demo_generate", demo_dir / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_generate"] = module
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path)]) == 0
    for filename in module.LAYER_FILES.values():
        assert (tmp_path / filename).read_bytes() == (demo_dir / filename).read_bytes(), filename
    assert sum(p.stat().st_size for p in demo_dir.iterdir()) < 20e6


# ---- roads, sites and roster: read with plain pandas/geopandas, independent of geogrid.people ----


@pytest.fixture(scope="module")
def planted(demo_dir):
    return json.loads((demo_dir / "planted.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def buildings(demo_dir):
    return gpd.read_file(demo_dir / "buildings.geojson")


@pytest.fixture(scope="module")
def roads(demo_dir):
    return gpd.read_file(demo_dir / "roads.geojson")


@pytest.fixture(scope="module")
def sites(demo_dir):
    return gpd.read_file(demo_dir / "sites.geojson")


@pytest.fixture(scope="module")
def posts(demo_dir):
    """The roster with English kinds and roles, one row per post; valid_to "" while in force."""
    frame = pd.read_csv(demo_dir / "roster.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(frame.columns) == COLUMNS
    frame.columns = [
        "person_id",
        "name",
        "phone",
        "kind",
        "role",
        "unit_code",
        "valid_from",
        "valid_to",
        "buildings",
    ]
    return frame.assign(kind=frame["kind"].map(KINDS), role=frame["role"].map(ROLES))


def in_force(posts: pd.DataFrame, at: str) -> pd.DataFrame:
    """Posts in force on ``at`` (ISO dates compare as strings; valid_to is exclusive)."""
    return posts[(posts["valid_from"] <= at) & ((posts["valid_to"] == "") | (posts["valid_to"] > at))]


def road_graph(roads: gpd.GeoDataFrame) -> nx.MultiGraph:
    """One edge per road line between its end points."""
    graph = nx.MultiGraph()
    for i, line in enumerate(roads.geometry):
        coords = shapely.get_coordinates(line)
        graph.add_edge(tuple(coords[0]), tuple(coords[-1]), key=i)
    return graph


def test_roads_are_noded_and_connected(roads, demo_layers):
    assert roads["id"].tolist() == [f"R{i:05d}" for i in range(1, len(roads) + 1)]
    assert set(roads["kind"]) == {"arterial", "street", "path"}
    assert (roads.geom_type == "LineString").all() and roads.is_valid.all()
    assert (roads.loc[roads["kind"] == "arterial", "name"] != "").all()
    assert (roads.loc[roads["kind"] != "arterial", "name"] == "").all()
    lines = roads.geometry.to_numpy()
    # lines meet only at shared end points: no crossing, no overlap, no junction inside a line
    left, right = shapely.STRtree(lines).query(lines, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    meet = shapely.intersection(lines[left], lines[right])
    assert (shapely.get_type_id(meet) == 0).all(), "two roads share more than a point"  # 0: Point
    ends = shapely.union(shapely.boundary(lines[left]), shapely.boundary(lines[right]))
    assert shapely.covers(ends, meet).all(), "two roads meet inside a line"
    graph = road_graph(roads)
    assert nx.number_connected_components(graph) == 1
    degree = collections.Counter(dict(graph.degree()).values())
    assert degree[1] == 0  # the walls of a tessellation leave no dead ends
    for node, d in graph.degree():
        if d == 2:  # a line ends without a junction only where its kind or name changes
            a, b = (roads.iloc[key][["kind", "name"]].tolist() for _, _, key in graph.edges(node, keys=True))
            assert a != b, node
    # the network is every micro-grid edge: half the perimeters, plus half the county line
    metric_micro = demo_layers["microgrids"].to_crs(METRIC)
    county = demo_layers["county"].to_crs(METRIC)
    expected = (metric_micro.length.sum() + county.length.sum()) / 2
    assert roads.to_crs(METRIC).length.sum() == pytest.approx(expected, rel=1e-6)


def test_sites_stand_inside_their_communities(sites, demo_layers, planted):
    assert sites["id"].tolist() == [f"S{i:03d}" for i in range(1, len(sites) + 1)]
    assert sites["name"].is_unique and set(sites["kind"]) == {"centre", "station"}
    assert sites["hours"].str.fullmatch(r"\d\d:\d\d-\d\d:\d\d").all()
    communities = demo_layers["communities"].set_index("code")
    counts = sites.groupby(["unit_code", "kind"]).size().unstack(fill_value=0)
    assert set(counts.index) == set(communities.index)
    assert (counts["centre"] == 1).all()
    assert counts.index[counts["station"] == 0].tolist() == planted["centre_only"]
    assert counts["station"].sum() >= 2 * len(communities)  # "1+N"
    areas = communities.geometry.reindex(sites["unit_code"]).to_numpy()
    assert shapely.covers(areas, sites.geometry.to_numpy()).all()


def test_most_households_lie_within_15_minutes_of_a_site(roads, sites, buildings, demo_layers, planted):
    """1,250 m along the roads (5 km/h, 15 minutes) from a site, between the points nearest on the roads."""
    lines = roads.to_crs(METRIC).geometry.to_numpy()
    graph = nx.Graph()
    segments = []
    for line in lines:
        coords = shapely.get_coordinates(line)
        for a, b in itertools.pairwise(map(tuple, coords)):
            graph.add_edge(a, b, length=float(np.hypot(a[0] - b[0], a[1] - b[1])))
            segments.append((a, b))
    segment_lines = shapely.linestrings([list(s) for s in segments])
    tree = shapely.STRtree(segment_lines)

    def snap(points):
        index = tree.query_nearest(points, all_matches=False)[1]
        return index, shapely.line_locate_point(segment_lines[index], points)

    site_seg, site_at = snap(sites.to_crs(METRIC).geometry.to_numpy())
    for k, (i, t) in enumerate(zip(site_seg, site_at, strict=True)):
        a, b = segments[i]
        graph.add_edge(("site", k), a, length=float(t))
        graph.add_edge(("site", k), b, length=graph[a][b]["length"] - float(t))
    sources = [("site", k) for k in range(len(sites))]
    dist = nx.multi_source_dijkstra_path_length(graph, sources, cutoff=1250.0, weight="length")
    b_seg, b_at = snap(buildings.to_crs(METRIC).geometry.to_numpy())
    reach = np.array(
        [
            min(
                dist.get(segments[i][0], np.inf) + t,
                dist.get(segments[i][1], np.inf) + graph[segments[i][0]][segments[i][1]]["length"] - t,
            )
            for i, t in zip(b_seg, b_at, strict=True)
        ]
    )
    for i, t in zip(site_seg, site_at, strict=True):  # a site on the building's own segment
        same = b_seg == i
        reach[same] = np.minimum(reach[same], np.abs(b_at[same] - t))
    outside = reach > 1250.0
    hh = buildings["households"].to_numpy()
    share = hh[outside].sum() / hh.sum()
    assert 0.05 < share < 0.25, share  # most households inside, a visible minority outside
    community = buildings["microgrid_code"].map(demo_layers["microgrids"].set_index("code")["parent_code"])
    community = community.map(demo_layers["grids"].set_index("code")["parent_code"]).to_numpy()
    for code in planted["centre_only"]:
        mine = community == code
        assert hh[mine & outside].sum() / hh[mine].sum() > 0.15, code


def test_roster_file_is_what_excel_writes(demo_dir, posts):
    raw = (demo_dir / "roster.csv").read_bytes()
    assert (
        raw.startswith(b"\xef\xbb\xbf") and raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n")
    )
    assert posts["kind"].notna().all() and posts["role"].notna().all()
    assert posts["valid_from"].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    assert posts["valid_to"].str.fullmatch(r"(\d{4}-\d\d-\d\d)?").all()
    assert (posts["valid_to"].eq("") | (posts["valid_to"] > posts["valid_from"])).all()


def test_roster_people_and_phones(posts, demo_layers):
    assert posts["person_id"].str.fullmatch(r"P\d{6}").all()
    assert posts["phone"].str.fullmatch(r"1[3-9]\d{9}").all()
    people = posts.groupby("person_id")[["name", "phone", "kind"]].nunique()
    assert (people == 1).all().all(), "a person's name, phone and kind are the same on every post"
    assert posts.drop_duplicates("person_id")["phone"].is_unique
    assert posts["name"].str.fullmatch(r"[\u4e00-\u9fff]{2,6}").all()
    n_grids = len(demo_layers["grids"])
    workers = in_force(posts, AS_OF).query("role == 'worker'")
    assert 4.0 <= len(workers) / n_grids <= 6.0  # "a leader and about five workers per grid"
    assert set(posts["kind"]) == set(KINDS.values())


def test_roster_units_exist_at_the_right_level(posts, demo_layers):
    for role, level in ROLE_LEVEL.items():
        units = posts.loc[posts["role"] == role, "unit_code"]
        assert len(units) and units.isin(demo_layers[level]["code"]).all(), role


def test_roster_buildings_exist_and_lie_in_the_post_unit(posts, buildings, demo_layers):
    micro_of = buildings.set_index("id")["microgrid_code"]
    grid_of = demo_layers["microgrids"].set_index("code")["parent_code"]
    named = posts[posts["buildings"] != ""]
    assert set(named["role"]) == {"worker", "building_head", "party_household"}
    assert (
        posts.loc[posts["role"].isin(["worker", "building_head", "party_household"]), "buildings"] != ""
    ).all()
    named = named.assign(building=named["buildings"].str.split(";")).explode("building")
    assert named["building"].isin(micro_of.index).all()
    micro = named["building"].map(micro_of)
    where = micro.where(named["role"] == "building_head", micro.map(grid_of))
    assert (where == named["unit_code"]).all()


def test_workers_split_every_grid_between_them(posts, buildings, demo_layers):
    """1+X: on 2026-11-01 the workers of every grid answer for each of its buildings exactly once."""
    workers = in_force(posts, MONTH_BEFORE).query("role == 'worker'")
    answered = workers.assign(building=workers["buildings"].str.split(";")).explode("building")
    assert answered["building"].is_unique  # (and in the post's grid: the test above)
    assert sorted(answered["building"]) == sorted(buildings["id"])
    heads = posts[posts["role"] == "building_head"]
    big = demo_layers["microgrids"].query("households >= 150")["code"]
    assert set(in_force(heads, AS_OF)["unit_code"]) == set(big)


def test_no_one_holds_a_post_twice_at_once(posts):
    spans = posts.assign(valid_to=posts["valid_to"].replace("", "9999-12-31"))
    spans = spans.sort_values(["person_id", "role", "unit_code", "valid_from"])
    same = (
        spans[["person_id", "role", "unit_code"]]
        .eq(spans[["person_id", "role", "unit_code"]].shift())
        .all(axis=1)
    )
    overlap = same & (spans["valid_from"] < spans["valid_to"].shift())
    assert not overlap.any(), spans[overlap | overlap.shift(-1, fill_value=False)]


def test_handovers_leave_no_gap(posts, planted):
    """A post that ended is taken over the same day by someone else, for the same unit and buildings."""
    ended = posts[posts["valid_to"] != ""]
    assert len(ended) >= 10
    for _, post in ended.iterrows():
        if post["unit_code"] in planted["no_worker"] and post["role"] == "worker":
            assert post["valid_to"] == planted["worker_post_ended"]
            continue
        assert post["valid_to"] < "2026-01-01"
        heir = posts[
            (posts["role"] == post["role"])
            & (posts["unit_code"] == post["unit_code"])
            & (posts["valid_from"] == post["valid_to"])
            & (posts["buildings"] == post["buildings"])
        ]
        assert len(heir) == 1 and heir["person_id"].iloc[0] != post["person_id"], post.to_dict()
    assert (posts["valid_from"] > "2025-01-01").sum() >= 10  # some posts start later


def test_planted_cases_are_exactly_as_listed(posts, planted, demo_layers):
    assert planted["as_of"] == AS_OF
    for key in ("no_leader", "no_worker", "no_secretary", "under_norm", "over_norm", "centre_only"):
        assert planted[key] == sorted(planted[key]), key
    grids = demo_layers["grids"]
    now = in_force(posts, AS_OF)
    staffed = lambda frame, role: set(frame.loc[frame["role"] == role, "unit_code"])  # noqa: E731
    assert sorted(set(grids["code"]) - staffed(now, "leader")) == planted["no_leader"]
    assert len(planted["no_leader"]) == 3
    assert sorted(set(grids["code"]) - staffed(now, "worker")) == planted["no_worker"]
    # the no-worker grid had its one worker a month before, and keeps its leader
    (grid,) = planted["no_worker"]
    before = in_force(posts, MONTH_BEFORE)
    assert (before.query("role == 'worker'")["unit_code"] == grid).sum() == 1
    assert grid in staffed(now, "leader")
    ended = posts[(posts["unit_code"] == grid) & (posts["role"] == "worker")]
    assert ended["valid_to"].tolist() == [planted["worker_post_ended"]]
    # exactly one worker spread over four or more grids
    workers = now[now["role"] == "worker"]
    spread = workers.groupby("person_id")["unit_code"].nunique()
    assert spread[spread >= 4].to_dict() == {planted["spread_worker"]["person_id"]: 5}
    mine = workers.loc[workers["person_id"] == planted["spread_worker"]["person_id"], "unit_code"]
    assert sorted(mine) == planted["spread_worker"]["grids"]
    communities = demo_layers["communities"]["code"]
    assert sorted(set(communities) - staffed(now, "secretary")) == planted["no_secretary"]
    assert len(planted["no_secretary"]) == 1
    assert now[now["role"] == "secretary"]["unit_code"].is_unique
    hh = grids.set_index("code")["households"]
    assert planted["under_norm"] == sorted(hh.index[hh < 300]) and planted["over_norm"] == sorted(
        hh.index[hh > 500]
    )
