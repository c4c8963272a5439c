"""Writes over HTTP on both databases: who may do what, uploads into a draft, validation, publishing with
ETags (a stale one gets 409, concurrent publishes: one wins), diffs; keys, rate limits and limits."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient

from api.main import create_app
from geogrid.access import Role
from geogrid.db.keys import Keys
from geogrid.errors import InsecureConfiguration
from geogrid.io import write_layer
from geogrid.settings import DEMO_ADMIN_KEY, Settings
from tests.conftest import BACKENDS, empty_store, migrated_engine

STREET = "150622001"
HOME, OTHER = "150622001001", "150622001002"  # the scoped planner's community, and another one
ADMIN_KEY = "test-admin-key-0123456789abcdef"
LEVELS = (("streets", "street"), ("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid"))
dates = itertools.count()


def street(demo_layers, name, prefix=STREET):
    frame = demo_layers[name]
    return frame[frame["code"].str.startswith(prefix)].reset_index(drop=True)


@pytest.fixture(scope="module", params=BACKENDS)
def db(request, tmp_path_factory):
    with migrated_engine(request.param, tmp_path_factory) as engine:
        yield engine


@pytest.fixture
def service(db, demo_layers, tmp_path):
    """One street published as set 's' from 2026-01-01, a key per role, and a client on the service."""
    store = empty_store(db)
    for name, level in LEVELS:
        store.import_units("s", street(demo_layers, name), level, commit=True)
    store.publish("s", dt.date(2026, 1, 1))
    keys = {role.value: Keys(db).create(f"{role.value} key", role)[1] for role in Role}
    keys["planner@home"] = Keys(db).create("community planner", Role.planner, scope=HOME)[1]
    settings = Settings(
        database_url=db.url.render_as_string(hide_password=False),
        cache_dir=str(tmp_path / "cache"),
        default_set="s",
        environment="test",
        admin_key=ADMIN_KEY,
        rate_limit_per_minute=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client, keys, store


def auth(keys, who):
    return {} if who == "anonymous" else {"Authorization": f"Bearer {keys[who]}"}


def etag(client):
    return client.get("/v1/sets/s").headers["ETag"]


def upload(client, headers, frame, level="grid", tmp=None, suffix=".geojson", **params):
    files = {"file": (f"grids{suffix}", _encode(frame, suffix, tmp), "application/octet-stream")}
    return client.post(f"/v1/sets/s/draft/{level}", files=files, headers=headers, params=params)


def _encode(frame, suffix, tmp):
    if suffix == ".geojson":
        return frame.to_json(drop_id=True).encode()
    path = write_layer(frame, tmp / f"upload{suffix}")
    return path.read_bytes()


def draft_ready(client, demo_layers):
    """Make sure the set has a draft (an admin uploads the grids unchanged)."""
    if client.get("/v1/sets/s").json()["draft"] is None:
        grids = street(demo_layers, "grids")
        headers = {"Authorization": f"Bearer {ADMIN_KEY}", "If-Match": etag(client)}
        assert upload(client, headers, grids, commit="true").status_code == 200


# ---- the role table -------------------------------------------------------------------------------
WHO = ["anonymous", *[r.value for r in Role], "planner@home"]
ALLOWED = {
    "upload dry run": {"planner", "admin", "planner@home"},
    "upload commit": {"planner", "admin", "planner@home"},
    "validate": {"planner", "admin", "planner@home"},
    "publish": {"planner", "admin"},
    "discard": {"planner", "admin"},
    "create key": {"admin"},
    "list keys": {"admin"},
    "revoke key": {"admin"},
}


def call(route, client, keys, demo_layers, who):
    headers = auth(keys, who)
    home_grids = street(demo_layers, "grids", HOME)
    if route in ("validate", "publish", "discard"):
        draft_ready(client, demo_layers)
    if route == "upload dry run":
        return upload(client, headers, home_grids)
    if route == "upload commit":
        return upload(client, {**headers, "If-Match": etag(client)}, home_grids, commit="true")
    if route == "validate":
        return client.get("/v1/sets/s/draft/problems", headers=headers)
    if route == "publish":
        day = dt.date(2026, 2, 1) + dt.timedelta(days=next(dates))
        body = {"valid_from": day.isoformat(), "note": f"by {who}"}
        return client.post("/v1/sets/s/publish", json=body, headers={**headers, "If-Match": etag(client)})
    if route == "discard":
        return client.delete("/v1/sets/s/draft", headers={**headers, "If-Match": etag(client)})
    if route == "create key":
        return client.post("/v1/keys", json={"name": "hotline", "role": "reporter"}, headers=headers)
    if route == "list keys":
        return client.get("/v1/keys", headers=headers)
    victim = Keys(client.app.state.service.store.engine).create("victim", Role.viewer)[0].id
    return client.delete(f"/v1/keys/{victim}", headers=headers)


@pytest.mark.parametrize("route", list(ALLOWED))
def test_every_write_route_with_every_role(service, demo_layers, route):
    client, keys, _ = service
    for who in WHO:
        response = call(route, client, keys, demo_layers, who)
        if who == "anonymous":
            expected = 401
        elif who not in ALLOWED[route]:
            expected = 403
        else:
            expected = {"create key": 201, "revoke key": 204, "discard": 204}.get(route, 200)
        assert response.status_code == expected, (route, who, response.text)
        if expected in (401, 403):
            assert response.headers["content-type"] == "application/problem+json"
        if expected == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_reads_are_public_but_a_bad_key_is_refused(service):
    client, keys, _ = service
    assert client.get("/v1/sets/s").status_code == 200
    for path in ("/v1/sets/s", "/v1/lookup?lon=111.2&lat=39.85", "/ogc/collections"):
        assert client.get(path, headers={"X-API-Key": "gg_nonsense"}).status_code == 401, path
        assert client.get(path, headers=auth(keys, "viewer")).status_code == 200, path


def test_a_community_planner_cannot_touch_another_community(service, demo_layers):
    client, keys, store = service
    headers = {**auth(keys, "planner@home"), "If-Match": etag(client)}
    other = street(demo_layers, "grids", OTHER)
    refused = upload(client, headers, other, commit="true")
    assert refused.status_code == 403 and OTHER in refused.json()["detail"]
    mixed = street(demo_layers, "grids", STREET)  # the whole street: home and other communities
    assert upload(client, headers, mixed).status_code == 403
    assert store.versions("s")[-1].status == "published"  # nothing was written
    # Its own community: only its grids are replaced, the other communities' grids stay as they were.
    home = street(demo_layers, "grids", HOME).iloc[:-1]  # drop one grid
    done = upload(client, headers, home, commit="true")
    assert done.status_code == 200, done.text
    assert done.json()["removed"] == [street(demo_layers, "grids", HOME)["code"].iloc[-1]]
    draft = store.units("s", version=2, level="grid")
    assert set(draft["code"]) == set(street(demo_layers, "grids")["code"]) - set(done.json()["removed"])
    # A publish changes the whole set: not for a community planner.
    response = client.post(
        "/v1/sets/s/publish", json={"valid_from": "2026-06-01"}, headers={**headers, "If-Match": etag(client)}
    )
    assert response.status_code == 403


# ---- drafts, publishing, ETags ---------------------------------------------------------------------
def test_upload_each_format_dry_run_then_commit(service, demo_layers, tmp_path):
    client, keys, store = service
    grids = street(demo_layers, "grids").copy()
    grids.loc[0, "name"] = "改名网格"
    headers = auth(keys, "planner")
    reports = {}
    for suffix in (".geojson", ".shp.zip", ".gpkg", ".kml"):
        response = upload(client, headers, grids, tmp=tmp_path, suffix=suffix)
        assert response.status_code == 200, (suffix, response.text)
        reports[suffix] = response.json()
    for suffix, report in reports.items():
        assert report["committed"] is False and report["rows"] == len(grids), suffix
        assert report["added"] == report["removed"] == [], suffix
        if suffix != ".kml":  # KML keeps no household counts and rounds coordinates: every grid differs
            assert report["changed"] == [grids["code"].iloc[0]] and report["unchanged"] == len(grids) - 1
    assert [v.status for v in store.versions("s")] == ["published"]  # dry runs wrote nothing
    before = etag(client)
    response = upload(client, {**headers, "If-Match": before}, grids, commit="true")
    assert response.status_code == 200 and response.json()["committed"] is True
    assert response.headers["ETag"] != before and response.headers["ETag"] == etag(client)
    assert store.units("s", version=2, level="grid")["name"].iloc[0] == "改名网格"


def test_upload_errors_name_the_fault(service, demo_layers):
    client, keys, _ = service
    headers = auth(keys, "planner")
    files = {"file": ("grids.geojson", b"{not geojson", "application/geo+json")}
    bad = client.post("/v1/sets/s/draft/grid", files=files, headers=headers)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    files = {"file": ("grids.dwg", b"AC1027", "application/octet-stream")}
    assert "unsupported file type" in client.post("/v1/sets/s/draft/grid", files=files, headers=headers).text
    grids = street(demo_layers, "grids")
    missing = upload(client, headers, grids, commit="true")  # commit without If-Match
    assert missing.status_code == 428 and "If-Match" in missing.json()["detail"]


def test_validate_the_draft(service, demo_layers):
    client, keys, _ = service
    headers = auth(keys, "planner")
    grids = street(demo_layers, "grids")
    gap = grids.iloc[1:]  # one grid deleted: a gap in its community
    assert upload(client, {**headers, "If-Match": etag(client)}, gap, commit="true").status_code == 200
    body = client.get("/v1/sets/s/draft/problems", headers=headers).json()
    assert body["ok"] is False and body["draft"] == 2
    problems = body["levels"]["grid"]["problems"]["features"]
    assert [p["properties"]["kind"] for p in problems] == ["gap"]
    area = shapely.geometry.shape(problems[0]["geometry"]).area
    assert area == pytest.approx(grids.geometry.iloc[0].area, rel=0.01)
    # Publishing refuses the draft, naming the deleted grid (its micro-grids lost their parent).
    response = client.post(
        "/v1/sets/s/publish", json={"valid_from": "2026-03-01"}, headers={**headers, "If-Match": etag(client)}
    )
    assert response.status_code == 422 and grids["code"].iloc[0] in response.json()["detail"]


def test_stale_etag_gets_409_and_nothing_is_lost(service, demo_layers):
    client, keys, store = service
    grids = street(demo_layers, "grids").copy()
    base = etag(client)
    mine, theirs = grids.copy(), grids.copy()
    mine.loc[0, "name"] = "A 的改动"
    theirs.loc[0, "name"] = "B 的改动"
    a = upload(client, {**auth(keys, "planner"), "If-Match": base}, mine, commit="true")
    assert a.status_code == 200
    b = upload(client, {**auth(keys, "admin"), "If-Match": base}, theirs, commit="true")
    assert b.status_code == 409 and b.headers["content-type"] == "application/problem+json"
    assert store.units("s", version=2, level="grid")["name"].iloc[0] == "A 的改动"  # A's work kept
    unreadable = client.delete("/v1/sets/s/draft", headers={**auth(keys, "planner"), "If-Match": "yesterday"})
    assert unreadable.status_code == 409


def test_two_planners_publish_from_the_same_base_one_wins(service, demo_layers):
    client, keys, store = service
    draft_ready(client, demo_layers)
    base = etag(client)
    barrier = threading.Barrier(2)

    def publish(who, day):
        barrier.wait()
        return client.post(
            "/v1/sets/s/publish",
            json={"valid_from": day, "note": who},
            headers={**auth(keys, who), "If-Match": base},
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(publish, ["planner", "admin"], ["2026-04-01", "2026-04-02"]))
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409], [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    versions = store.versions("s")
    assert [(v.number, v.status) for v in versions] == [(1, "published"), (2, "published")]
    assert (
        versions[1].valid_from.isoformat() == winner["valid_from"]
        and versions[0].valid_to == versions[1].valid_from
    )
    assert [a["action"] for a in store.audit("s")].count("publish") == 2  # v1 and the winner only
    # The loser reloads and tries again: there is no draft left to publish, and it is told so.
    again = client.post(
        "/v1/sets/s/publish",
        json={"valid_from": "2026-05-01"},
        headers={**auth(keys, "admin"), "If-Match": etag(client)},
    )
    assert again.status_code == 404


def test_diff_two_versions(service, demo_layers):
    client, keys, _ = service
    headers = auth(keys, "planner")
    grids = street(demo_layers, "grids").copy()
    grids.loc[3, "name"] = "新名字"
    assert upload(client, {**headers, "If-Match": etag(client)}, grids, commit="true").status_code == 200
    body = client.get("/v1/sets/s/diff", params={"from": 1, "to": 2}).json()
    assert body["levels"]["grid"]["changed"] == [grids["code"].iloc[3]]
    assert body["levels"]["microgrid"] == {
        "added": [],
        "removed": [],
        "changed": [],
        "unchanged": len(street(demo_layers, "microgrids")),
    }
    assert client.get("/v1/sets/s/diff", params={"from": 1, "to": 9}).status_code == 404


# ---- keys ------------------------------------------------------------------------------------------
def test_keys_are_shown_once_and_revocation_is_immediate(service):
    client, keys, _ = service
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    made = client.post("/v1/keys", json={"name": "hotline 12345", "role": "reporter"}, headers=admin)
    assert made.status_code == 201 and made.json()["key"].startswith("gg_")
    key = made.json()["key"]
    listed = client.get("/v1/keys", headers=admin).json()
    assert all("key" not in k for k in listed) and key not in str(listed)
    assert client.get("/v1/lookup?lon=111.2&lat=39.85", headers={"X-API-Key": key}).status_code == 200
    assert client.delete(f"/v1/keys/{made.json()['id']}", headers=admin).status_code == 204
    assert client.get("/v1/lookup?lon=111.2&lat=39.85", headers={"X-API-Key": key}).status_code == 401
    bad = client.post("/v1/keys", json={"name": "x", "role": "admin", "scope": HOME}, headers=admin)
    assert bad.status_code == 400 and bad.json()["field"] == "scope"
    assert client.post("/v1/keys", json={"name": "x", "role": "chief"}, headers=admin).status_code == 422


def test_a_key_says_who_it_is(service):
    client, _, _ = service
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    made = client.post(
        "/v1/keys", json={"name": "社区指挥", "role": "commander", "scope": HOME}, headers=admin
    )
    me = client.get("/v1/keys/me", headers={"Authorization": f"Bearer {made.json()['key']}"})
    assert me.json() == {"name": "社区指挥", "role": "commander", "scope": HOME}
    assert client.get("/v1/keys/me").status_code == 401


# ---- settings: secrets, public reads, rate limits, body size, timeouts ------------------------------
def make(db, tmp_path, **overrides):
    base = {
        "database_url": db.url.render_as_string(hide_password=False),
        "cache_dir": str(tmp_path / "cache"),
        "default_set": "s",
        "environment": "test",
    }
    return TestClient(create_app(Settings(**{**base, **overrides})))


def test_default_secrets_only_in_local_and_demo(service, db, tmp_path):
    for weak in (DEMO_ADMIN_KEY, "short"):
        with pytest.raises(InsecureConfiguration, match="GEOGRID_ADMIN_KEY"):
            create_app(
                Settings(database_url="sqlite:///unused.sqlite", environment="production", admin_key=weak)
            )
    with make(db, tmp_path, environment="production") as client:  # no admin key configured: none works
        refused = client.get("/v1/keys", headers={"Authorization": f"Bearer {DEMO_ADMIN_KEY}"})
        assert refused.status_code == 401
    with make(db, tmp_path, environment="local") as client:
        assert (
            client.get("/v1/keys", headers={"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}).status_code == 200
        )


def test_private_service_and_rate_limit(service, db, tmp_path):
    _, keys, _ = service
    with make(db, tmp_path, public_reads=False) as client:
        assert client.get("/v1/lookup?lon=111.2&lat=39.85").status_code == 401
        assert client.get("/v1/sets").status_code == 401
        assert client.get("/v1/lookup?lon=111.2&lat=39.85", headers=auth(keys, "viewer")).status_code == 200
    with make(db, tmp_path, rate_limit_per_minute=5) as client:
        statuses = [client.get("/v1/lookup?lon=111.2&lat=39.85").status_code for _ in range(5)]
        assert statuses == [200] * 5
        limited = client.get("/v1/lookup?lon=111.2&lat=39.85")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/sets").status_code == 429  # every anonymous read shares the budget
        keyed = client.get("/v1/lookup?lon=111.2&lat=39.85", headers=auth(keys, "viewer"))
        assert keyed.status_code == 200  # callers with a key are not limited


def test_body_size_limit_and_timeout(service, db, tmp_path):
    with make(db, tmp_path, max_body_mb=0.001) as client:
        big = "lon,lat\n" + "111.2,39.85\n" * 200
        response = client.post("/v1/lookup", content=big, headers={"content-type": "text/csv"})
        assert response.status_code == 413 and "GEOGRID_MAX_BODY_MB" in response.json()["detail"]
        chunked = client.post(
            "/v1/lookup", content=iter([big.encode()]), headers={"content-type": "text/csv"}
        )  # no Content-Length: counted as it arrives
        assert chunked.status_code == 413
    with make(db, tmp_path, request_timeout_s=0.001) as client:
        slow = client.get("/v1/sets/s/units", params={"level": "microgrid"})
        assert slow.status_code == 503 and "GEOGRID_REQUEST_TIMEOUT_S" in slow.json()["detail"]
        assert client.get("/v1/lookup?lon=111.2&lat=39.85").status_code == 200  # the hot path has no awaits


def test_an_island_is_reported_but_the_draft_is_ok(service):
    """Issue 10 item 23: GET draft/problems lists a unit in several parts for information; ok stays true."""
    client, keys, store = service
    county = shapely.MultiPolygon(
        [shapely.box(111.2, 39.85, 111.22, 39.86), shapely.box(111.23, 39.85, 111.24, 39.86)]
    )
    island = shapely.MultiPolygon(
        [shapely.box(111.2, 39.85, 111.21, 39.86), shapely.box(111.23, 39.85, 111.24, 39.86)]
    )
    store.import_units(
        "isl",
        gpd.GeoDataFrame({"code": ["150622"], "name": ["县"]}, geometry=[county], crs=4326),
        "county",
        commit=True,
    )
    streets = gpd.GeoDataFrame(
        {"code": ["150622001", "150622002"], "name": ["岛", "陆"]},
        geometry=[island, shapely.box(111.21, 39.85, 111.22, 39.86)],
        crs=4326,
    )
    store.import_units("isl", streets, "street", commit=True)
    body = client.get("/v1/sets/isl/draft/problems", headers=auth(keys, "planner")).json()
    assert body["ok"] is True and body["levels"]["street"]["faults"] == 0, body
    kinds = [f["properties"]["kind"] for f in body["levels"]["street"]["problems"]["features"]]
    assert kinds == ["multipart"] and body["levels"]["street"]["summary"]["information"] == ["multipart"]
