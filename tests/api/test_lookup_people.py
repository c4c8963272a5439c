"""Who is responsible here: lookups name the people in post that day, phones masked by role, on both databases."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geogrid.access import Role
from geogrid.db.keys import Keys
from geogrid.db.people import Roster
from geogrid.rosters import read_roster
from geogrid.settings import Settings
from tests.conftest import BACKENDS, migrated_engine, published_demo

TODAY = dt.date.today()
LEADER, WORKER, GONE = "13812341234", "13900001111", "13700002222"


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, demo_layers, tmp_path_factory):
    """The demo county with a three-post roster on one grid: a leader, a worker, and a worker whose post
    ended yesterday; a viewer key and a commander key."""
    micro = demo_layers["microgrids"].iloc[100]
    grid = micro["parent_code"]
    rows = [
        ["人员编号", "姓名", "手机号", "人员类别", "岗位", "单位编码", "起始日期", "结束日期", "包保楼栋"],
        ["P1", "张伟", LEADER, "网格长", "网格长", grid, "2020-01-01", "", ""],
        ["P2", "李娜", WORKER, "专职网格员", "网格员", grid, "2020-01-01", "", ""],
        ["P3", "王芳", GONE, "兼职网格员", "网格员", micro["code"], "2020-01-01", TODAY.isoformat(), ""],
    ]
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    with migrated_engine(request.param, tmp_path_factory) as engine:
        published_demo(engine, demo_layers)
        report = Roster(engine, "test").import_roster(
            "demo", read_roster(text.getvalue().encode(), filename="r.csv"), commit=True
        )
        assert not report.errors
        keys = {role: Keys(engine).create(role.value, role)[1] for role in (Role.viewer, Role.commander)}
        settings = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            cache_dir=str(tmp_path_factory.mktemp("cache")),
        )
        with TestClient(create_app(settings)) as client:
            yield client, micro, keys


def _people(client, micro, key=None, **params):
    x, y = micro.geometry.representative_point().coords[0]
    headers = {"X-API-Key": key} if key else {}
    response = client.get("/v1/lookup", params={"lon": x, "lat": y, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["people"]


def test_lookup_names_who_is_in_post_today_and_as_of_last_week(served) -> None:
    client, micro, _ = served
    today = _people(client, micro)
    assert [(p["name"], p["role"], p["role_label"]) for p in today] == [
        ("张伟", "leader", "网格长"),
        ("李娜", "worker", "网格员"),
    ]
    last_week = _people(client, micro, at=(TODAY - dt.timedelta(days=7)).isoformat())
    assert [p["name"] for p in last_week] == ["王芳", "张伟", "李娜"]  # the micro-grid's own post first
    assert _people(client, micro, at=TODAY.isoformat()) == today


def test_phones_are_masked_for_viewers_and_full_for_commanders(served) -> None:
    client, micro, keys = served
    for key in (None, keys[Role.viewer]):
        assert [p["phone"] for p in _people(client, micro, key)] == ["138****1234", "139****1111"]
        assert [p["phone"] for p in _people(client, micro, key, _="1")] == [
            "138****1234",
            "139****1111",
        ]  # the route
    assert [p["phone"] for p in _people(client, micro, keys[Role.commander])] == [LEADER, WORKER]
    assert [p["phone"] for p in _people(client, micro, keys[Role.commander], _="1")] == [LEADER, WORKER]


def test_batches_can_ask_for_the_grid_leader(served) -> None:
    client, micro, _ = served
    x, y = micro.geometry.representative_point().coords[0]
    body = client.post(
        "/v1/lookup?leader=true", json=[{"lon": x, "lat": y}, {"lon": 112.5, "lat": 39.0}]
    ).json()
    assert [r.get("grid_leader") for r in body["results"]] == ["张伟", None]
    plain = client.post("/v1/lookup", json=[{"lon": x, "lat": y}]).json()
    assert "grid_leader" not in plain["results"][0]
    table = client.post(
        "/v1/lookup?leader=true", content=f"lon,lat\n{x},{y}\n", headers={"content-type": "text/csv"}
    )
    assert next(csv.DictReader(io.StringIO(table.text)))["grid_leader"] == "张伟"


def test_no_full_phone_in_the_access_log(served, caplog) -> None:
    client, micro, keys = served
    with caplog.at_level(logging.DEBUG):
        _people(client, micro, keys[Role.commander])
        _people(client, micro, keys[Role.commander], _="1")
        client.app.front.access.flush()  # the access log writes its lines in batches
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged and LEADER not in logged and WORKER not in logged


def test_dates_asked_one_after_another_cost_no_query_and_keep_today(served) -> None:
    client, micro, _ = served
    state = client.app.state.service
    _people(client, micro)
    held = state._people["demo"]
    for days in range(1, 45):  # more dates than are kept
        _people(client, micro, at=(TODAY - dt.timedelta(days=days)).isoformat())
    assert state._people["demo"] is held  # the posts were not read again
    assert TODAY in held.days and len(held.days) <= 32


def test_a_post_written_through_the_api_is_named_by_the_next_lookup(served) -> None:
    client, micro, keys = served
    admin = {"Authorization": "Bearer geogrid-demo-admin-key"}
    etag = client.get("/v1/sets/demo", headers=admin).headers["etag"]
    body = {
        "person_id": "P9",
        "name": "赵敏",
        "phone": "13912345678",
        "kind": "worker_fulltime",
        "role": "worker",
        "unit_code": micro["code"],
        "valid_from": TODAY.isoformat(),
    }
    created = client.post("/v1/sets/demo/posts", json=body, headers={**admin, "If-Match": etag})
    assert created.status_code == 201, created.text
    assert "赵敏" in [p["name"] for p in _people(client, micro)]
    assert "赵敏" not in [
        p["name"] for p in _people(client, micro, at=(TODAY - dt.timedelta(days=1)).isoformat())
    ]
