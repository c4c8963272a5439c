"""GET /v1/sets/{name}/coverage (JSON, GeoPackage) and /maps/{kind} (HTML) on both databases; phones by role."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from api import coverage as coverage_api
from api.main import create_app
from geogrid import maps
from geogrid.access import Role
from geogrid.coverage import GRID_COLUMNS
from geogrid.db.keys import Keys
from geogrid.db.layers import Layers
from geogrid.db.people import Roster
from geogrid.settings import Settings
from tests.conftest import BACKENDS, DEMO, empty_store, migrated_engine, problem

STREET = "150622001"
LEVELS = (  # one street, no county: the county's other streets would be a gap
    ("streets", "street"),
    ("communities", "community"),
    ("grids", "grid"),
    ("microgrids", "microgrid"),
)
AT = "2026-12-01"
PHONE, MASKED = "13812341234", "138****1234"


def settings_for(engine, cache_dir, **more) -> Settings:
    return Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        cache_dir=str(cache_dir),
        default_set="s",
        environment="test",
        rate_limit_per_minute=0,
        **more,
    )


def street(frame, column="code"):
    return frame[frame[column].str.startswith(STREET)].reset_index(drop=True)


@pytest.fixture(scope="module", params=BACKENDS)
def service(request, demo_layers, tmp_path_factory):
    """One street of the demo published as 's', its buildings, two sites, a leader with a 1+X building."""
    with migrated_engine(request.param, tmp_path_factory) as engine:
        store = empty_store(engine)
        for name, level in LEVELS:
            store.import_units("s", street(demo_layers[name]), level, commit=True)
        store.publish("s", dt.date(2026, 1, 1))
        buildings = street(gpd.read_file(DEMO / "buildings.geojson"), "microgrid_code")
        layers = Layers(engine, "tester")
        layers.write("s", "buildings", buildings, commit=True)
        grids = street(demo_layers["grids"])
        centres = shapely.point_on_surface(grids.geometry.to_numpy()[:2])
        sites = gpd.GeoDataFrame(
            {"id": ["s1", "s2"], "name": ["中心", "站点"], "kind": ["centre", "station"]},
            geometry=list(centres),
            crs=4326,
        )
        layers.write("s", "sites", sites, commit=True)
        grid = grids["code"].iat[0]
        mine = buildings.loc[buildings["microgrid_code"].str.startswith(grid), "id"].iloc[:2].tolist()
        roster = Roster(engine, "tester")
        roster.create_post(
            "s", name="张三", phone=PHONE, kind="leader", role="leader", unit_code=grid,
            valid_from=dt.date(2026, 1, 1), buildings=mine, person_id="P1",
        )  # fmt: skip
        roster.create_post(
            "s", name="李四", phone="13900000001", kind="worker_fulltime", role="worker", unit_code=grid,
            valid_from=dt.date(2026, 1, 1), person_id="P2",
        )  # fmt: skip
        keys = {
            role: Keys(engine).create(f"{role.value} key", role)[1] for role in (Role.viewer, Role.commander)
        }
        coverage_api._cache.clear()
        with TestClient(create_app(settings_for(engine, tmp_path_factory.mktemp("cache")))) as client:
            yield client, keys, grid, engine


def auth(keys, role):
    return {"Authorization": f"Bearer {keys[role]}"} if role is not None else {}


def test_json_has_the_summary_and_a_row_per_grid(service):
    client, _, grid, _ = service
    response = client.get("/v1/sets/s/coverage", params={"at": AT})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"set", "at", "summary", "grids", "communities", "workers"}
    summary, grids = body["summary"], body["grids"]
    assert summary["at"] == AT and summary["grids"] == len(grids) > 10
    assert sum(v["count"] for v in summary["staffing"].values()) == len(grids)
    assert summary["staffing"]["staffed"]["codes"] == [grid]
    assert set(grids[0]) == set(GRID_COLUMNS) - {"geometry"}
    row = next(g for g in grids if g["code"] == grid)
    assert row["leaders"] == ["张三"] and row["workers"] == 1 and row["contacts"][0]["buildings"] == 2
    assert summary["reach"]["sites"] == 2 and summary["reach"]["method"] == "straight_line"
    assert [w["person_id"] for w in body["workers"]] == ["P2"]
    assert all(c["no_secretary"] for c in body["communities"])


def test_gpkg_is_a_download_pyogrio_opens(service, tmp_path):
    client, _, grid, _ = service
    response = client.get("/v1/sets/s/coverage", params={"at": AT, "format": "gpkg"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    assert response.headers["content-disposition"] == f'attachment; filename="s-coverage-{AT}.gpkg"'
    path = tmp_path / "coverage.gpkg"
    path.write_bytes(response.content)
    layers = dict(pyogrio.list_layers(path).tolist())
    assert {"grids", "gaps", "outside", "sites", "reach"} <= set(layers)
    grids = pyogrio.read_dataframe(path, layer="grids")
    assert grid in set(grids["code"]) and len(pyogrio.read_dataframe(path, layer="sites")) == 2


@pytest.mark.parametrize("kind", ["responsibility", "gaps", "service"])
def test_maps_are_html(service, kind):
    client, _, grid, _ = service
    response = client.get(f"/v1/sets/s/maps/{kind}", params={"at": AT})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower() and grid in response.text
    kept = [page for entry in coverage_api._cache.values() for page in entry.pages.items()]
    assert (kind, None, "wgs84") in dict(kept)  # the page is kept with its report
    assert client.get(f"/v1/sets/s/maps/{kind}", params={"at": AT}).text == response.text


def test_an_unknown_kind_set_or_norm_is_a_problem(service):
    client, *_ = service
    problem(client.get("/v1/sets/s/maps/heat"), 422, "kind")
    problem(client.get("/v1/sets/nowhere/coverage"), 404, "nowhere")
    problem(client.get("/v1/sets/s/coverage", params={"norm": "500"}), 422, "norm")
    problem(client.get("/v1/sets/s/coverage", params={"norm": "500-300"}), 400, "norm")
    problem(client.get("/v1/sets/s/coverage", params={"format": "xlsx"}), 422, "format")
    problem(client.get("/v1/sets/s/coverage", params={"at": "1999-01-01"}), 404, "1999-01-01")


@pytest.mark.parametrize(("role", "sees"), [(None, False), (Role.viewer, False), (Role.commander, True)])
def test_phones_are_masked_unless_the_role_may_contact(service, role, sees, tmp_path):
    client, keys, *_ = service
    headers = auth(keys, role)
    body = client.get("/v1/sets/s/coverage", params={"at": AT}, headers=headers).text
    gpkg = client.get("/v1/sets/s/coverage", params={"at": AT, "format": "gpkg"}, headers=headers).content
    page = client.get("/v1/sets/s/maps/responsibility", params={"at": AT}, headers=headers).text
    path = tmp_path / "c.gpkg"
    path.write_bytes(gpkg)
    grids = json.dumps(pyogrio.read_dataframe(path, layer="grids", read_geometry=False).to_dict("records"))
    for text in (body, grids, page):
        assert (PHONE in text) is sees and (MASKED in text) is not sees
    assert (PHONE.encode() in gpkg) is sees  # nowhere in the file, not only in the grids layer
    assert ("13900000001" in body) is sees  # the worker's phone, in the workers' rows


def test_reports_are_kept_until_the_set_changes(service):
    client, _, grid, engine = service
    state = client.app.state.service
    first = coverage_api.report_for(state, "s", dt.date(2026, 12, 1), None, None)
    assert coverage_api.report_for(state, "s", dt.date(2026, 12, 1), None, None) is first
    Roster(engine, "tester").create_post(
        "s", name="王五", phone="13900000002", kind="leader", role="leader", unit_code=grid[:-3] + "002",
        valid_from=dt.date(2026, 1, 1), person_id="P3",
    )  # fmt: skip
    again = coverage_api.report_for(state, "s", dt.date(2026, 12, 1), None, None)
    assert again is not first and len(again.codes("staffing", "no_worker")) == 1


class Counted:
    """coverage_of, counted, slowed down so that concurrent requests overlap, and optionally held."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.real, self.hold = coverage_api.coverage_of, hold
        self.calls: list[tuple[str, tuple[int, int] | None]] = []
        self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, engine, set_name, at, **kwargs):
        with self.lock:
            self.calls.append((set_name, kwargs.get("norm")))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if self.hold is not None:
                assert self.hold.wait(30)
            time.sleep(0.3)
            return self.real(engine, set_name, at, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def at_once(*calls):
    """Run the calls in threads, all let go together; their results in order."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_requests_for_one_report_compute_it_once_and_a_write_is_seen(service, monkeypatch):
    client, _, grid, engine = service
    counted, drawn = Counted(), []
    monkeypatch.setattr(coverage_api, "coverage_of", counted)
    real_build = maps.build_map
    monkeypatch.setattr(
        maps, "build_map", lambda kind, *a, **k: drawn.append(kind) or real_build(kind, *a, **k)
    )
    params = {"at": AT, "norm": "301-499"}  # a report nobody has asked for yet

    def ask(path, **more):
        return lambda: client.get(f"/v1/sets/s/{path}", params={**params, **more})

    asks = [ask("coverage")] * 4 + [ask("maps/responsibility")] * 3 + [ask("coverage", format="gpkg")] * 2
    first = at_once(*asks, ask("maps/gaps"))
    assert [r.status_code for r in first] == [200] * len(first)
    assert counted.calls == [("s", (301, 499))]  # one computation for the 10 requests that missed at once
    assert sorted(drawn) == ["gaps", "responsibility"]  # and each page drawn once
    assert len({r.text for r in first[:4]}) == len({r.text for r in first[4:7]}) == 1
    assert len({r.content for r in first[7:9]}) == 1 and first[7].content.startswith(b"SQLite format 3")
    third = grid[:-3] + "003"
    before = first[0].json()["summary"]["staffing"]
    assert third in before["unstaffed"]["codes"] and third not in before["no_worker"]["codes"]

    Roster(engine, "tester").create_post(  # a write: the set's revision, in the key, moves on
        "s", name="王六", phone="13900000003", kind="leader", role="leader", unit_code=third,
        valid_from=dt.date(2026, 1, 1), person_id="P4",
    )  # fmt: skip
    again = at_once(*[ask("coverage")] * 4)
    assert len(counted.calls) == 2 and len({r.text for r in again}) == 1
    after = again[0].json()["summary"]["staffing"]
    assert third in after["no_worker"]["codes"] and third not in after["unstaffed"]["codes"]


def test_different_reports_compute_side_by_side_two_at_a_time(service, monkeypatch):
    client, *_ = service
    counted = Counted()
    monkeypatch.setattr(coverage_api, "coverage_of", counted)
    norms = [f"{low}-500" for low in (302, 303, 304, 305, 306)]
    asks = [lambda n=n: client.get("/v1/sets/s/coverage", params={"at": AT, "norm": n}) for n in norms]
    assert [r.status_code for r in at_once(*asks)] == [200] * len(norms)
    assert sorted(n for _, n in counted.calls) == [(low, 500) for low in (302, 303, 304, 305, 306)]
    assert counted.most == coverage_api.COMPUTING == 2  # no global lock, and never more than two


def test_a_request_waiting_past_its_deadline_is_a_503(service, monkeypatch, tmp_path):
    _, _, _, engine = service
    hold = threading.Event()
    counted = Counted(hold)
    monkeypatch.setattr(coverage_api, "coverage_of", counted)
    settings = settings_for(engine, tmp_path, request_timeout_s=2.0)
    with TestClient(create_app(settings)) as client:

        def ask(norm):
            return lambda: client.get("/v1/sets/s/coverage", params={"at": AT, "norm": norm})

        with ThreadPoolExecutor(2) as pool:
            busy = [pool.submit(ask(n)) for n in ("307-500", "308-500")]
            for _ in range(200):  # both slots taken
                if len(counted.calls) == 2:
                    break
                time.sleep(0.05)
            started = time.monotonic()
            late = ask("309-500")()
            waited = time.monotonic() - started
            hold.set()
            # held past the deadline too: answered 503, and their work stopped at its next query
            assert [f.result().status_code for f in busy] == [503, 503]
        problem(late, 503, "GEOGRID_REQUEST_TIMEOUT_S")
        assert waited < 6 and len(counted.calls) == 2  # it waited for a slot and never computed
        # nothing is left held: the slots and the keys' locks were given back
        assert ask("309-500")().status_code == 200 and len(counted.calls) == 3
        assert all(not gates.flights for gates in coverage_api._gates.values())
