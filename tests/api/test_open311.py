"""Open311 GeoReport v2 on both databases: services and definitions, the spec's example POST, requests by
id, service code, status and dates, one request and a token, in JSON and XML; errors in the spec's shape
(not problem+json); and a real Open311 client library (georeport, from PyPI) against a running server."""

from __future__ import annotations

import datetime as dt
import threading
import time
import xml.etree.ElementTree as ET  # parses our own server's answers only
from urllib.parse import urlencode

import pytest
import requests
import uvicorn
from fastapi.testclient import TestClient
from georeport import GeoReport

from api.main import create_app
from geogrid.incidents.catalogue import catalogue
from geogrid.settings import Settings
from tests.api import test_incidents
from tests.api.test_service import free_port

db, county = test_incidents.db, test_incidents.county  # its module fixtures: one street as set "s"
PHONE = "13812341234"
SPEC_URL = "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg"
PUBLIC = ("reporter_name", "reporter_phone", "first_name", "last_name", "phone", "email")


def settings_for(db, folder, **more) -> Settings:
    return Settings(
        **more,
        database_url=db.url.render_as_string(hide_password=False),
        cache_dir=str(folder),
        default_set="s",
        environment="test",
        admin_key="test-admin-key-0123456789abcdef",
        rate_limit_per_minute=0,
    )


@pytest.fixture(scope="module")
def client(db, county, tmp_path_factory):
    with TestClient(create_app(settings_for(db, tmp_path_factory.mktemp("cache")))) as c:
        yield c


def key(county, who="reporter"):
    return county["keys"][who]


def viewer(county):
    """Headers of a read-only key: reading requests needs one."""
    return {"X-API-Key": key(county, "viewer")}


def spec_example(county, **more):
    """The spec's example POST (wiki.open311.org/GeoReport_v2), with a code and a point of this county."""
    lon, lat = county["point_a"]
    pairs = {
        "api_key": key(county),
        "jurisdiction_id": "s",
        "service_code": "E0102",
        "lat": f"{lat:.8f}",
        "long": f"{lon:.8f}",
        "address_string": "1234 5th street",
        "email": "smit333@sfgov.edu",
        "device_id": "tt222111",
        "account_id": "123456",
        "first_name": "john",
        "last_name": "smith",
        "phone": "111111111",
        "description": "A large sinkhole is destroying the street",
        "media_url": SPEC_URL,
        "attribute[WHISPAWN]": "123456",
        "attribute[WHISDORN]": "COISL001",
    }
    return pairs | more


def post(client, data, fmt="json", **headers):
    """POST form-encoded, as the spec sends it."""
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **headers}
    return client.post(f"/open311/v2/requests.{fmt}", content=urlencode(data), headers=headers)


def new_request(client, county, **more):
    got = post(client, spec_example(county, **more))
    assert got.status_code == 201, got.text
    return got.json()[0]["service_request_id"]


def xml_of(response) -> ET.Element:
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)


def spec_error(response, status: int, *words: str, fmt: str = "json") -> str:
    """Assert an error in the spec's shape (not problem+json) of ``status`` saying every word; its text."""
    assert response.status_code == status, response.text
    if fmt == "json":
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        [error] = response.json()
        assert set(error) == {"code", "description"} and error["code"] == status
        text = error["description"]
    else:
        root = xml_of(response)
        assert root.tag == "errors" and [e.tag for e in root] == ["error"]
        assert root.findtext("error/code") == str(status)
        text = root.findtext("error/description") or ""
    for word in words:
        assert word in text, text
    return text


# ---- services --------------------------------------------------------------------------------------
def test_the_service_list_is_the_catalogue_in_json_and_xml(client):
    as_json = client.get("/open311/v2/services.json")
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json; charset=utf-8"
    services = as_json.json()
    assert [s["service_code"] for s in services] == [s.code for s in catalogue()]
    rubbish = next(s for s in services if s["service_code"] == "E0102")
    assert rubbish["service_name"] == "暴露垃圾" and rubbish["group"] == "市容环境"
    assert (rubbish["metadata"], rubbish["type"]) == (False, "realtime")
    assert "限时 2 个工作小时" in rubbish["description"] and rubbish["keywords"]
    root = xml_of(client.get("/open311/v2/services.xml", params={"jurisdiction_id": "s"}))
    assert root.tag == "services" and {e.tag for e in root} == {"service"}
    assert [e.findtext("service_code") for e in root] == [s["service_code"] for s in services]
    first = root[0]
    for field in ("service_name", "description", "metadata", "type", "keywords", "group"):
        assert first.find(field) is not None, field
    assert first.findtext("metadata") == "false" and first.findtext("type") == "realtime"


