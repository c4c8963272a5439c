"""What the service holds between requests: the database is read in the background, never on the event loop,
and lookups go on from memory while the database is away."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

import api.state
from api.main import create_app
from geogrid.access import Role
from geogrid.db.keys import Keys
from geogrid.index import GridIndex
from geogrid.settings import Settings

TODAY = dt.date.today()


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def service(store, demo_layers, tmp_path):
    """The micro-grids published a month ago (v1), a service re-reading versions on every request, and an
    API key; yields (client, state, key, one micro-grid's point and code)."""
    micro = demo_layers["microgrids"]
    store.import_units("demo", micro, "microgrid", commit=True)
    store.publish("demo", TODAY - dt.timedelta(days=30))
    key = Keys(store.engine).create("caller", Role.viewer)[1]
    url = store.engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url, cache_dir=str(tmp_path / "cache"), version_cache_s=0)
    x, y = micro.geometry.iloc[7].representative_point().coords[0]
    with TestClient(create_app(settings)) as client:
        yield client, client.app.state.service, key, (x, y), micro["code"].iloc[7]


def watch(monkeypatch, state, calls):
    """Record, for every database read the service makes, whether it ran on the event loop."""
    for owner, name in ((state.store, "versions"), (state.keys, "resolve")):
        original = getattr(owner, name)

        def recorded(*args, _original=original, _name=name, **kwargs):
            calls.append((_name, on_event_loop()))
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, recorded)
    build = GridIndex.from_version.__func__

    def recorded_build(cls, *args, **kwargs):
        calls.append(("build", on_event_loop()))
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(GridIndex, "from_version", classmethod(recorded_build))


def until(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the background reader did not catch up"
        time.sleep(0.05)


def test_the_event_loop_never_waits_on_the_database(service, store, demo_layers, monkeypatch):
    client, state, key, (x, y), code = service
    calls: list[tuple[str, bool]] = []
    watch(monkeypatch, state, calls)
    monkeypatch.setattr(api.state, "KEY_CACHE_S", 0.0)
    bearer = {"Authorization": f"Bearer {key}"}
    for headers in ({}, bearer, bearer, {}):  # a new key (resolved by the route), then a known one
        response = client.get("/v1/lookup", params={"lon": x, "lat": y}, headers=headers)
        assert response.status_code == 200 and response.json()["unit"]["code"] == code
    # Another process publishes v2 from yesterday (without micro-grid 7): the background reader loads its
    # index before the service switches to it, and the lookups go on meanwhile.
    store.import_units("demo", demo_layers["microgrids"].drop(index=7), "microgrid", commit=True)
    store.publish("demo", TODAY - dt.timedelta(days=1))

    def switched() -> bool:
        body = client.get("/v1/lookup", params={"lon": x, "lat": y}, headers=bearer).json()
        assert body["version"] == 2 or body["unit"]["code"] == code
        return body["version"] == 2

    until(switched)
    assert client.get("/v1/lookup", params={"lon": x, "lat": y}).json()["unit"] is None
    # v1 as of a date two weeks ago: not in memory any more, so the route builds it in a worker thread.
    old = client.get("/v1/lookup", params={"lon": x, "lat": y, "at": str(TODAY - dt.timedelta(days=14))})
    assert old.json()["version"] == 1 and old.json()["unit"]["code"] == code
    batch = client.post("/v1/lookup", json=[{"lon": x, "lat": y}], headers=bearer)
    assert batch.json()["version"] == 2 and batch.json()["results"][0]["unit_code"] is None
    assert {name for name, _ in calls} == {"versions", "resolve", "build"}, calls
    assert not [call for call in calls if call[1]], f"database read on the event loop: {calls}"


def test_lookups_go_on_while_the_database_is_away(service, monkeypatch, caplog):
    client, state, key, (x, y), code = service
    bearer = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/lookup", params={"lon": x, "lat": y}, headers=bearer).status_code == 200
    monkeypatch.setattr(api.state, "KEY_CACHE_S", 0.0)
    state.forget_keys()
    state.principal(key)  # known, and due to be resolved again at once

    def away(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT …", {}, ConnectionRefusedError("the database is away"))

    monkeypatch.setattr(state.store, "versions", away)
    monkeypatch.setattr(state.keys, "resolve", away)
    with caplog.at_level(logging.WARNING, logger="geogrid.api"):
        for _ in range(20):
            for headers in ({}, bearer):
                response = client.get("/v1/lookup", params={"lon": x, "lat": y}, headers=headers)
                assert response.status_code == 200, response.text
                assert response.json()["unit"]["code"] == code
            time.sleep(0.01)
        until(lambda: "could not re-read versions" in caplog.text and "could not re-read key" in caplog.text)
    assert key not in caplog.text  # the key itself is never logged
    stranger = client.get("/v1/lookup", params={"lon": x, "lat": y}, headers={"X-API-Key": "gg_" + "x" * 40})
    assert (
        stranger.status_code == 503 and stranger.headers["Retry-After"] == "5"
    )  # a new key needs the database
    assert stranger.json()["type"].endswith("/database-unavailable") and "Traceback" not in stranger.text
    assert client.get("/readyz").json()["indexes"] == [{"set": "demo", "version": 1}]
    monkeypatch.undo()  # the database is back: the next re-read succeeds and lookups never noticed
    until(lambda: not state._queued)
    assert client.get("/v1/lookup", params={"lon": x, "lat": y}, headers=bearer).status_code == 200


def test_a_revocation_is_not_undone_by_a_resolution_in_flight(service):
    client, state, key, _, _ = service
    assert state.principal(key) is not None
    generation = state._keys_generation
    state.forget_keys()
    assert state._keys_generation == generation + 1
    # A resolution that began before the revocation finishes after it: its answer is not kept.
    resolve = state.keys.resolve

    def slow(k):
        found = resolve(k)
        state.forget_keys()  # the revocation lands while this read is in flight
        return found

    state.keys.resolve = slow
    state._resolve(key)
    assert key not in state._principals
