"""People routes on both databases: phones masked by role, posts created and ended with If-Match (428
without, 409 stale, as drafts), scoped keys kept in their scope, roster uploads (dry run, commit, all bad: 422), and no
full phone in any error body or access-log line."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from openpyxl import Workbook

from api.main import create_app
from geogrid.access import Role
from geogrid.db.keys import Keys
from geogrid.db.people import Roster
from geogrid.rosters import read_roster
from geogrid.settings import Settings
from tests.conftest import BACKENDS, empty_store, migrated_engine, problem

STREET = "150622001"
HOME, OTHER = "150622001001", "150622001002"  # the scoped planner's community, and another one
GRID, OTHER_GRID = HOME + "001", OTHER + "001"
LEVELS = (("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid"))
HEADER = "人员编号,姓名,手机号,人员类别,岗位,单位编码,起始日期,结束日期,包保楼栋"
LEADER, WORKER, SECRETARY, NEW = "13812341234", "13900001111", "0477-1234567", "13655556666"
PHONES = (LEADER, WORKER, SECRETARY, NEW)
TODAY = dt.date.today()
ROSTER = "\n".join(
    [
        HEADER,
        f"P1,张伟,{LEADER},网格长,网格长,{GRID},2020-01-01,,",
        f"P2,李娜,{WORKER},专职网格员,网格员,{GRID},2020-01-01,,",
        f"P3,王芳,{SECRETARY},社区书记,社区书记,{OTHER},2020-01-01,,",
    ]
)


@pytest.fixture(scope="module", params=BACKENDS)
def db(request, tmp_path_factory):
    with migrated_engine(request.param, tmp_path_factory) as engine:
        yield engine


@pytest.fixture(scope="module")
def published(db, demo_layers):
    """One street's communities, grids and micro-grids published as set 's' from 2026-01-01."""
    store = empty_store(db)
    for name, level in LEVELS:
        frame = demo_layers[name]
        store.import_units("s", frame[frame["code"].str.startswith(STREET)], level, commit=True)
    store.publish("s", dt.date(2026, 1, 1))
    keys = {role.value: Keys(db).create(f"{role.value} key", role)[1] for role in Role}
    keys["planner@home"] = Keys(db).create("community planner", Role.planner, scope=HOME)[1]
    return keys


@pytest.fixture
def service(db, published, tmp_path):
    """The published street with a three-person roster, and a client on the service."""
    with db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM post")
        conn.exec_driver_sql("DELETE FROM person")
    report = Roster(db, "test").import_roster(
        "s", read_roster(ROSTER.encode(), filename="r.csv"), commit=True
    )
    assert not report.errors
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


def etag(client):
    return client.get("/v1/sets/s").headers["ETag"]


def new_post(**change):
    body = {
        "person_id": "P4",
        "name": "赵六",
        "phone": NEW,
        "kind": "兼职网格员",
        "role": "网格员",
        "unit_code": GRID,
        "valid_from": "2026-03-01",
    }
    return body | change


def no_phone(text: str) -> None:
    for phone in (*PHONES, "1381234"):
        assert phone not in text, phone


# ---- reads -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "full"),
    [("anonymous", False), ("viewer", False), ("reporter", False), ("worker", True), ("commander", True)],
)
def test_phones_are_masked_unless_the_role_may_contact(service, who, full):
    client, keys = service
    people = client.get("/v1/sets/s/people", headers=auth(keys, who))
    assert people.status_code == 200, people.text
    phones = {p["person_id"]: p["phone"] for p in people.json()["people"]}
    if full:
        assert phones == {"P1": LEADER, "P2": WORKER, "P3": SECRETARY}
    else:
        assert phones == {"P1": "138****1234", "P2": "139****1111", "P3": "047*****4567"}
        for path in ("/v1/sets/s/people", "/v1/sets/s/posts", "/v1/sets/s/people/P1"):
            no_phone(client.get(path, headers=auth(keys, who)).text)
    posts = client.get("/v1/sets/s/posts", params={"unit": GRID}, headers=auth(keys, who)).json()
    assert [p["person_id"] for p in posts["posts"]] == ["P1", "P2"]
    assert posts["phones"] == ("full" if full else "masked")
    one = client.get("/v1/sets/s/people/P1", headers=auth(keys, who)).json()
    assert one["phone"] == (LEADER if full else "138****1234") and one["posts"][0]["unit_code"] == GRID