def test_a_service_definition_has_no_attributes(client):
    assert client.get("/open311/v2/services/E0102.json").json() == {"service_code": "E0102", "attributes": []}
    root = xml_of(client.get("/open311/v2/services/E0102.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "E0102"
    assert root.find("attributes") is not None and len(root.find("attributes")) == 0


def test_discovery_names_the_endpoint_and_its_formats(client):
    body = client.get("/open311/v2/discovery.json").json()
    [endpoint] = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2") and "application/json" in endpoint["formats"]
    root = xml_of(client.get("/open311/v2/discovery.xml"))
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == [
        "text/xml",
        "application/json",
    ]


# ---- POST ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_spec_example_post_makes_an_incident(client, county, fmt):
    got = post(client, spec_example(county), fmt)
    assert got.status_code == 201, got.text
    if fmt == "json":
        [created] = got.json()
        rid, account = created["service_request_id"], created["account_id"]
        assert "token" not in created and "暴露垃圾" in created["service_notice"]
    else:
        root = xml_of(got)
        assert root.tag == "service_requests" and [e.tag for e in root] == ["request"]
        rid, account = root.findtext("request/service_request_id"), root.findtext("request/account_id")
        assert root.find("request/token") is None
    assert isinstance(rid, str) and rid.isdigit() and account == "123456"
    assert got.headers["Location"] == f"/open311/v2/requests/{rid}.{fmt}"
    # stored as an incident of the open311 channel, placed by the version in force today
    stored = client.get(f"/v1/incidents/{rid}", headers={"X-API-Key": key(county, "commander")}).json()
    assert (stored["channel"], stored["category"], stored["microgrid"]) == ("open311", "E0102", county["b"])
    assert (stored["reporter_name"], stored["reporter_phone"]) == ("john smith", "111111111")
    assert stored["media"] == [SPEC_URL] and stored["description"].startswith("A large sinkhole")


def test_a_json_body_and_a_header_key_are_taken_too(client, county):
    lon, lat = county["point_a"]
    data = {"service_code": "E0102", "lat": lat, "long": lon, "first_name": "伟", "last_name": "张"}
    got = client.post("/open311/v2/requests.json", json=data, headers={"X-API-Key": key(county)})
    assert got.status_code == 201, got.text
    rid = got.json()[0]["service_request_id"]
    stored = client.get(f"/v1/incidents/{rid}", headers={"X-API-Key": key(county, "commander")}).json()
    assert stored["reporter_name"] == "张伟"  # family name first, as GeoGrid masks it
    assert stored["description"] == "暴露垃圾"  # the spec's description is optional: the service's name


def test_a_retry_with_an_idempotency_key_returns_the_first_request(client, county):
    first = post(client, spec_example(county), "json", **{"Idempotency-Key": "open311-retry-1"})
    again = post(client, spec_example(county), "json", **{"Idempotency-Key": "open311-retry-1"})
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()[0]["service_request_id"] == first.json()[0]["service_request_id"]
    other = post(
        client, spec_example(county, description="另一件事"), "xml", **{"Idempotency-Key": "open311-retry-1"}
    )
    assert other.status_code in (400, 422), other.text  # the key of another request: refused, spec-shaped
    assert xml_of(other).tag == "errors"
    without = [post(client, spec_example(county)) for _ in range(2)]  # no key: two requests, two incidents
    assert len({w.json()[0]["service_request_id"] for w in without}) == 2


# ---- GET requests ----------------------------------------------------------------------------------
def test_requests_by_service_code_status_dates_and_ids(client, county):
    first = new_request(client, county, description=f"垃圾 回电 {PHONE}")
    second = new_request(client, county, service_code="E0103")
    voided = new_request(client, county)
    commander = {"X-API-Key": key(county, "commander")}
    note = {"action": "void", "note": f"重复上报，回电 {PHONE}"}
    assert client.post(f"/v1/incidents/{voided}/actions", json=note, headers=commander).status_code == 200

    def ids(fmt="json", **params):
        got = client.get(f"/open311/v2/requests.{fmt}", params=params, headers=viewer(county))
        assert got.status_code == 200, got.text
        if fmt == "xml":
            return [e.findtext("service_request_id") for e in xml_of(got)]
        return [r["service_request_id"] for r in got.json()]

    everything = ids()
    assert everything.index(voided) < everything.index(second) < everything.index(first)  # newest first
    assert ids(fmt="xml") == everything
    assert first in ids(service_code="E0102") and second not in ids(service_code="E0102")
    assert {first, second} <= set(ids(service_code="E0102,E0103"))
    assert voided in ids(status="closed") and voided not in ids(status="open")
    assert first in ids(status="open") and first not in ids(status="closed")
    assert {first, voided} <= set(ids(status="open,closed"))
    now = dt.datetime.now(dt.UTC)

    def w3(t):
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    assert first in ids(start_date=w3(now - dt.timedelta(hours=1)), end_date=w3(now + dt.timedelta(hours=1)))
    assert ids(start_date=w3(now + dt.timedelta(hours=1))) == []
    assert ids(end_date="2026-01-02T00:00:00+08:00") == []  # the 90 days before: nothing yet
    assert first in ids(start_date=(now - dt.timedelta(minutes=10)).isoformat())  # an offset, not Z
    # a list of ids overrides every other filter
    assert ids(service_request_id=f"{first},{voided}", service_code="E0103", status="open") == [voided, first]
    assert ids(service_request_id="999999") == []
    # public: no reporter, phones masked, the last log note as status_notes, GeoGrid's fields as extensions
    rows = {
        r["service_request_id"]: r
        for r in client.get("/open311/v2/requests.json", headers=viewer(county)).json()
    }
    assert PHONE not in str(rows) and not set(PUBLIC) & set(rows[first])
    assert rows[voided]["status"] == "closed" and rows[voided]["geogrid_state"] == "void"
    assert rows[voided]["status_notes"].startswith("重复上报") and "1234" in rows[voided]["status_notes"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_one_request_in_both_formats(client, county, fmt):
    rid = new_request(client, county, description=f"井盖松动 回电 {PHONE}")
    got = client.get(
        f"/open311/v2/requests/{rid}.{fmt}", params={"jurisdiction_id": "s"}, headers=viewer(county)
    )
    assert got.status_code == 200, got.text
    if fmt == "json":
        [row] = got.json()
    else:
        root = xml_of(got)
        assert root.tag == "service_requests" and [e.tag for e in root] == ["request"]
        row = {e.tag: e.text for e in root[0]}
    assert row["service_request_id"] == rid and row["status"] == "open" and row["service_code"] == "E0102"
    assert row["service_name"] == "暴露垃圾" and PHONE not in row["description"]
    assert row["agency_responsible"].startswith("grid")
    assert row["geogrid_microgrid"] == county["b"] and row["geogrid_grid"] == county["b"][:15]
    assert row["geogrid_state"] == "reported" and row["media_url"] == SPEC_URL
    assert row["expected_datetime"] == row["geogrid_deadline"] and row["expected_datetime"].endswith("+08:00")
    requested = dt.datetime.fromisoformat(row["requested_datetime"])
    assert requested.tzinfo is not None and abs(requested - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert (
        abs(float(row["lat"]) - county["point_a"][1]) < 1e-6
        and abs(float(row["long"]) - county["point_a"][0]) < 1e-6
    )
    assert not set(PUBLIC) & set(row)


def test_a_token_is_the_request_id(client, county):
    rid = new_request(client, county)
    got = client.get(f"/open311/v2/tokens/{rid}.json", headers=viewer(county))
    assert got.json() == [{"service_request_id": rid, "token": rid}]
    root = xml_of(client.get(f"/open311/v2/tokens/{rid}.xml", headers=viewer(county)))
    assert (root.findtext("request/service_request_id"), root.findtext("request/token")) == (rid, rid)
    spec_error(client.get("/open311/v2/tokens/999999.xml", headers=viewer(county)), 404, "999999", fmt="xml")
    # incidents are no public data: reading requests needs a key (services and discovery do not)
    spec_error(client.get(f"/open311/v2/requests/{rid}.json"), 403, "api_key")
    spec_error(client.get("/open311/v2/requests.xml"), 403, "api_key", fmt="xml")


def test_scope_and_role_limit_who_reads_and_reports(client, county):
    rid = new_request(client, county)
    other = {"X-API-Key": key(county, "worker@other")}
    assert rid not in [
        r["service_request_id"] for r in client.get("/open311/v2/requests.json", headers=other).json()
    ]
    spec_error(client.get(f"/open311/v2/requests/{rid}.json", headers=other), 404)
    spec_error(post(client, spec_example(county, api_key=key(county, "worker@other"))), 403, "outside")
    spec_error(post(client, spec_example(county, api_key=key(county, "viewer")), "xml"), 403, fmt="xml")


# ---- errors in the spec's shape --------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"service_code": "NOPE"}, 404, ("service_code", "NOPE")),
        ({"service_code": ""}, 400, ("service_code",)),
        ({"lat": "", "long": "", "address_string": ""}, 400, ("location", "lat")),
        ({"lat": "", "long": "", "address_string": "", "address_id": "545483"}, 400, ("address_id",)),
        ({"long": ""}, 400, ("long",)),
        ({"lat": "north"}, 400, ("lat",)),
        ({"api_key": "gg_not-a-key"}, 403, ("API key",)),
        ({"api_key": ""}, 403, ("api_key",)),
        ({"api_key": None}, 403, ("api_key",)),
        ({"jurisdiction_id": "city.gov"}, 404, ("jurisdiction_id", "city.gov")),
        ({"lat": "37.76524078", "long": "-122.4212043"}, 400, ()),  # the spec's own point: not this county
        ({"media_url": "javascript:alert(1)"}, 400, ("media",)),
    ],
)
def test_a_bad_post_is_an_error_in_the_spec_shape(client, county, fmt, change, status, words):
    data = {k: v for k, v in (spec_example(county) | change).items() if v is not None}
    spec_error(post(client, data, fmt), status, *words, fmt=fmt)


@pytest.mark.parametrize(
    ("path", "params", "status", "words", "fmt"),
    [
        ("/open311/v2/services/NOPE.json", {}, 404, ("NOPE",), "json"),
        ("/open311/v2/services/NOPE.xml", {}, 404, ("NOPE",), "xml"),
        ("/open311/v2/services.json", {"jurisdiction_id": "city.gov"}, 404, ("city.gov",), "json"),
        ("/open311/v2/requests.xml", {"jurisdiction_id": "city.gov"}, 404, ("city.gov",), "xml"),
        ("/open311/v2/requests/999999.json", {}, 404, ("999999",), "json"),
        ("/open311/v2/requests/abc.xml", {}, 404, ("abc",), "xml"),
        ("/open311/v2/requests.json", {"status": "pending"}, 400, ("status",), "json"),
        ("/open311/v2/requests.json", {"start_date": "2026-07-01"}, 400, ("start_date", "w3"), "json"),
        ("/open311/v2/requests.json", {"service_request_id": "1,x"}, 400, ("service_request_id",), "json"),
        ("/open311/v2/requests.json", {"status": "o" * 21}, 400, ("status",), "json"),  # FastAPI's own check
        ("/open311/v2/requests.json", {"api_key": "gg_not-a-key"}, 403, ("API key",), "json"),
        ("/open311/v2/services.yaml", {}, 400, ("format",), "xml"),  # XML: the spec's required format
        ("/open311/v2/services", {}, 404, ("services.xml",), "xml"),
        ("/open311/v2/nothing.json", {}, 404, ("nothing",), "json"),
    ],
)
def test_a_bad_get_is_an_error_in_the_spec_shape(client, county, path, params, status, words, fmt):
    headers = {} if "api_key" in params else viewer(county)
    spec_error(client.get(path, params=params, headers=headers), status, *words, fmt=fmt)


def test_other_routes_keep_problem_json(client, county):
    got = client.get("/v1/incidents/999999", headers=viewer(county))
    assert got.status_code == 404 and got.headers["content-type"].startswith("application/problem+json")


# ---- a real Open311 client against a running server ------------------------------------------------
@pytest.fixture(scope="module")
def server(db, county, tmp_path_factory):
    """The app under uvicorn on a free loopback port, in a thread; its Open311 endpoint's URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings_for(db, tmp_path_factory.mktemp("served"), open311_public_requests=True)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    give_up = time.monotonic() + 120
    while not running.started:
        assert thread.is_alive() and time.monotonic() < give_up, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/open311/v2"
    finally:
        running.should_exit = True
        thread.join(timeout=30)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_georeport_client_reads_services_and_requests(server, county, fmt):
    """georeport (PyPI) reads what a city's Open311 server would serve; it cannot POST, so requests does."""
    made = requests.post(f"{server}/requests.{fmt}", data=spec_example(county), timeout=60)
    assert made.status_code == 201, made.text
    rid = (
        made.json()[0]["service_request_id"]
        if fmt == "json"
        else xml_of(made).findtext("request/service_request_id")
    )
    client = GeoReport(server, jurisdiction="s", output_format=fmt)  # as the spec has it: reads need no key
    services = client.get_service_list()
    assert [s["service_code"] for s in services] == [s.code for s in catalogue()]
    definition = client.get_service_definition("E0102")
    assert definition["service_code"] == "E0102" and not definition["attributes"]
    found = client.get_service_requests(service_code="E0102", status="open")
    found = found if isinstance(found, list) else [found]  # xmltodict: one element is no list
    assert rid in [r["service_request_id"] for r in found]
    one = client.get_service_request(rid)
    assert (
        one["service_request_id"] == rid
        and one["status"] == "open"
        and one["geogrid_microgrid"] == county["b"]
    )
    assert client.get_service_requests(service_request_id=rid, status="closed")  # ids override the status
    with pytest.raises(requests.HTTPError) as refused:
        GeoReport(server, jurisdiction="city.gov", output_format=fmt).get_service_list()
    spec_error(refused.value.response, 404, "city.gov", fmt=fmt)
