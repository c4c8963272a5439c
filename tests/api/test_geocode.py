"""Geocoding routes on both databases: one text (never queued), batches (bad rows kept apart, unsure ones
queued), reverse lookups in any CRS, the queue round trip (a resolved text becomes an alias the service
matches at once), roles and scope, registry uploads with If-Match, and bad input always a 4xx naming the
field, never a 500, never a phone in an error body or the access log."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import time

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook

from api.main import create_app
from api.state import NotCached
from geogrid.access import Role
from geogrid.addresses.registry import address_text, read_addresses
from geogrid.crs import wgs84_to_gcj02
from geogrid.db.addresses import AddressStore
from geogrid.db.keys import Keys
from geogrid.settings import Settings
from tests.conftest import BACKENDS, DEMO, empty_store, migrated_engine, problem

STREET = "150622001"
HOME, OTHER = "150622001001", "150622001002"  # the scoped keys' community, and another one
LEVELS = (("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid"))
PHONE = "13812341234"


def registry_rows() -> list[dict[str, str]]:
    """The demo addresses of two communities: a small registry (~500 rows) with real names."""
    with open(DEMO / "addresses.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if r["地址编码"][1:].startswith((HOME, OTHER))]


def look_alikes(rows: list[dict[str, str]], community: str, names: tuple[str, str]) -> list[dict[str, str]]:
    """Two compounds of ``community`` whose names differ by one character, buildings 1-3 each, on points
    of the demo's buildings there: a text with a third spelling of the name is unsure between them."""
    there = [r for r in rows if r["地址编码"][1:].startswith(community)]
    out = []
    for k, name in enumerate(names):
        for b in (1, 2, 3):
            src = there[10 * k + b]
            blank = dict.fromkeys(("道路", "门牌号", "别名", "标准地址", "村", "组"), "")
            out.append(src | blank | {"地址编码": f"A{community}99{k}00{b}", "小区": name, "楼栋": str(b)})
    return out


DEMO_ROWS = registry_rows()
ROWS = DEMO_ROWS + look_alikes(DEMO_ROWS, HOME, ("康和小区", "康禾小区"))
ROWS += look_alikes(DEMO_ROWS, OTHER, ("福泰花园", "福太花园"))
HEADER = list(ROWS[0])
UNSURE_HOME, UNSURE_OTHER = "康合小区2号楼", "福态花园2号楼"  # between the two look-alikes' building 2
HOME_2 = {f"A{HOME}99000{2}", f"A{HOME}99100{2}"}
OTHER_2 = {f"A{OTHER}99000{2}", f"A{OTHER}99100{2}"}
BY_ID = {r["地址编码"]: r for r in ROWS}


