"""A request's deadline and the database: a commit after the deadline is refused and rolled back."""

from __future__ import annotations

import contextvars
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from geogrid import deadline
from geogrid.db.schema import audit_log
from geogrid.errors import RequestTimeout


def _audit_row(conn: sa.Connection, action: str) -> None:
    conn.execute(
        sa.insert(audit_log).values(at=dt.datetime.now(dt.UTC), actor="tester", action=action, detail={})
    )


def _count(engine: sa.Engine, action: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(audit_log.c.action == action)).scalar_one())


def test_a_commit_after_the_deadline_is_refused_and_rolled_back(store):
    engine = store.engine
    with deadline.running(60) as current, pytest.raises(RequestTimeout), engine.begin() as conn:
        _audit_row(conn, "late")
        assert current.expire()  # the server tells the client 503 while the write is under way
    assert _count(engine, "late") == 0
    with engine.connect() as conn:  # the connection went back to the pool clean, and is usable
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_a_commit_in_time_holds_the_deadline_off(store):
    engine = store.engine
    with deadline.running(60) as current:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert current.state == deadline.RUNNING  # a read-only commit begins nothing
        with engine.begin() as conn:
            _audit_row(conn, "in-time")
        assert current.state == deadline.COMMITTING
        assert not current.expire()  # the write is done: the client must hear so
        current.check()  # and work after it goes on
    assert _count(engine, "in-time") == 1


def test_without_a_deadline_nothing_changes(store):
    with store.engine.begin() as conn:
        _audit_row(conn, "cli")
    assert _count(store.engine, "cli") == 1


def test_check_raises_once_expired_and_threads_inherit_the_deadline():
    deadline.check()  # no deadline: nothing
    with deadline.running(60) as current:
        current.check()
        current.expire()
        with pytest.raises(RequestTimeout, match="GEOGRID_REQUEST_TIMEOUT_S"):
            deadline.check()
        with pytest.raises(RequestTimeout):
            deadline.begin_commit()
    with deadline.running(0) as due:  # due, though no one has called expire yet
        with pytest.raises(RequestTimeout):
            deadline.check()
        assert due.expired


def _commit(ready: threading.Barrier, committed: list[bool]) -> None:
    ready.wait()
    try:
        deadline.begin_commit()
        committed.append(True)
    except RequestTimeout:
        committed.append(False)


def test_expire_and_begin_commit_decide_once_whoever_comes_first():
    for _ in range(200):
        with deadline.running(60) as current:
            ready, committed = threading.Barrier(2), []
            context = contextvars.copy_context()
            thread = threading.Thread(target=context.run, args=(_commit, ready, committed))
            thread.start()
            ready.wait()
            expired = current.expire()
            thread.join()
            assert expired != committed[0]  # exactly one of them won, whichever the scheduler let first
