"""The request lifecycle on both databases: a write that times out leaves nothing written, work whose
client was told 503 stops; clients that hang up, send too much, send too slowly, or guess keys."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

import geogrid.db.imports as store_module
from api.main import create_app
from api.middleware import Deadline as DeadlineMiddleware
from geogrid import deadline
from geogrid.db import Store
from geogrid.settings import DEMO_ADMIN_KEY, Settings
from tests.api.test_writes import LEVELS, db, street  # noqa: F401 (db: the per-backend fixture)
from tests.conftest import empty_store

ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}", "If-Match": "*"}
TIMEOUTS = (0.05, 0.2, 1.0, 5.0, 25.0)  # tiny first; longer only if a loaded machine did not get there


@pytest.fixture
def service(db, demo_layers, tmp_path):  # noqa: F811 (the imported fixture)
    """One street published as set 's' from 2026-01-01, and a client on the service."""
    store = empty_store(db)
    for name, level in LEVELS:
        store.import_units("s", street(demo_layers, name), level, commit=True)
    store.publish("s", dt.date(2026, 1, 1))
    settings = Settings(
        database_url=db.url.render_as_string(hide_password=False),
        cache_dir=str(tmp_path / "cache"),
        default_set="s",
        rate_limit_per_minute=0,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, app, store


def deadline_middleware(app: Any) -> DeadlineMiddleware:
    """The app's Deadline middleware (in the chain in front of FastAPI)."""
    layer = app.front
    while not isinstance(layer, DeadlineMiddleware):
        layer = layer.app
    return layer


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (bounded only to keep a broken build from hanging the suite)."""
    give_up = time.monotonic() + 120
    while not condition() and time.monotonic() < give_up:
        time.sleep(0.002)


def stall_after(
    monkeypatch, owner: Any, name: str, until: Callable[[deadline.Deadline], bool]
) -> threading.Event:
    """Make ``owner.name`` (a step of the work) do its part, then wait until ``until(current deadline)``."""
    original = getattr(owner, name)
    reached = threading.Event()

    def stalled(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        current = deadline.current()
        assert current is not None, "the request's deadline did not reach the thread doing the work"
        reached.set()
        wait_for(lambda: until(current))
        return out

    monkeypatch.setattr(owner, name, stalled)
    return reached


def timed_out(app: Any, reached: threading.Event, request: Callable[[], Any]) -> Any:
    """Send ``request`` with a tiny deadline, longer ones only until the stalled step was reached."""
    middleware = deadline_middleware(app)
    for timeout in TIMEOUTS:
        middleware.timeout_s = timeout
        response = request()
        assert response.status_code == 503, response.text
        assert response.json()["type"].endswith("/request-timeout")
        if reached.is_set():
            return response
    pytest.fail("the stalled step was never reached")


def microgrids_file(demo_layers: dict[str, Any]) -> bytes:
    return street(demo_layers, "microgrids").iloc[:3].to_json().encode()


def actions(store: Store) -> list[str]:
    return [row["action"] for row in store.audit("s")]


def test_an_upload_that_times_out_before_its_commit_writes_nothing(service, demo_layers, monkeypatch):
    client, app, store = service
    before = actions(store)
    # The rows are in the transaction when the client is told 503; then the commit is refused.
    reached = stall_after(monkeypatch, store_module, "_insert_units", lambda d: d.expired)
    timed_out(
        app,
        reached,
        lambda: client.post(
            "/v1/sets/s/draft/microgrid?commit=true",
            headers=ADMIN,
            files={"file": ("m.geojson", microgrids_file(demo_layers))},
        ),
    )
    assert [v.status for v in store.versions("s")] == ["published"]  # no draft
    assert actions(store) == before  # no audit line


def test_a_publish_that_times_out_before_its_commit_stays_a_draft(service, demo_layers, monkeypatch):
    client, app, store = service
    store.import_units("s", street(demo_layers, "microgrids"), "microgrid", commit=True)
    before = actions(store)
    reached = stall_after(monkeypatch, Store, "_audit", lambda d: d.expired)
    timed_out(
        app,
        reached,
        lambda: client.post("/v1/sets/s/publish", headers=ADMIN, json={"valid_from": "2027-01-01"}),
    )
    assert [v.status for v in store.versions("s")] == ["published", "draft"]
    assert actions(store) == before


def test_a_timed_out_dry_run_stops_at_its_next_checkpoint(service, demo_layers, monkeypatch):
    client, app, store = service
    reached = stall_after(monkeypatch, store_module, "compare", lambda d: d.expired)
    later: list[str] = []
    original = store_module._hierarchy_warnings
    monkeypatch.setattr(store_module, "_hierarchy_warnings", lambda *a: later.append("ran") or original(*a))
    timed_out(
        app,
        reached,
        lambda: client.post(
            "/v1/sets/s/draft/microgrid",
            headers=ADMIN,
            files={"file": ("m.geojson", microgrids_file(demo_layers))},
        ),
    )
    assert later == []  # the work after the checkpoint never ran


def test_a_write_that_committed_in_time_gives_its_own_answer(service, demo_layers, monkeypatch):
    client, app, store = service
    told: list[bool] = []
    original = deadline.Deadline.expire

    def expire(self: deadline.Deadline) -> bool:
        told.append(original(self))
        return told[-1]

    monkeypatch.setattr(deadline.Deadline, "expire", expire)
    # After the commit, the request goes on past its deadline (re-reading the set) until the server's
    # timer has fired: the client must hear the write's real answer, not 503.
    monkeypatch.setattr(type(app.state.service), "changed", lambda self, name: wait_for(lambda: bool(told)))
    for timeout in TIMEOUTS:
        deadline_middleware(app).timeout_s = timeout
        told.clear()
        response = client.post(
            "/v1/sets/s/draft/microgrid?commit=true",
            headers=ADMIN,
            files={"file": ("m.geojson", microgrids_file(demo_layers))},
        )
        if told == [False]:  # the timer fired, and found the write committing
            break
        assert response.status_code == 503, told  # a loaded machine: timed out before the commit, try longer
    assert told == [False]
    assert response.status_code == 200, response.text
    assert response.json()["committed"] is True
    assert [v.status for v in store.versions("s")] == ["published", "draft"]
    assert actions(store).count("import") == len(LEVELS) + 1