def csv_bytes(rows: list[dict[str, str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def microgrid_of(row: dict[str, str]) -> str:
    return row["建筑编号"].split("-")[0]  # the demo's building ids start with their micro-grid's code


@pytest.fixture(scope="module", params=BACKENDS)
def db(request, tmp_path_factory):
    with migrated_engine(request.param, tmp_path_factory) as engine:
        yield engine


@pytest.fixture(scope="module")
def published(db, demo_layers):
    """One street published as set 's', its two communities' addresses, and a key per role."""
    store = empty_store(db)
    for name, level in LEVELS:
        frame = demo_layers[name]
        store.import_units("s", frame[frame["code"].str.startswith(STREET)], level, commit=True)
    store.publish("s", dt.date(2026, 1, 1))
    report = AddressStore(db, "test").import_addresses(
        "s", read_addresses(csv_bytes(ROWS), "a.csv"), commit=True
    )
    assert not report.errors, report.errors[:3]
    keys = {role.value: Keys(db).create(f"{role.value} key", role)[1] for role in Role}
    keys["commander@home"] = Keys(db).create("community commander", Role.commander, scope=HOME)[1]
    keys["planner@home"] = Keys(db).create("community planner", Role.planner, scope=HOME)[1]
    return keys


@pytest.fixture
def service(db, published, tmp_path):
    """A client on the service, the queue and the aliases people placed emptied."""
    with db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM geocode_queue")
        conn.exec_driver_sql("DELETE FROM address_alias WHERE source <> 'file'")
    settings = Settings(
        database_url=db.url.render_as_string(hide_password=False),
        cache_dir=str(tmp_path / "cache"),
        default_set="s",
        environment="test",
        admin_key="test-admin-key-0123456789abcdef",
        rate_limit_per_minute=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client, published


def auth(keys, who, **headers):
    return headers | ({} if who == "anonymous" else {"Authorization": f"Bearer {keys[who]}"})


def resolve_on(client, keys, item_id, row):
    """A commander places queue item ``item_id`` on registry row ``row``: the 200 response."""
    done = client.post(
        f"/v1/sets/s/addresses/queue/{item_id}/resolve",
        json={"address_id": row["地址编码"]},
        headers=auth(keys, "commander"),
    )
    assert done.status_code == 200, done.text
    return done


def queue(client, keys, who="admin", **params):
    found = client.get("/v1/sets/s/addresses/queue", params=params, headers=auth(keys, who))
    assert found.status_code == 200, found.text
    return found.json()["items"]


# ---- one text --------------------------------------------------------------------------------------
def test_the_matcher_is_built_at_start_up_without_a_request(service):
    client, _ = service
    state = client.app.state.service
    deadline = time.monotonic() + 120  # a bound, not a wait: the loop ends as soon as it is built
    while True:
        try:
            matcher = state.matcher(build=False)
            break
        except NotCached:
            assert time.monotonic() < deadline, "no matcher two minutes after start-up"
            time.sleep(0.05)
    assert matcher.match(ROWS[0]["标准地址"]).placed


def test_a_registry_address_is_placed_on_its_building_with_its_microgrid(service):
    client, keys = service
    row = ROWS[0]
    for q in (
        address_text(read_addresses(csv_bytes([row]), "a.csv").iloc[0]),
        "内蒙古鄂尔多斯市准格尔旗" + row["标准地址"],
    ):
        found = client.get("/v1/geocode", params={"q": q})
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["placed"] is True and body["confidence"] >= 0.9, body
        assert body["address"]["address_id"] == row["地址编码"]
        assert body["address"]["building_id"] == row["建筑编号"]
        assert body["address"]["microgrid"] == microgrid_of(row)
        assert body["set"] == "s" and body["version"] == 1 and body["queue_id"] is None
        assert body["reason"] == "" and body["address"]["matched"]
    assert queue(client, keys) == []  # GET never writes


def test_an_unsure_text_carries_candidates_and_is_not_queued_by_get(service):
    client, keys = service
    body = client.get("/v1/geocode", params={"q": UNSURE_HOME}).json()
    assert body["placed"] is False and body["reason"] and body["confidence"] < 0.9, body
    assert {c["address_id"] for c in body["candidates"]} == HOME_2
    for c in body["candidates"]:
        assert c["microgrid"] == microgrid_of(BY_ID[c["address_id"]]) and c["microgrid"].startswith(HOME)
    assert queue(client, keys) == []


@pytest.mark.parametrize("q", ["hello world", "🏠 home", "Yingze Road 32"])
def test_latin_and_emoji_texts_are_answered_unplaced(service, q):
    client, _ = service
    found = client.get("/v1/geocode", params={"q": q})
    assert found.status_code == 200, found.text
    assert found.json()["placed"] is False and found.json()["address"] is None


@pytest.mark.parametrize(
    ("q", "words"),
    [
        ("", ["q"]),
        ("   ", ["q", "empty"]),
        ("！!。，", ["q", "punctuation"]),
        ("🏠🏠🏠", ["q", "no letters or digits"]),
        ("ﷺ" * 20, ["q", "once normalised"]),  # 20 characters, 360 normalised: past the queue's column
        ("迎泽路\x0032号", ["q", "control"]),
        ("迎泽路32号" * 1100, ["q", "200"]),  # about 10 kB: refused before it is matched
    ],
)
def test_bad_texts_are_422_naming_q(service, q, words):
    client, _ = service
    body = problem(client.get("/v1/geocode", params={"q": q}), 422, *words)
    assert body["field"] == "q" or body.get("parameter") == "q"
    assert "迎泽路32号迎泽路" not in str(body)  # a long text is not repeated


def test_missing_q_and_unknown_parameters_are_422(service):
    client, _ = service
    problem(client.get("/v1/geocode"), 422, "q")
    problem(client.get("/v1/geocode", params={"q": "王家路", "lon": "111"}), 422, "lon")


def test_a_long_text_never_reaches_the_matcher(service, monkeypatch):
    client, _ = service
    matcher = client.app.state.service.matcher("s")
    monkeypatch.setattr(matcher, "match", lambda text: pytest.fail("matched a 10 kB text"))
    problem(client.get("/v1/geocode", params={"q": "x" * 10_000}), 422, "q")


# ---- batches ---------------------------------------------------------------------------------------
def test_a_batch_answers_in_order_keeps_good_rows_and_queues_unsure_ones(service):
    client, keys = service
    good = ROWS[0]["标准地址"]
    texts = [good, UNSURE_HOME, "", "迎泽路\x00", "路" * 10_000, 12, None, "hello world", "🏠", UNSURE_HOME]
    found = client.post("/v1/geocode", json={"texts": texts}, headers=auth(keys, "reporter"))
    assert found.status_code == 200, found.text
    body = found.json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(texts)))
    assert results[0]["placed"] and results[0]["address"]["microgrid"] == microgrid_of(ROWS[0])
    assert results[0]["queue_id"] is None
    assert not results[1]["placed"] and isinstance(results[1]["queue_id"], int)
    assert results[9]["queue_id"] == results[1]["queue_id"]  # one open item per text
    for i in (2, 3, 4, 5, 6, 8):
        assert results[i]["problem"]["status"] == 422 and results[i]["problem"]["field"] == f"texts[{i}]"
        assert f"texts[{i}]" in results[i]["problem"]["detail"]
    assert "路路路路" not in found.text
    assert not results[7]["placed"] and results[7]["queue_id"]
    assert (body["placed"], body["errors"]) == (1, 6)
    items = queue(client, keys)
    assert {i["id"] for i in items} == {results[i]["queue_id"] for i in (1, 7)}
    seen = next(i for i in items if i["id"] == results[1]["queue_id"])
    assert seen["seen"] == 2 and seen["candidates"] and seen["candidates"][0]["microgrid"].startswith(HOME)


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        (b"not json", 422, "JSON"),
        (b'{"texts": "one"}', 422, "texts"),
        (b"{}", 422, "texts"),
        (b'{"texts": [], "set": 12}', 422, "set"),
        (b'{"texts": [' + b",".join([b'"a"'] * 10_001) + b"]}", 422, "texts"),
        (b'{"texts": ["' + b"x" * 9_000_000 + b'"]}', 413, "body"),
    ],
)
def test_bad_batches_are_4xx_naming_the_field(service, body, status, word):
    client, keys = service
    headers = auth(keys, "reporter", **{"Content-Type": "application/json"})
    problem(client.post("/v1/geocode", content=body, headers=headers), status, word)