def test_reads_as_of_a_date_and_not_found(service):
    client, keys = service
    headers = auth(keys, "planner", **{"If-Match": etag(client)})
    post_id = next(
        p["post_id"] for p in client.get("/v1/sets/s/posts").json()["posts"] if p["person_id"] == "P2"
    )
    ended = client.post(
        f"/v1/sets/s/posts/{post_id}/end", json={"valid_to": TODAY.isoformat()}, headers=headers
    )
    assert ended.status_code == 200, ended.text
    today = client.get("/v1/sets/s/people", params={"at": TODAY.isoformat(), "unit": GRID}).json()
    assert [p["person_id"] for p in today["people"]] == ["P1"]
    last_week = (TODAY - dt.timedelta(days=7)).isoformat()
    assert len(client.get("/v1/sets/s/posts", params={"at": last_week, "unit": GRID}).json()["posts"]) == 2
    assert len(client.get("/v1/sets/s/posts").json()["posts"]) == 3  # history kept
    problem(client.get("/v1/sets/s/people/nobody"), 404, "nobody")
    problem(client.get("/v1/sets/nowhere/posts"), 404)


# ---- writes ----------------------------------------------------------------------------------------
def test_a_planner_creates_and_ends_a_post_with_if_match(service):
    client, keys = service
    before = etag(client)
    made = client.post(
        "/v1/sets/s/posts", json=new_post(), headers=auth(keys, "planner", **{"If-Match": before})
    )
    assert made.status_code == 201, made.text
    assert made.headers["ETag"] != before and made.headers["ETag"] == etag(client)
    post = made.json()
    assert post["person_id"] == "P4" and post["role"] == "worker" and post["valid_to"] is None
    headers = auth(keys, "planner", **{"If-Match": made.headers["ETag"]})
    ended = client.post(
        f"/v1/sets/s/posts/{post['post_id']}/end", json={"valid_to": "2026-06-01"}, headers=headers
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["valid_to"] == "2026-06-01" and ended.headers["ETag"] == etag(client)
    person = client.get("/v1/sets/s/people/P4").json()
    assert [(p["valid_from"], p["valid_to"]) for p in person["posts"]] == [("2026-03-01", "2026-06-01")]
    again = client.post(
        f"/v1/sets/s/posts/{post['post_id']}/end",
        json={"valid_to": "2026-07-01"},
        headers=auth(keys, "planner", **{"If-Match": etag(client)}),
    )
    problem(again, 409, "already ended")


def test_if_match_is_required_and_a_stale_one_is_409_as_for_drafts(service):
    client, keys = service
    problem(client.post("/v1/sets/s/posts", json=new_post(), headers=auth(keys, "planner")), 428, "If-Match")
    stale = etag(client)
    fresh = client.post(
        "/v1/sets/s/posts", json=new_post(), headers=auth(keys, "admin", **{"If-Match": stale})
    )
    assert fresh.status_code == 201, fresh.text
    late = client.post(
        "/v1/sets/s/posts",
        json=new_post(person_id="P5"),
        headers=auth(keys, "planner", **{"If-Match": stale}),
    )
    problem(late, 409, "has changed")
    post_id = fresh.json()["post_id"]
    problem(
        client.post(
            f"/v1/sets/s/posts/{post_id}/end",
            json={"valid_to": "2026-06-01"},
            headers=auth(keys, "planner", **{"If-Match": stale}),
        ),
        409,
    )
    assert client.get("/v1/sets/s/people/P5").status_code == 404  # nothing written


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("viewer", 403), ("commander", 403)])
def test_only_staff_roles_write(service, who, status):
    client, keys = service
    headers = auth(keys, who, **{"If-Match": etag(client)})
    problem(client.post("/v1/sets/s/posts", json=new_post(), headers=headers), status)
    files = {"file": ("r.csv", ROSTER.encode(), "text/csv")}
    problem(client.post("/v1/sets/s/roster", files=files, headers=headers), status)


