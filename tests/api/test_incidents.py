"""Incidents on both databases: intake placed by the version in force on the day reported (WGS-84, GCJ-02,
an address), idempotency (a retry, a reused key, a hundred at once), the loop (every step, 409 naming the
allowed ones, ETags, the log kept forever), scope and masking of reporters, and escalation of overdue
incidents on a working calendar with a holiday and a 调休 Saturday, with a frozen clock."""

from __future__ import annotations

import datetime as dt
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.main import create_app
from geogrid.access import Role
from geogrid.addresses.registry import read_addresses
from geogrid.crs import wgs84_to_gcj02
from geogrid.db.addresses import AddressStore
from geogrid.db.incidents import IncidentStore
from geogrid.db.keys import Keys
from geogrid.db.people import Roster
from geogrid.deadline import running as request_deadline
from geogrid.errors import IllegalTransition, InvalidCode, InvalidIncident, RequestTimeout, VersionConflict
from geogrid.incidents.calendar import WorkingCalendar
from geogrid.incidents.catalogue import catalogue
from geogrid.incidents.intake import Report
from geogrid.incidents.placement import Placement
from geogrid.settings import Settings
from tests.api.test_geocode import HOME, OTHER, ROWS, STREET, csv_bytes, microgrid_of
from tests.conftest import BACKENDS, empty_store, migrated_engine, problem

CST = ZoneInfo("Asia/Shanghai")
CHANGE = dt.date(2026, 6, 1)  # version 2 swaps two micro-grids' areas from this day
PHONE = "13812341234"


@pytest.fixture(scope="module", params=BACKENDS)
def db(request, tmp_path_factory):
    with migrated_engine(request.param, tmp_path_factory) as engine:
        yield engine


def inner_point(frame, code):
    """A point well inside the unit ``code`` of ``frame``."""
    geom = frame.loc[frame["code"] == code].geometry.iloc[0]
    p = (
        geom.buffer(-0.0003).representative_point()
        if not geom.buffer(-0.0003).is_empty
        else geom.representative_point()
    )
    return p.x, p.y


@pytest.fixture(scope="module")
def county(db, demo_layers):
    """One street as set 's': version 1 from 2026-01-01; version 2 from 2026-06-01 with micro-grids A and B
    swapped (A's area is B from then on); its addresses; a key per role and a community commander."""
    store = empty_store(db)
    layers = {}
    for name, level in (("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid")):
        frame = demo_layers[name]
        layers[level] = frame[frame["code"].str.startswith(STREET)].copy()
        store.import_units("s", layers[level], level, commit=True)
    store.publish("s", dt.date(2026, 1, 1))
    micro = layers["microgrid"]
    same_grid = micro[micro["code"].str.startswith(HOME)]
    a, b = sorted(same_grid["code"])[:2]  # two micro-grids of one grid: the swap keeps the hierarchy
    swapped = micro.copy()
    ia, ib = swapped.index[swapped["code"] == a][0], swapped.index[swapped["code"] == b][0]
    ga, gb = swapped.at[ia, "geometry"], swapped.at[ib, "geometry"]
    swapped.at[ia, "geometry"], swapped.at[ib, "geometry"] = gb, ga
    store.import_units("s", swapped, "microgrid", commit=True)
    store.publish("s", CHANGE)
    report = AddressStore(db, "test").import_addresses(
        "s", read_addresses(csv_bytes(ROWS), "a.csv"), commit=True
    )
    assert not report.errors
    keys = {role.value: Keys(db).create(f"{role.value} key", role)[1] for role in Role}
    keys["commander@home"] = Keys(db).create("home commander", Role.commander, scope=HOME)[1]
    keys["worker@other"] = Keys(db).create("other worker", Role.worker, scope=OTHER)[1]
    return {"keys": keys, "a": a, "b": b, "point_a": inner_point(micro, a), "micro": micro}


def settings_for(db, tmp_path):
    return Settings(
        database_url=db.url.render_as_string(hide_password=False),
        cache_dir=str(tmp_path / "cache"),
        default_set="s",
        environment="test",
        admin_key="test-admin-key-0123456789abcdef",
        rate_limit_per_minute=0,
    )


@pytest.fixture
def client(db, county, tmp_path):
    with TestClient(create_app(settings_for(db, tmp_path))) as c:
        yield c


def auth(county, who, **headers):
    return headers | {"Authorization": f"Bearer {county['keys'][who]}"}


def body(point=None, *, crs="wgs84", at="2026-07-01T09:30:00+08:00", **more):
    out = {"category": "E0102", "description": "垃圾堆在路边", "reported_at": at, "channel": "app"}
    if point is not None:
        out["coordinates"] = {"x": point[0], "y": point[1], "crs": crs}
    return out | more


def post(client, county, data, who="reporter", **headers):
    return client.post("/v1/incidents", json=data, headers=auth(county, who, **headers))


# ---- placement by the version in force on the day reported ------------------------------------------
def test_a_report_is_placed_in_the_grid_of_its_day(client, county):
    before = post(client, county, body(county["point_a"], at="2026-05-31T23:59:00+08:00"))
    after = post(client, county, body(county["point_a"], at="2026-06-01T00:01:00+08:00"))
    assert before.status_code == 201 and after.status_code == 201, (before.text, after.text)
    assert (before.json()["microgrid"], before.json()["version_number"]) == (county["a"], 1)
    assert (after.json()["microgrid"], after.json()["version_number"]) == (county["b"], 2)
    # read again after the change: the first keeps the grid it was placed in
    again = client.get(before.headers["Location"], headers=auth(county, "commander"))
    assert again.json()["microgrid"] == county["a"]
    assert after.json()["grid"] == county["b"][:15] and after.json()["community"] == HOME