def test_an_empty_batch_and_an_unknown_set(service):
    client, keys = service
    found = client.post("/v1/geocode", json={"texts": []}, headers=auth(keys, "reporter"))
    assert found.status_code == 200 and found.json()["results"] == []
    problem(client.get("/v1/geocode", params={"q": "王家路", "set": "nowhere"}), 404)


# ---- reverse ---------------------------------------------------------------------------------------
def test_reverse_names_the_nearest_address_and_the_points_microgrid(service):
    client, _ = service
    row = ROWS[5]  # not a point the look-alikes share
    lon, lat = float(row["经度"]), float(row["纬度"])
    body = client.get("/v1/reverse", params={"lon": lon, "lat": lat}).json()
    assert body["address"]["address_id"] == row["地址编码"] and body["distance_m"] < 0.5
    assert body["microgrid"] == microgrid_of(row) == body["address"]["microgrid"]
    glon, glat = wgs84_to_gcj02(lon, lat)
    gcj = client.get("/v1/reverse", params={"lon": float(glon), "lat": float(glat), "crs": "GCJ-02"}).json()
    assert gcj["address"]["address_id"] == row["地址编码"] and gcj["distance_m"] < 1
    far = client.get("/v1/reverse", params={"lon": lon + 0.05, "lat": lat, "max_m": 10}).json()
    assert far["address"] is None and far["distance_m"] is None


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"lon": "200", "lat": "39.9"}, "lon"),
        ({"lon": "39.9", "lat": "111.2"}, "swapped"),
        ({"lon": "abc", "lat": "39.9"}, "lon"),
        ({"lon": "111.2", "lat": "39.9", "crs": "nonsense"}, "crs"),
        ({"lon": "111.2", "lat": "39.9", "max_m": "5000"}, "max_m"),
        ({"lon": "111.2"}, "lat"),
        ({"lon": "1e300", "lat": "1e300", "crs": "EPSG:3857"}, "not a point"),  # no clamping to the pole
        ({"lon": "nan", "lat": "39.9"}, "lon"),
    ],
)
def test_bad_reverse_points_are_422(service, params, word):
    client, _ = service
    problem(client.get("/v1/reverse", params=params), 422, word)