def test_a_scoped_planner_writes_only_within_its_scope(service):
    client, keys = service
    headers = lambda: auth(keys, "planner@home", **{"If-Match": etag(client)})  # noqa: E731
    inside = client.post("/v1/sets/s/posts", json=new_post(), headers=headers())
    assert inside.status_code == 201, inside.text
    outside = client.post(
        "/v1/sets/s/posts", json=new_post(person_id="P5", unit_code=OTHER_GRID), headers=headers()
    )
    body = problem(outside, 403, OTHER_GRID)
    no_phone(json.dumps(body))
    secretary = next(p for p in client.get("/v1/sets/s/posts").json()["posts"] if p["person_id"] == "P3")
    ended = client.post(
        f"/v1/sets/s/posts/{secretary['post_id']}/end", json={"valid_to": "2026-06-01"}, headers=headers()
    )
    problem(ended, 403, "outside")
    rows = ROSTER + f"\nP6,孙八,13812345678,网格长,网格长,{OTHER_GRID},2026-01-01,,"
    report = client.post(
        "/v1/sets/s/roster", params={"commit": "true"}, content=rows.encode(), headers=headers()
    ).json()
    assert [(e["row"], e["field"], e["person_id"]) for e in report["row_errors"]] == [
        (3, "unit_code", "P3"),
        (4, "unit_code", "P6"),
    ]
    assert report["unchanged"] == 2


# ---- roster uploads --------------------------------------------------------------------------------
def xlsx(text: str) -> bytes:
    book = Workbook()
    for line in text.splitlines():
        book.active.append(line.split(","))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_roster_upload_is_a_dry_run_until_commit(service):
    client, keys = service
    rows = ROSTER.replace("P1,", "P9,").replace(LEADER, "13811112222") + "\n"
    rows += f"P7,周九,{NEW},楼栋长,楼栋长,{GRID}001,2026-02-01,,"
    files = {"file": ("花名册.xlsx", xlsx(rows), "application/octet-stream")}
    dry = client.post("/v1/sets/s/roster", files=files, headers=auth(keys, "planner"))
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["committed"] is False and report["new"] == 2 and report["unchanged"] == 2
    assert report["row_errors"] == [] and {c["person_id"] for c in report["changes"]} == {"P9", "P7"}
    no_phone(dry.text)
    assert client.get("/v1/sets/s/people/P7").status_code == 404
    problem(
        client.post(
            "/v1/sets/s/roster", params={"commit": "true"}, files=files, headers=auth(keys, "planner")
        ),
        428,
    )
    headers = auth(keys, "planner", **{"If-Match": etag(client)})
    done = client.post("/v1/sets/s/roster", params={"commit": "true"}, files=files, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["committed"] is True and done.headers["ETag"] == etag(client)
    assert client.get("/v1/sets/s/people/P7").json()["posts"][0]["role"] == "building_head"
    gbk = {"Content-Type": "text/csv; charset=gbk"}
    raw = client.post(
        "/v1/sets/s/roster",
        params={"commit": "true"},
        content=rows.encode("gbk"),
        headers=auth(keys, "planner", **{"If-Match": etag(client)}, **gbk),
    )
    assert raw.status_code == 200 and raw.json()["unchanged"] == 4 and raw.json()["new"] == 0


def test_an_all_bad_roster_is_422_naming_rows_and_fields_never_phones(service):
    client, keys = service
    rows = "\n".join(
        [
            HEADER,
            f"P8,钱七,1381234,专职网格员,网格员,{GRID},2026-01-01,,",  # malformed phone
            "P9,孙八,13812345678,网格长,网格长,150622999999999,2026-01-01,,",  # unknown unit
            f"P1,张伟,{LEADER},网格长,网格长,{GRID},2025-01-01,,",  # holds it already
        ]
    )
    headers = auth(keys, "planner", **{"If-Match": etag(client)})
    bad = client.post("/v1/sets/s/roster", params={"commit": "true"}, content=rows.encode(), headers=headers)
    body = problem(bad, 422, "row 1", "phone")
    assert [(e["row"], e["field"]) for e in body["row_errors"]] == [
        (1, "phone"),
        (2, "unit_code"),
        (3, "valid_from"),
    ]
    no_phone(bad.text)
    assert "13812345678" not in bad.text
    problem(client.post("/v1/sets/s/roster", content=b"\x00\x01 not a roster", headers=headers), 400)


def test_no_full_phone_in_error_bodies_or_the_access_log(service, caplog):
    client, keys = service
    caplog.set_level(logging.INFO, logger="geogrid.access")
    caplog.set_level(logging.INFO, logger="geogrid.api")
    headers = lambda: auth(keys, "planner", **{"If-Match": etag(client)})  # noqa: E731
    bodies = [
        client.post("/v1/sets/s/posts", json=new_post(phone="1381234567x"), headers=headers()),
        client.post(
            "/v1/sets/s/posts",
            json=new_post(
                person_id="P1",
                name="张伟",
                phone=LEADER,
                role="网格长",
                kind="网格长",
                valid_from="2026-05-01",
            ),
            headers=headers(),
        ),
        client.post("/v1/sets/s/posts", json=new_post(unit_code="150622999"), headers=headers()),
        client.post("/v1/sets/s/posts", json=new_post(phone=12), headers=headers()),
        client.post("/v1/sets/s/posts", json=new_post(phone="1" * 40), headers=headers()),
    ]
    assert [b.status_code for b in bodies] == [422, 409, 400, 422, 422]
    for body in bodies:
        no_phone(body.text)
        assert "1381234567x" not in body.text and "1" * 40 not in body.text
    client.get("/v1/sets/s/people", headers=auth(keys, "commander"))  # full phones in the body, not the log
    client.post("/v1/sets/s/roster", content=ROSTER.encode(), headers=headers())
    deadline = time.monotonic() + 5
    while "/v1/sets/s/roster" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)  # the access log is written in batches a fraction of a second later
    assert "path=/v1/sets/s/people" in caplog.text and "/v1/sets/s/roster" in caplog.text
    no_phone(caplog.text)
    assert "1381234567x" not in caplog.text