def test_gcj02_and_an_address_land_where_wgs84_does(client, county):
    lon, lat = county["point_a"]
    gx, gy = wgs84_to_gcj02(lon, lat)
    got = post(client, county, body((float(gx), float(gy)), crs="gcj02"))
    assert got.status_code == 201, got.text
    assert got.json()["microgrid"] == county["b"] and got.json()["placed_by"] == "coordinates"
    row = next(r for r in ROWS if r["小区"] and r["楼栋"] and r["地址编码"][1:].startswith(HOME))
    text = f"{row['小区']}{row['楼栋']}号楼"
    by_address = post(client, county, body(None, address=text))
    assert by_address.status_code == 201, by_address.text
    assert by_address.json()["placed_by"] == "address"
    assert by_address.json()["microgrid"].startswith(microgrid_of(row)[:12])


def test_a_point_and_an_address_far_apart_are_flagged(client, county):
    row = next(r for r in ROWS if r["小区"] and r["楼栋"] and r["地址编码"][1:].startswith(OTHER))
    got = post(client, county, body(county["point_a"], address=f"{row['小区']}{row['楼栋']}号楼"))
    assert got.status_code == 201, got.text
    assert "address_disagrees" in got.json()["flags"] and got.json()["microgrid"] == county["b"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (body(None), "coordinates"),
        (body((0.0, 0.0)), "coordinates"),  # outside the county: refused by default
        (body((200.0, 40.0)), "coordinates"),
        (body((111.2, 39.9), category="nope"), "category"),
        (body((111.2, 39.9), at="2026-07-01T09:30:00"), "reported_at"),  # no time zone
        (body((111.2, 39.9), at="2099-01-01T00:00:00+08:00"), "reported_at"),
        (body((111.2, 39.9), at="2020-01-01T00:00:00+08:00"), "reported_at"),  # before any version
        (body((111.2, 39.9), media=["javascript:alert(1)"]), "media[0]"),
        (body((111.2, 39.9), description="垃圾\u0000"), "description"),  # no database keeps a NUL in text
        (body(address="康安苑\u00003号楼"), "address"),
        (body((111.2, 39.9), reporter={"name": "张\u0000伟"}), "reporter"),
    ],
)
def test_a_bad_report_is_a_4xx_naming_its_field(client, county, data, field):
    got = post(client, county, data)
    assert 400 <= got.status_code < 500, got.text
    assert field in got.text