# ---- the queue -------------------------------------------------------------------------------------
def test_a_resolved_text_becomes_an_alias_the_service_matches_at_once(service):
    client, keys = service
    text = "康荷小区２栋"
    first = client.post("/v1/geocode", json={"texts": [text]}, headers=auth(keys, "reporter")).json()
    item = first["results"][0]
    assert not item["placed"] and item["queue_id"], item
    assert {c["address_id"] for c in item["candidates"]} == HOME_2
    target = BY_ID[sorted(HOME_2)[1]]
    done = resolve_on(client, keys, item["queue_id"], target)
    assert done.json()["microgrid"] == microgrid_of(target)
    again = client.get("/v1/geocode", params={"q": text}).json()
    assert again["placed"] is True and again["confidence"] == 1.0
    assert again["address"]["address_id"] == target["地址编码"]
    assert again["address"]["matched"] == {"alias": "exact"}
    batch = client.post("/v1/geocode", json={"texts": [text]}, headers=auth(keys, "reporter")).json()
    assert batch["results"][0]["placed"] and batch["results"][0]["queue_id"] is None
    assert queue(client, keys) == []
    resolved = queue(client, keys, status="resolved")
    assert [i["id"] for i in resolved] == [item["queue_id"]]


def test_a_text_with_the_callers_phone_is_queued_masked_and_its_resolution_matches_it_again(service):
    client, keys = service
    text = "康荷小区２栋 手机13912345678"
    item = client.post("/v1/geocode", json={"texts": [text]}, headers=auth(keys, "reporter")).json()
    item = item["results"][0]
    assert not item["placed"] and item["queue_id"], item
    listed = [i for i in queue(client, keys) if i["id"] == item["queue_id"]]
    assert listed and "13912345678" not in str(listed) and "139****5678" in listed[0]["text"]
    target = BY_ID[sorted(HOME_2)[0]]
    resolve_on(client, keys, item["queue_id"], target)
    for again in (text, "康荷小区2栋，来电13800001111"):  # the phone is no part of the address
        got = client.get("/v1/geocode", params={"q": again}).json()
        assert got["placed"] and got["address"]["address_id"] == target["地址编码"], (again, got)


def test_a_resolution_made_elsewhere_is_seen_once_the_cached_matcher_is_re_read(service, db):
    """The CLI (another process) resolves a text: the service answers from its matcher until
    version_cache_s has passed, then re-reads the registry revision in the background and rebuilds."""
    client, keys = service
    queued = client.post("/v1/geocode", json={"texts": [UNSURE_HOME]}, headers=auth(keys, "reporter")).json()
    target = sorted(HOME_2)[0]
    AddressStore(db, "clerk").resolve("s", queued["results"][0]["queue_id"], address_id=target)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = client.get("/v1/geocode", params={"q": UNSURE_HOME}).json()
        if found["placed"]:
            break
        time.sleep(0.2)
    assert found["placed"] and found["address"]["address_id"] == target


def test_a_text_placed_on_a_point_answers_that_point(service):
    client, keys = service
    text = "薛家湾镇老粮站后面"
    queued = client.post("/v1/geocode", json={"texts": [text]}, headers=auth(keys, "reporter")).json()
    queue_id = queued["results"][0]["queue_id"]
    row = ROWS[10]
    point = {"lon": float(row["经度"]) + 0.0001, "lat": float(row["纬度"])}
    done = client.post(
        f"/v1/sets/s/addresses/queue/{queue_id}/resolve", json=point, headers=auth(keys, "planner")
    )
    assert done.status_code == 200, done.text
    again = client.get("/v1/geocode", params={"q": text}).json()
    assert again["placed"] and again["address"]["address_id"] == ""
    assert abs(again["address"]["lon"] - point["lon"]) < 1e-9
    assert again["address"]["microgrid"] == done.json()["microgrid"]


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({}, 422, "address_id"),
        ({"address_id": "A1", "lon": 111.2, "lat": 39.9}, 422, "address_id"),
        ({"lon": 111.2}, 422, "lat"),
        ({"lon": 311.2, "lat": 39.9}, 422, "lon"),
        ({"lon": 111.2, "lat": 39.9, "crs": "nonsense"}, 422, "crs"),
        ({"address_id": "A-nowhere"}, 404, "address_id"),
        ({"lon": "NaN", "lat": 39.9}, 422, "finite"),
        ({"lon": 111.2, "lat": "-Infinity"}, 422, "finite"),
        ({"lon": 1e300, "lat": 1e300, "crs": "EPSG:3857"}, 422, "not a point"),
    ],
)
def test_bad_resolutions_are_4xx(service, body, status, word):
    client, keys = service
    queued = client.post("/v1/geocode", json={"texts": ["hello"]}, headers=auth(keys, "reporter")).json()
    queue_id = queued["results"][0]["queue_id"]
    path = f"/v1/sets/s/addresses/queue/{queue_id}/resolve"
    problem(client.post(path, json=body, headers=auth(keys, "commander")), status, word)
    problem(
        client.post(
            "/v1/sets/s/addresses/queue/999999/resolve",
            json={"address_id": ROWS[0]["地址编码"]},
            headers=auth(keys, "commander"),
        ),
        404,
    )