def test_a_scoped_planner_cannot_rewrite_a_person_holding_a_post_outside_its_scope(service):
    """P3 is the secretary of another community: the planner of HOME may give her a post in HOME, but not
    change her phone (or name, or kind), neither by a post nor by a roster."""
    client, keys = service
    headers = lambda: auth(keys, "planner@home", **{"If-Match": etag(client)})  # noqa: E731
    p3 = {"person_id": "P3", "name": "王芳", "kind": "社区书记"}
    hijack = client.post("/v1/sets/s/posts", json=new_post(**p3, phone="13666666666"), headers=headers())
    body = problem(hijack, 403, "P3")
    assert body["field"] == "phone" and "13666666666" not in hijack.text
    no_phone(hijack.text)
    rows = HEADER + f"\nP3,王芳,13666666666,社区书记,网格员,{GRID},2026-03-01,,"
    rows += f"\nP1,张伟,{LEADER},网格长,网格员,{GRID}001,2026-03-01,,"
    report = client.post(
        "/v1/sets/s/roster", params={"commit": "true"}, content=rows.encode(), headers=headers()
    )
    assert report.status_code == 200, report.text
    assert [(e["row"], e["field"], e["person_id"]) for e in report.json()["row_errors"]] == [
        (1, "phone", "P3")
    ]
    assert "13666666666" not in report.text and report.json()["new"] == 1
    no_phone(report.text)
    person = client.get("/v1/sets/s/people/P3", headers=auth(keys, "commander")).json()
    assert person["phone"] == SECRETARY and [p["unit_code"] for p in person["posts"]] == [OTHER]
    same = client.post("/v1/sets/s/posts", json=new_post(**p3, phone=SECRETARY), headers=headers())
    assert same.status_code == 201, same.text


@pytest.mark.parametrize("write", ["create", "end"])
def test_a_write_that_committed_is_not_reported_failed_when_the_revision_cannot_be_read_after(
    service, monkeypatch, write
):
    """The new ETag comes from the write itself: no query after the commit that could fail and make a
    written post look like a failure (503)."""
    client, keys = service
    store = client.app.state.service.store
    real, calls = store.revision, []

    def revision_then_away(set_name: str) -> int:
        calls.append(set_name)
        if len(calls) > 1:  # the If-Match check reads it once, before the write
            raise sa.exc.OperationalError("SELECT revision", {}, Exception("the database went away"))
        return real(set_name)

    before = etag(client)
    post_id = next(
        p["post_id"] for p in client.get("/v1/sets/s/posts").json()["posts"] if p["person_id"] == "P2"
    )
    monkeypatch.setattr(store, "revision", revision_then_away)
    headers = auth(keys, "planner", **{"If-Match": before})
    if write == "create":
        done = client.post("/v1/sets/s/posts", json=new_post(), headers=headers)
        assert done.status_code == 201, done.text
    else:
        done = client.post(
            f"/v1/sets/s/posts/{post_id}/end", json={"valid_to": "2026-06-01"}, headers=headers
        )
        assert done.status_code == 200, done.text
    monkeypatch.undo()
    assert done.headers["ETag"] == etag(client) != before and len(calls) == 1