# ---- idempotency -----------------------------------------------------------------------------------
def test_a_retry_with_its_key_returns_the_same_incident(client, county):
    data = body(county["point_a"])
    first = post(client, county, data, **{"Idempotency-Key": "retry-1"})
    again = post(client, county, data, **{"Idempotency-Key": "retry-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    other = post(client, county, data | {"description": "另一件事"}, **{"Idempotency-Key": "retry-1"})
    problem(other, 422, "idempotency key")
    now = {k: v for k, v in data.items() if k != "reported_at"}  # the time of receipt filled in
    first = post(client, county, now, **{"Idempotency-Key": "retry-2"})
    again = post(client, county, now, **{"Idempotency-Key": "retry-2"})
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["id"] == first.json()["id"]


def test_a_hundred_concurrent_retries_make_one_incident(db, county):
    calendar = WorkingCalendar(frozenset(), frozenset())
    stores = [IncidentStore(db, catalogue(), calendar) for _ in range(2)]  # two server processes' writers
    report = Report("E0102", "同一件事", dt.datetime(2026, 7, 1, 9, tzinfo=CST), key="storm-1")
    placement = Placement("coordinates", *county["point_a"], 2, county["b"])
    barrier = threading.Barrier(100)
    results: list = []

    def one(store):
        barrier.wait()
        try:
            results.append(store.create("s", report, placement, actor="storm"))
        except Exception as exc:  # collected: the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=one, args=(stores[i % 2],)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [r for r in results if isinstance(r, Exception)], [
        r for r in results if isinstance(r, Exception)
    ][:3]
    assert len({item["id"] for item, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with db.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM incident WHERE idem_key = 'storm-1'")).scalar()
        logged = conn.execute(
            sa.text(
                "SELECT count(*) FROM incident_event e JOIN incident i ON i.id = e.incident_id WHERE i.idem_key = 'storm-1'"
            )
        ).scalar()
    assert (n, logged) == (1, 1)


def test_reports_committed_together_each_get_their_own_answer(db, county):
    """One batch of the incident writer: new reports, a retry and a misuse of a key in the batch, a key
    taken before, and a report whose request timed out — each answered as if it were alone."""
    store = IncidentStore(db, catalogue(), WorkingCalendar(frozenset(), frozenset()))
    at = dt.datetime(2026, 7, 1, 9, tzinfo=CST)
    where = Placement("coordinates", *county["point_a"], 2, county["b"])
    before, _ = store.create("s", Report("E0102", "早就报过", at, key="batch-0"), where)
    gate, entered, sizes = threading.Event(), threading.Event(), []
    write = store._writer._write

    def gated(batch):
        entered.set()
        gate.wait(timeout=60)
        sizes.append(len(batch))
        return write(batch)

    store._writer._write = gated
    blocker = store.submit("s", Report("E0102", "先到", at), where)  # the writer waits on the gate with it
    assert entered.wait(timeout=60)
    a = Report("E0102", "甲", at, key="batch-1")
    reports = [
        a,
        Report("E0102", "乙", at),
        a,  # a retry of a, in the same batch
        Report("E0102", "丙", at, key="batch-1"),  # the key of a with another report
        Report("E0102", "早就报过", at, key="batch-0"),  # a retry of a report committed before
        Report("E0102", "另一件", at, key="batch-0"),  # that key, committed before, with another report
    ]
    futures = [store.submit("s", r, where) for r in reports]
    with request_deadline(0.0):  # its client was told 503 before the writer got to it
        timed_out = store.submit("s", Report("E0102", "超时", at, key="batch-late"), where)
    gate.set()
    assert blocker.result(timeout=60)[1] is True
    answers = [f.exception(timeout=60) or f.result() for f in futures]
    assert sizes == [1, 7]  # the six and the timed-out one came together
    (made_a, new_a), (made_b, new_b), (again_a, new_again), reused, (found, new_found), taken = answers
    assert (new_a, new_b, new_again, new_found) == (True, True, False, False)
    assert again_a["id"] == made_a["id"] != made_b["id"]
    assert isinstance(reused, InvalidIncident) and isinstance(taken, InvalidIncident)
    assert found["id"] == before["id"]
    assert (made_a["description"], made_b["description"]) == ("甲", "乙")  # each its own row, in order
    for made in (made_a, made_b):  # answered as stored, to the microsecond
        stored = store.get("s", made["id"])
        assert {k: stored[k] for k in made} == made
    assert isinstance(timed_out.exception(timeout=60), RequestTimeout)
    with db.connect() as conn:
        keys = conn.execute(
            sa.text("SELECT idem_key, count(*) FROM incident WHERE idem_key LIKE 'batch-%' GROUP BY idem_key")
        ).all()
        logged = conn.execute(
            sa.text("SELECT count(*) FROM incident_event WHERE incident_id IN (:a, :b)"),
            {"a": made_a["id"], "b": made_b["id"]},
        ).scalar()
    assert dict(keys) == {"batch-0": 1, "batch-1": 1}  # nothing of the timed-out report was written
    assert logged == 2
    store.close()


def test_a_queued_incident_is_placed_by_a_commander(client, county):
    got = post(client, county, body(None, address="火星大道一号"))  # no point, an address not in the registry
    assert got.status_code == 201, got.text
    queued = got.json()
    assert (queued["placed_by"], queued["microgrid"]) == ("queue", None)
    listed = client.get("/v1/incidents", params={"queued": "true"}, headers=auth(county, "commander")).json()
    assert queued["id"] in [i["id"] for i in listed["incidents"]]
    assert all(i["microgrid"] is None for i in listed["incidents"])
    here = {"x": county["point_a"][0], "y": county["point_a"][1]}
    # a commander limited to a community does not see what lies in none; a point outside is refused
    assert act(client, county, queued["id"], "place", "commander@home", coordinates=here).status_code == 404
    outside = act(client, county, queued["id"], "place", coordinates={"x": 0.0, "y": 0.0})
    assert problem(outside, 400)["field"] == "coordinates"
    assert problem(act(client, county, queued["id"], "place"), 422)["field"] == "coordinates"
    placed = act(client, county, queued["id"], "place", coordinates=here)
    assert placed.status_code == 200, placed.text
    item = placed.json()
    # reported on 2026-07-01: the boundaries of that day put point A in micro-grid B
    assert (item["microgrid"], item["placed_by"], item["state"]) == (county["b"], "manual", "reported")
    assert item["grid"] == county["b"][:15] and item["community"] == county["b"][:12]
    listed = client.get("/v1/incidents", params={"queued": "true"}, headers=auth(county, "commander")).json()
    assert queued["id"] not in [i["id"] for i in listed["incidents"]]
    log = client.get(f"/v1/incidents/{queued['id']}/log", headers=auth(county, "commander")).json()
    assert [(e["action"], e["detail"].get("to_microgrid")) for e in log["log"]][-1] == ("place", county["b"])
    assert act(client, county, queued["id"], "accept").status_code == 200  # and on through the loop


def test_a_dispatch_reaches_the_people_of_the_grid_in_force(db, county, tmp_path):
    grid = county["b"][:15]
    roster = Roster(db, "tester")
    roster.create_post(
        "s", name="王小明", phone="13911112222", kind="worker_fulltime", role="worker", unit_code=grid,
        valid_from=dt.date(2026, 1, 1), person_id="W1",
    )  # fmt: skip
    roster.create_post(  # left before today: not reached
        "s", name="赵前任", phone="13911113333", kind="worker_fulltime", role="worker", unit_code=grid,
        valid_from=dt.date(2025, 1, 1), valid_to=dt.date(2026, 1, 1), person_id="W0",
    )  # fmt: skip
    with TestClient(create_app(settings_for(db, tmp_path))) as client:  # a service started with the posts
        dispatched_by_a_service_that_knows_the_posts(client, county, grid)


def dispatched_by_a_service_that_knows_the_posts(client, county, grid):
    iid = post(client, county, body(county["point_a"])).json()["id"]
    assert act(client, county, iid, "accept").status_code == 200
    sent = act(client, county, iid, "dispatch")
    assert sent.status_code == 200, sent.text
    assert sent.json()["dispatched_to"] == [{"name": "王小明", "role": "worker", "unit_code": grid}]
    log = client.get(f"/v1/incidents/{iid}/log", headers=auth(county, "commander")).json()["log"]
    assert log[-1]["action"] == "dispatch" and log[-1]["detail"]["to"][0]["name"] == "王小明"
    seen = client.get(f"/v1/incidents/{iid}/log", headers=auth(county, "viewer")).json()["log"]
    assert seen[-1]["detail"]["to"][0]["name"] == "王**"  # a viewer does not contact people
    exported = client.get("/v1/incidents/log.csv", headers=auth(county, "viewer")).text
    assert "王小明" not in exported and "王**" in exported
    # to the community: its people (none posted here), recorded as nobody
    assert act(client, county, iid, "return", "worker").status_code == 200
    again = act(client, county, iid, "dispatch", level="community")
    assert again.status_code == 200 and again.json()["dispatched_to"] == []


def test_a_worker_limited_to_a_grid_acts_only_there(db, client, county):
    grid = county["b"][:15]
    micro = county["micro"]
    elsewhere = sorted(c for c in micro["code"] if c.startswith(HOME) and not c.startswith(grid))[0]
    key = Keys(db).create("网格员", Role.worker, scope=grid)[1]
    mine = post(client, county, body(county["point_a"])).json()["id"]
    theirs = post(client, county, body(inner_point(micro, elsewhere))).json()["id"]
    for iid in (mine, theirs):
        for step in ("accept", "dispatch"):
            assert act(client, county, iid, step).status_code == 200
    as_worker = {"Authorization": f"Bearer {key}"}

    def start(iid):
        return client.post(f"/v1/incidents/{iid}/actions", json={"action": "start"}, headers=as_worker)

    assert start(mine).status_code == 200
    assert start(theirs).status_code == 404  # another grid of the same community: not theirs to see
    listed = client.get("/v1/incidents", headers=as_worker).json()["incidents"]
    assert {i["grid"] for i in listed} == {grid}
    with pytest.raises(InvalidCode):  # grids are for workers' keys; a commander's is a street or community
        Keys(db).create("网格长", Role.commander, scope=grid)


def test_the_writer_outlives_a_dropped_connection_and_a_close(db, county):
    store = IncidentStore(db, catalogue(), WorkingCalendar(frozenset(), frozenset()))
    where = Placement("coordinates", *county["point_a"], 2, county["b"])
    at = dt.datetime(2026, 7, 1, 9, tzinfo=CST)
    first, _ = store.create("s", Report("E0102", "写入线程 1", at), where)
    if db.dialect.name == "postgresql":  # the server drops every idle connection (a restart, a firewall)
        with db.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state = 'idle'"
                )
            )
    second, created = store.create("s", Report("E0102", "写入线程 2", at), where)
    assert created and second["id"] > first["id"]
    store.close()  # stops the writer; the next report starts another
    third, created = store.create("s", Report("E0102", "写入线程 3", at), where)
    assert created and third["id"] > second["id"]
    store.close()


# ---- the loop --------------------------------------------------------------------------------------
def act(client, county, incident_id, action, who="commander", **more):
    return client.post(
        f"/v1/incidents/{incident_id}/actions", json={"action": action, **more}, headers=auth(county, who)
    )


def test_the_loop_from_report_to_closed_and_its_log(client, county):
    new = post(client, county, body(county["point_a"]))
    assert new.status_code == 201
    iid = new.json()["id"]
    steps = [("accept", "commander"), ("dispatch", "commander"), ("start", "worker"), ("resolve", "worker"),
             ("verify", "commander")]  # fmt: skip
    for action, who in steps:
        got = act(client, county, iid, action, who, note=f"{action} 回电 {PHONE}")
        assert got.status_code == 200, got.text
    closed = act(client, county, iid, "close", satisfaction=5)
    assert closed.json()["state"] == "closed" and closed.json()["satisfaction"] == 5
    assert closed.headers["ETag"] == '"7"'
    log = client.get(f"/v1/incidents/{iid}/log", headers=auth(county, "commander")).json()["log"]
    assert [line["action"] for line in log] == [
        "report",
        "accept",
        "dispatch",
        "start",
        "resolve",
        "verify",
        "close",
    ]
    assert [line["seq"] for line in log] == list(range(1, 8))
    masked = client.get(f"/v1/incidents/{iid}/log", headers=auth(county, "viewer")).json()["log"]
    assert PHONE not in str(masked) and PHONE in str(log)


def test_an_illegal_step_is_409_naming_the_allowed_ones(client, county):
    iid = post(client, county, body(county["point_a"])).json()["id"]
    got = act(client, county, iid, "close")
    body_ = problem(got, 409, "accept", "void")
    assert body_["allowed"] == ["accept", "escalate", "void", "place"]
    assert act(client, county, iid, "accept", who="worker").status_code == 403  # workers do not accept
    problem(act(client, county, iid, "fly"), 422, "action")
    for text in ({"note": "已核实\u0000"}, {"attachments": ["https://x.test/a\u0000.jpg"]}):  # a 500 before
        problem(act(client, county, iid, "accept", **text), 422, next(iter(text)), "NUL")
    assert client.get(f"/v1/incidents/{iid}", headers=auth(county, "commander")).json()["state"] == "reported"


def test_a_stale_etag_is_409(client, county):
    iid = post(client, county, body(county["point_a"])).json()["id"]
    url = f"/v1/incidents/{iid}/actions"
    ok = client.post(url, json={"action": "accept"}, headers=auth(county, "commander", **{"If-Match": '"1"'}))
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    stale = client.post(
        url, json={"action": "dispatch"}, headers=auth(county, "commander", **{"If-Match": '"1"'})
    )
    problem(stale, 409, "changed")


def test_the_log_is_kept_forever(db, client, county):
    post(client, county, body(county["point_a"]))
    for statement in ("UPDATE incident_event SET note = 'x'", "DELETE FROM incident_event"):
        with pytest.raises(sa.exc.DBAPIError), db.begin() as conn:
            conn.execute(sa.text(statement))
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM incident_event")).scalar() > 0


# ---- scope and privacy -----------------------------------------------------------------------------
def test_scoped_keys_see_and_move_only_their_incidents(client, county):
    home = post(client, county, body(county["point_a"])).json()["id"]
    listed = client.get("/v1/incidents", headers=auth(county, "worker@other")).json()["incidents"]
    assert home not in {i["id"] for i in listed}
    assert client.get(f"/v1/incidents/{home}", headers=auth(county, "worker@other")).status_code == 404
    assert act(client, county, home, "accept", who="commander@home").status_code == 200
    mine = client.get("/v1/incidents", headers=auth(county, "commander@home")).json()["incidents"]
    assert mine and all(i["community"] == HOME for i in mine)


def test_points_for_maps_follow_scope_category_and_changes(client, county):
    """GET /v1/incidents/points: the period's incidents as aligned columns, under the caller's scope, of a
    category, and only those changed since a moment (the dashboard's live updates)."""
    at = "2026-07-02T10:00:00+08:00"  # a day no other test reports on
    home = post(client, county, body(county["point_a"], at=at)).json()
    other = sorted(c for c in county["micro"]["code"] if c.startswith(OTHER))[0]
    far = post(client, county, body(inner_point(county["micro"], other), at=at, category="E0103")).json()
    query = "/v1/incidents/points?start=2026-07-02&end=2026-07-03"
    got = client.get(query, headers=auth(county, "commander")).json()
    assert sorted(got["id"]) == sorted([home["id"], far["id"]]) and got["count"] == 2
    assert len({len(got[k]) for k in ("id", "lon", "lat", "state", "category", "grid", "overdue")}) == 1
    i = got["id"].index(home["id"])
    assert (got["lon"][i], got["lat"][i], got["microgrid"][i]) == (
        home["lon"],
        home["lat"],
        home["microgrid"],
    )
    assert got["state"][i] == "reported" and got["overdue"][i] is True  # its deadline passed in July
    shifted = client.get(query + "&crs=gcj02", headers=auth(county, "commander")).json()  # a GCJ-02 base map
    lon, lat = wgs84_to_gcj02(got["lon"], got["lat"])
    assert shifted["id"] == got["id"] and (shifted["lon"], shifted["lat"]) == (lon.tolist(), lat.tolist())
    assert shifted["lon"][i] != got["lon"][i]  # moved by the datum's offset, ids and the rest alike
    mine = client.get(query, headers=auth(county, "commander@home")).json()
    assert mine["id"] == [home["id"]] and mine["community"] == [HOME]
    assert client.get(query + f"&unit={OTHER}", headers=auth(county, "commander@home")).json()["id"] == []
    assert client.get(query + "&category=E0103", headers=auth(county, "commander")).json()["id"] == [
        far["id"]
    ]
    assert act(client, county, home["id"], "accept").status_code == 200
    since = got["as_of"].replace("+", "%2B")
    changed = client.get(f"{query}&since={since}", headers=auth(county, "commander")).json()
    assert (changed["id"], changed["state"]) == ([home["id"]], ["accepted"])
    assert client.get(query, headers={}).status_code == 401  # incidents are no public data
    cut = client.get(query + "&limit=1", headers=auth(county, "commander")).json()
    assert (cut["count"], cut["truncated"], cut["as_of"]) == (1, True, None)  # no moment to poll from
    commander = auth(county, "commander")
    for bad, field in (
        ("?category=%00%01", "category"),  # found by schemathesis: a 500 from the database before
        ("?start=0001-01-01", "start"),
        ("?end=0001-01-01", "end"),
        ("?since=0001-01-01T00:00:00%2B14:00", "since"),
    ):
        assert problem(client.get("/v1/incidents/points" + bad, headers=commander), 422)["field"] == field
    problem(client.get("/v1/incidents/points?crs=bd09", headers=commander), 422, "crs", "gcj02")


def test_figures_and_ranking_under_a_unit_and_within_the_key_scope(client, county):
    """kpis and ranking take ``unit`` (the dashboard's street and community filters): only units under it,
    and never past a scoped key's scope."""
    at = "2026-07-09T10:00:00+08:00"  # a day no other test reports on
    post(client, county, body(county["point_a"], at=at))
    other = sorted(c for c in county["micro"]["code"] if c.startswith(OTHER))[0]
    post(client, county, body(inner_point(county["micro"], other), at=at))
    period, commander = "start=2026-07-09&end=2026-07-10", auth(county, "commander")
    every = client.get(f"/v1/incidents/kpis?by=grid&{period}", headers=commander).json()["units"]
    assert {r["unit"][: len(HOME)] for r in every} >= {HOME, OTHER}
    mine = client.get(f"/v1/incidents/kpis?by=grid&{period}&unit={HOME}", headers=commander).json()["units"]
    assert mine and all(r["unit"].startswith(HOME) for r in mine)
    county_of_home = client.get(
        f"/v1/incidents/kpis?by=county&{period}&unit={HOME}", headers=commander
    ).json()
    assert county_of_home["units"][0]["received"] == sum(r["received"] for r in mine)
    ranked = client.get(
        f"/v1/incidents/ranking?by=grid&min_received=1&{period}&unit={OTHER}", headers=commander
    )
    assert {r["unit"][: len(OTHER)] for r in ranked.json()["red"]} == {OTHER}
    outside = client.get(
        f"/v1/incidents/kpis?by=grid&{period}&unit={OTHER}", headers=auth(county, "commander@home")
    )
    assert outside.json()["units"] == []  # a unit outside the key's scope: nothing
    assert problem(client.get("/v1/incidents/kpis?unit=12a", headers=commander), 422)


def test_without_public_reads_the_dashboard_page_names_no_unit(db, county, tmp_path):
    """The page loads without a key (it asks for one); the streets, communities and categories its filters
    offer, and the base map's URL (which may carry a token), come from /dashboard/setup, read with the key —
    and only with one when reads are not public."""
    tiles = "https://tiles.intranet.test/{z}/{x}/{y}.png?tk=s3cr3t"
    settings = settings_for(db, tmp_path).model_copy(update={"public_reads": False, "tile_url": tiles})
    with TestClient(create_app(settings)) as closed:
        page = closed.get("/dashboard")
        assert page.status_code == 200 and '<form id="login">' in page.text
        setup = closed.get("/dashboard/setup", headers=auth(county, "viewer")).json()
        communities = dict(setup["units"]["community"])
        assert communities and ["E0102", "暴露垃圾"] in setup["categories"]
        assert setup["base"] == {"tiles": tiles, "attribution": "tiles.intranet.test"}
        named = [n for n in communities.values() if n]
        assert named and not [n for n in named if n in page.text] and "暴露垃圾" not in page.text
        assert "s3cr3t" not in page.text and "tiles.intranet.test" not in page.text
        problem(closed.get("/dashboard/setup"), 401)


def test_big_answers_are_compressed_for_clients_that_take_gzip(client, county):
    """The dashboard's script and data travel gzip-compressed when the client says it takes gzip."""
    js = client.get("/static/maplibre/maplibre-gl.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers["content-encoding"] == "gzip" and len(js.content) > 500_000  # httpx decompressed it
    plain = client.get("/static/maplibre/maplibre-gl.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == js.content


def test_reporters_are_masked_for_roles_that_may_not_contact_them(client, county):
    data = body(county["point_a"], reporter={"name": "张伟", "phone": PHONE}, description=f"请回电 {PHONE}")
    iid = post(client, county, data).json()["id"]
    seen = client.get(f"/v1/incidents/{iid}", headers=auth(county, "viewer")).json()
    assert (seen["reporter_name"], seen["reporter_phone"]) == ("张*", "138****1234")
    assert PHONE not in str(seen)
    listed = client.get("/v1/incidents", headers=auth(county, "viewer")).json()
    assert PHONE not in str(listed) and "张伟" not in str(listed)
    full = client.get(f"/v1/incidents/{iid}", headers=auth(county, "commander")).json()
    assert (full["reporter_name"], full["reporter_phone"]) == ("张伟", PHONE)


# ---- limits on the working calendar, escalation with a frozen clock --------------------------------
def test_overdue_incidents_escalate_exactly_when_the_limit_passes(db, county):
    # Thursday 2026-10-01 is a holiday; Saturday 2026-10-10 a 调休 working day
    calendar = WorkingCalendar(frozenset({dt.date(2026, 10, 1)}), frozenset({dt.date(2026, 10, 10)}))
    store = IncidentStore(db, catalogue(), calendar)
    placement = Placement("coordinates", *county["point_a"], 2, county["b"], {"grid": county["b"][:15]})
    # E0102 has 2 working hours: reported Wednesday 16:30 → 1 h that day, the holiday and no hours on it,
    # → due Friday 09:30
    wed = dt.datetime(2026, 9, 30, 16, 30, tzinfo=CST)
    item, _ = store.create("s", Report("E0102", "暴露垃圾", wed), placement)
    due = dt.datetime(2026, 10, 2, 9, 30, tzinfo=CST)
    assert item["deadline"] == due
    assert item["id"] not in store.escalate_overdue("s", now=due - dt.timedelta(seconds=1))
    assert item["id"] in store.escalate_overdue("s", now=due)
    after = store.get("s", item["id"])
    assert (after["state"], after["level"]) == ("escalated", "community")
    line = store.log("s", item["id"])[-1]
    assert (line["action"], line["actor"], line["detail"]) == (
        "escalate",
        "system",
        {"from_level": "grid", "to_level": "community", "deadline": "2026-10-02T03:30:00+00:00"},
    )  # the next level gets a fresh limit from the escalation: 09:30 + 2 h (11:30 in Beijing, in UTC)
    # reported Friday 17:00 with 2 hours: half an hour then, the rest on the 调休 Saturday → 10:00
    fri = dt.datetime(2026, 10, 9, 17, 0, tzinfo=CST)
    late, _ = store.create("s", Report("E0102", "暴露垃圾", fri), placement)
    assert late["deadline"] == dt.datetime(2026, 10, 10, 10, 0, tzinfo=CST)
    with pytest.raises(IllegalTransition):
        store.act("s", late["id"], "close")


# ---- duplicates, exports, figures ------------------------------------------------------------------
def test_a_report_near_an_open_one_of_its_category_is_offered_as_its_duplicate_and_merged(client, county):
    micro = county["micro"]
    lon, lat = inner_point(micro, sorted(micro["code"][micro["code"].str.startswith(HOME)])[5])  # no one's
    first = post(client, county, body((lon, lat), reporter={"name": "李娜", "phone": "13900001111"})).json()
    near = post(client, county, body((lon + 0.0002, lat), reporter={"name": "王强", "phone": PHONE})).json()
    assert first["id"] in {c["id"] for c in near["duplicate_candidates"]}
    offered = next(c for c in near["duplicate_candidates"] if c["id"] == first["id"])
    assert 10 < offered["distance_m"] < 25
    other_kind = post(client, county, body((lon + 0.0002, lat), category="E0503")).json()
    assert first["id"] not in {c["id"] for c in other_kind["duplicate_candidates"]}
    far = post(client, county, body((lon + 0.002, lat))).json()  # ~170 m: not the same thing
    assert first["id"] not in {c["id"] for c in far["duplicate_candidates"]}
    merged = act(client, county, near["id"], "void", duplicate_of=first["id"], note="同一处")
    assert merged.status_code == 200 and merged.json()["duplicate_of"] == first["id"]
    kept_log = client.get(f"/v1/incidents/{first['id']}/log", headers=auth(county, "commander")).json()["log"]
    assert kept_log[-1]["action"] == "merge" and kept_log[-1]["detail"] == {"duplicate": near["id"]}
    told = client.get(f"/v1/incidents/{first['id']}/reporters", headers=auth(county, "commander")).json()
    assert [(r["id"], r["reporter_phone"]) for r in told["reporters"]] == [
        (first["id"], "13900001111"),
        (near["id"], PHONE),
    ]
    assert (
        client.get(f"/v1/incidents/{first['id']}/reporters", headers=auth(county, "viewer")).status_code
        == 403
    )
    problem(
        act(client, county, far["id"], "void", duplicate_of=near["id"]), 422, "void"
    )  # not into a void one


def test_crossing_merges_at_once_leave_one_merged_and_never_deadlock(db, county):
    store = IncidentStore(db, catalogue(), WorkingCalendar(frozenset(), frozenset()))
    where = Placement("coordinates", *county["point_a"], 2, county["b"])
    at = dt.datetime(2026, 7, 1, 9, tzinfo=CST)
    for round_ in range(5):
        a, _ = store.create("s", Report("E0102", f"交叉合并 {round_} 甲", at), where)
        b, _ = store.create("s", Report("E0102", f"交叉合并 {round_} 乙", at), where)
        barrier, outcomes = threading.Barrier(2), []

        def merge(this, into, outcomes=outcomes, barrier=barrier):
            barrier.wait()
            try:
                outcomes.append(store.act("s", this, "void", duplicate_of=into, actor="t"))
            except Exception as exc:  # collected: a 4xx error is fine, a deadlock is not
                outcomes.append(exc)

        threads = [threading.Thread(target=merge, args=p) for p in ((a["id"], b["id"]), (b["id"], a["id"]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        merged = [o for o in outcomes if isinstance(o, dict)]
        refused = [o for o in outcomes if not isinstance(o, dict)]
        assert len(merged) == 1 and len(refused) == 1, outcomes
        assert isinstance(refused[0], InvalidIncident | IllegalTransition | VersionConflict), refused
    closed, _ = store.create("s", Report("E0102", "已结案", at), where)
    for step in ("accept", "dispatch", "start", "resolve", "verify", "close"):
        store.act("s", closed["id"], step, actor="t")
    late, _ = store.create("s", Report("E0102", "又来了", at), where)
    with pytest.raises(InvalidIncident, match="closed"):  # a report after the case closed is a new case
        store.act("s", late["id"], "void", duplicate_of=closed["id"], actor="t")


def test_exports_mask_reporters_for_roles_that_may_not_contact_them(client, county):
    post(
        client,
        county,
        body(county["point_a"], reporter={"name": "赵敏", "phone": PHONE}, description=f"电话{PHONE}"),
    )
    listed = client.get("/v1/incidents", params={"format": "csv"}, headers=auth(county, "viewer"))
    assert listed.status_code == 200 and listed.headers["content-type"].startswith("text/csv")
    assert PHONE not in listed.text and "赵敏" not in listed.text and "赵*" in listed.text
    full = client.get("/v1/incidents", params={"format": "csv"}, headers=auth(county, "commander"))
    assert PHONE in full.text and "赵敏" in full.text
    iid = post(client, county, body(county["point_a"])).json()["id"]
    act(client, county, iid, "void", note=f"无效，报告人 {PHONE}")
    log = client.get("/v1/incidents/log.csv", headers=auth(county, "viewer"))
    assert log.status_code == 200 and "无效，报告人 138****1234" in log.text and PHONE not in log.text
    assert PHONE in client.get("/v1/incidents/log.csv", headers=auth(county, "commander")).text


def test_figures_and_ranking_over_http(client, county):
    for _ in range(3):
        iid = post(client, county, body(county["point_a"], at="2026-08-03T09:00:00+08:00")).json()["id"]
        for action in ("accept", "dispatch"):
            act(client, county, iid, action)
        act(client, county, iid, "start", "worker")
        act(client, county, iid, "resolve", "worker")
        act(client, county, iid, "verify")
        act(client, county, iid, "close", satisfaction=4)
    params = {"by": "microgrid", "start": "2026-08-03", "end": "2026-08-04"}
    got = client.get("/v1/incidents/kpis", params=params, headers=auth(county, "viewer")).json()
    row = next(u for u in got["units"] if u["unit"] == county["b"])
    assert (row["received"], row["closed"], row["resolution_rate"], row["satisfaction"]) == (3, 3, 1.0, 4.0)
    as_csv = client.get(
        "/v1/incidents/kpis", params=params | {"format": "csv"}, headers=auth(county, "viewer")
    )
    assert as_csv.text.lstrip("\ufeff").startswith("unit,received,") and county["b"] in as_csv.text
    ranked = client.get(
        "/v1/incidents/ranking", params=params | {"min_received": 1}, headers=auth(county, "viewer")
    )
    assert ranked.json()["red"][0]["unit"] == county["b"]
    problem(
        client.get("/v1/incidents/kpis", params={"by": "planet"}, headers=auth(county, "viewer")), 422, "by"
    )


def test_the_service_escalates_overdue_incidents_by_itself(db, county, tmp_path):
    settings = Settings(
        database_url=db.url.render_as_string(hide_password=False),
        cache_dir=str(tmp_path / "cache"),
        default_set="s",
        environment="test",
        admin_key="test-admin-key-0123456789abcdef",
        rate_limit_per_minute=0,
        escalate_every_s=0.05,
    )
    with TestClient(create_app(settings)) as c:
        old = post(c, county, body(county["point_a"], at="2026-07-01T09:00:00+08:00")).json()
        deadline = time.monotonic() + 60  # a bound, not a wait: the loop ends once the job has run
        while (
            c.get(f"/v1/incidents/{old['id']}", headers=auth(county, "commander")).json()["state"]
            != "escalated"
        ):
            assert time.monotonic() < deadline, "not escalated within a minute"
            time.sleep(0.05)
        log = c.get(f"/v1/incidents/{old['id']}/log", headers=auth(county, "commander")).json()["log"]
        assert log[-1]["action"] == "escalate" and log[-1]["actor"] == "system"


def test_incidents_need_a_key_the_catalogue_does_not(client):
    assert client.get("/v1/incidents").status_code == 401
    assert client.get("/v1/services").json()["services"][0]["route"]


def test_merging_reaches_only_incidents_in_scope_and_escalating_needs_the_etag(client, county):
    micro = county["micro"]
    other_point = inner_point(micro, sorted(micro["code"][micro["code"].str.startswith(OTHER)])[0])
    theirs = post(client, county, body(other_point)).json()["id"]
    mine = post(client, county, body(county["point_a"])).json()["id"]
    refused = act(client, county, mine, "void", who="commander@home", duplicate_of=theirs)
    problem(refused, 404, str(theirs))
    assert (
        client.get(f"/v1/incidents/{theirs}/log", headers=auth(county, "commander")).json()["log"][-1][
            "action"
        ]
        == "report"
    )  # nothing written into the other community's incident
    problem(act(client, county, mine, "escalate"), 428, "If-Match")
    once = client.post(
        f"/v1/incidents/{mine}/actions",
        json={"action": "escalate"},
        headers=auth(county, "commander", **{"If-Match": '"1"'}),
    )
    assert once.status_code == 200 and once.json()["level"] == "community"
    twice = client.post(
        f"/v1/incidents/{mine}/actions",
        json={"action": "escalate"},
        headers=auth(county, "commander", **{"If-Match": '"1"'}),
    )
    problem(twice, 409, "changed")  # the second click saw the level before: no skip to the street


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(client, county):
    post(client, county, body(county["point_a"], description='=HYPERLINK("http://x","点我")'))
    listed = client.get("/v1/incidents", params={"format": "csv"}, headers=auth(county, "commander")).text
    assert "'=HYPERLINK" in listed and ",=HYPERLINK" not in listed


def test_the_clock_stops_at_park_and_resolve_and_runs_on_with_what_was_left(db, county):
    store = IncidentStore(db, catalogue(), WorkingCalendar())  # weekends off, 08:30-12:00, 14:00-17:30
    placement = Placement("coordinates", *county["point_a"], 2, county["b"], {"grid": county["b"][:15]})
    mon = dt.datetime(2026, 11, 2, 9, 0, tzinfo=CST)  # a Monday; E0102 has 2 working hours: due 11:00
    item, _ = store.create("s", Report("E0102", "暴露垃圾", mon), placement)
    store.act("s", item["id"], "accept", at=mon + dt.timedelta(minutes=10))
    parked = store.act("s", item["id"], "park", at=mon + dt.timedelta(minutes=30))  # 1.5 h left
    resumed = store.act("s", item["id"], "resume", at=dt.datetime(2026, 11, 4, 14, 0, tzinfo=CST))
    assert parked["state"] == "parked" and resumed["state"] == "accepted"  # back where it was parked
    assert resumed["deadline"] == dt.datetime(2026, 11, 4, 15, 30, tzinfo=CST)
    for action in ("dispatch", "start"):
        store.act("s", item["id"], action, at=dt.datetime(2026, 11, 4, 14, 10, tzinfo=CST))
    store.act("s", item["id"], "resolve", at=dt.datetime(2026, 11, 4, 15, 0, tzinfo=CST))  # 0.5 h left
    # verified (and rejected) on Friday: the case is not overdue for the two days it waited
    rejected = store.act("s", item["id"], "reject", at=dt.datetime(2026, 11, 6, 9, 0, tzinfo=CST))
    assert rejected["state"] == "in_progress"
    assert rejected["deadline"] == dt.datetime(2026, 11, 6, 9, 30, tzinfo=CST)
    assert item["id"] not in store.escalate_overdue("s", now=dt.datetime(2026, 11, 6, 9, 29, tzinfo=CST))