# ---- roles and scope -------------------------------------------------------------------------------
@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("viewer", 403)])
def test_readers_may_geocode_but_not_post_list_or_resolve(service, who, status):
    client, keys = service
    assert client.get("/v1/geocode", params={"q": "王家路"}, headers=auth(keys, who)).status_code == 200
    row = ROWS[0]
    assert client.get("/v1/reverse", params={"lon": row["经度"], "lat": row["纬度"]}).status_code == 200
    problem(client.post("/v1/geocode", json={"texts": ["王家路"]}, headers=auth(keys, who)), status)
    problem(client.get("/v1/sets/s/addresses/queue", headers=auth(keys, who)), status)
    resolve = client.post(
        "/v1/sets/s/addresses/queue/1/resolve", json={"address_id": row["地址编码"]}, headers=auth(keys, who)
    )
    problem(resolve, status)
    problem(client.post("/v1/sets/s/addresses", content=csv_bytes(ROWS[:1]), headers=auth(keys, who)), status)


def test_reporters_queue_but_do_not_place_and_commanders_do_not_register(service):
    client, keys = service
    problem(client.get("/v1/sets/s/addresses/queue", headers=auth(keys, "reporter")), 403)
    problem(
        client.post("/v1/sets/s/addresses", content=csv_bytes(ROWS[:1]), headers=auth(keys, "commander")), 403
    )


def test_a_scoped_commander_sees_and_places_only_inside_its_scope(service):
    client, keys = service
    posted = client.post(
        "/v1/geocode", json={"texts": [UNSURE_HOME, UNSURE_OTHER]}, headers=auth(keys, "reporter")
    ).json()
    home_id, other_id = (r["queue_id"] for r in posted["results"])
    assert home_id and other_id
    assert {i["id"] for i in queue(client, keys, "commander")} == {home_id, other_id}
    assert [i["id"] for i in queue(client, keys, "commander@home")] == [home_id]
    path = "/v1/sets/s/addresses/queue/{}/resolve"
    scoped = auth(keys, "commander@home")
    elsewhere = {"address_id": sorted(OTHER_2)[0]}
    problem(client.post(path.format(other_id), json=elsewhere, headers=scoped), 404)  # not its item
    mine = {"address_id": sorted(HOME_2)[0]}
    problem(client.post(path.format(other_id), json=mine, headers=scoped), 404)  # not even onto its own
    problem(client.post(path.format(home_id), json=elsewhere, headers=scoped), 403)
    far = {"lon": 111.9, "lat": 39.5}  # outside every unit of the set
    problem(client.post(path.format(home_id), json=far, headers=scoped), 403)
    done = client.post(path.format(home_id), json=mine, headers=scoped)
    assert done.status_code == 200, done.text
    assert [i["id"] for i in queue(client, keys)] == [other_id]


# ---- registry uploads ------------------------------------------------------------------------------
def xlsx(rows: list[dict[str, str]]) -> bytes:
    book = Workbook()
    book.active.append(HEADER)
    for r in rows:
        book.active.append([r[h] for h in HEADER])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def etag(client):
    return client.get("/v1/sets/s").headers["ETag"]


def test_a_registry_upload_is_a_dry_run_until_commit_with_if_match(service):
    client, keys = service
    new = dict(
        ROWS[0], 地址编码="A150622001001999999-01", 道路="新修路", 门牌号="8", 小区="", 楼栋="", 标准地址=""
    )
    files = {"file": ("地址.xlsx", xlsx([*ROWS, new]), "application/octet-stream")}
    dry = client.post("/v1/sets/s/addresses", files=files, headers=auth(keys, "planner"))
    assert dry.status_code == 200, dry.text
    assert dry.json()["committed"] is False and dry.json()["new"] == 1
    assert not client.get("/v1/geocode", params={"q": "新修路8号"}).json()["placed"]
    problem(
        client.post(
            "/v1/sets/s/addresses", params={"commit": "true"}, files=files, headers=auth(keys, "planner")
        ),
        428,
    )
    headers = auth(keys, "planner", **{"If-Match": '"r1"'})
    problem(client.post("/v1/sets/s/addresses", params={"commit": "true"}, files=files, headers=headers), 409)
    headers = auth(keys, "planner", **{"If-Match": etag(client)})
    done = client.post("/v1/sets/s/addresses", params={"commit": "true"}, files=files, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["committed"] is True and done.headers["ETag"] == etag(client)
    placed = client.get("/v1/geocode", params={"q": "薛家湾镇新修路8号"}).json()
    assert placed["placed"] and placed["address"]["address_id"] == new["地址编码"]  # the matcher was rebuilt
    gbk = csv_bytes(ROWS, "gbk")
    headers = auth(keys, "planner", **{"If-Match": etag(client), "Content-Type": "text/csv"})
    back = client.post("/v1/sets/s/addresses", params={"commit": "true"}, content=gbk, headers=headers)
    assert back.status_code == 200, back.text
    assert back.json()["absent"] == 1 and back.json()["new"] == 0  # addresses a file leaves out stay


def test_a_registry_with_bad_rows_is_422_naming_rows_and_fields(service):
    client, keys = service
    bad = [
        dict(ROWS[0], 经度="abc"),
        dict(ROWS[1], 启用日期="yesterday"),
        dict(ROWS[2], 地址编码=ROWS[3]["地址编码"]),
    ]
    headers = auth(keys, "planner", **{"If-Match": etag(client)})
    body = problem(
        client.post(
            "/v1/sets/s/addresses",
            params={"commit": "true"},
            content=csv_bytes([*bad, ROWS[3]]),
            headers=headers,
        ),
        422,
        "row 1",
    )
    assert {e["field"] for e in body["row_errors"]} >= {"lon", "valid_from", "address_id"}
    problem(client.post("/v1/sets/s/addresses", content=b"\x00\x01 not a registry", headers=headers), 400)


def test_a_scoped_planner_registers_only_addresses_inside_its_scope(service):
    client, keys = service
    home = [r for r in DEMO_ROWS if r["地址编码"][1:].startswith(HOME)][50]
    other = [r for r in DEMO_ROWS if r["地址编码"][1:].startswith(OTHER)][50]
    later = {"启用日期": "2099-01-01"}  # a change to come: today's answers stay as other tests expect
    rows = [
        home | {"门牌号": home["门牌号"] + "-1"} | later,
        other | {"门牌号": other["门牌号"] + "-1"} | later,
    ]
    headers = auth(keys, "planner@home", **{"If-Match": etag(client), "Content-Type": "text/csv"})
    report = client.post("/v1/sets/s/addresses", content=csv_bytes(rows), headers=headers)
    assert report.status_code == 200, report.text
    assert report.json()["changed"] == 1
    assert [(e["row"], e["address_id"]) for e in report.json()["row_errors"]] == [(2, other["地址编码"])]


# ---- privacy ---------------------------------------------------------------------------------------
def test_no_phone_in_error_bodies_or_the_access_log(service, caplog):
    client, keys = service
    caplog.set_level(logging.INFO, logger="geogrid.access")
    caplog.set_level(logging.INFO, logger="geogrid.api")
    texts = [f"王家路{PHONE}", f"王家路\x00{PHONE}", f"{PHONE}" + "路" * 300]
    answers = [client.get("/v1/geocode", params={"q": t}) for t in texts]
    answers.append(client.post("/v1/geocode", json={"texts": texts[1:]}, headers=auth(keys, "reporter")))
    assert [a.status_code for a in answers] == [200, 422, 422, 200]
    for a in answers[1:]:
        assert PHONE not in a.text
    client.post("/v1/geocode", json={"texts": [texts[0]]}, headers=auth(keys, "reporter"))
    assert all(PHONE not in i["text"] for i in queue(client, keys))  # masked in the queue
    deadline = time.monotonic() + 5
    while "path=/v1/geocode" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)  # the access log is written in batches a fraction of a second later
    assert "path=/v1/geocode" in caplog.text
    assert PHONE not in caplog.text and "王家路" not in caplog.text
