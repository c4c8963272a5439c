"""Connect to PostGIS or SpatiaLite, loading SpatiaLite through whichever SQLite module can."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from geogrid import deadline
from geogrid.errors import SpatialiteUnavailable
from geogrid.settings import Settings

SQLITE_MODULES = ("sqlite3", "pysqlite3.dbapi2")


def sqlite_module() -> ModuleType:
    """Return the first SQLite DB-API module that can load extensions (stdlib first, then pysqlite3)."""
    for name in SQLITE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module.Connection, "enable_load_extension"):
            return module
    raise SpatialiteUnavailable(
        "this Python's sqlite3 cannot load extensions (built without --enable-loadable-sqlite-extensions, "
        "common with pyenv and macOS). Install pysqlite3-binary (pip install pysqlite3-binary), or use a "
        "Python whose sqlite3 can, or point GEOGRID_DATABASE_URL at PostGIS."
    )


def create_engine(settings: Settings, **kwargs: Any) -> Engine:
    """Create an engine for ``settings.database_url`` (PostGIS or a SpatiaLite file).

    Statement parameters are kept out of its error messages and logs: they carry names, phones and
    hotline texts, and an error is logged.
    """
    kwargs.setdefault("hide_parameters", True)
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        # as many connections kept as requests may run at once: one opened and closed per request beyond
        # the pool would cost a PostgreSQL backend start each time
        kwargs.setdefault("pool_size", settings.database_pool_size)
        kwargs.setdefault("max_overflow", settings.database_pool_size)
        return watch_commits(sa.create_engine(url, pool_pre_ping=True, **kwargs))
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, module=sqlite_module(), **kwargs)
    library = settings.spatialite_library

    @event.listens_for(engine, "connect")
    def _load_spatialite(dbapi_conn: Any, _record: Any) -> None:
        try:
            dbapi_conn.enable_load_extension(True)
            dbapi_conn.load_extension(library)
            dbapi_conn.enable_load_extension(False)
        except Exception as exc:
            raise SpatialiteUnavailable(
                f"cannot load the SpatiaLite extension {library!r}: {exc}. On Debian/Ubuntu: apt-get install "
                "libsqlite3-mod-spatialite; on macOS: brew install libspatialite; or set "
                "GEOGRID_SPATIALITE_LIBRARY to its path."
            ) from exc
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    return watch_commits(engine)


UNFLUSHED = "geogrid_unflushed"  # conn.info's shares held back by geogrid.db.incident_kpis.defer


def watch_commits(engine: Engine) -> Engine:
    """Ask the request's deadline (geogrid.deadline) before every commit: one that writes is refused once
    the client was told the request timed out (the transaction rolls back), or else holds the deadline off.

    The ``commit`` event fires before COMMIT is sent; what it raises propagates out of ``commit()``, and the
    connection's return to the pool rolls the transaction back.
    """

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.info["geogrid_wrote"] = False
        conn.info.pop(UNFLUSHED, None)  # a transaction rolled back leaves nothing held

    @event.listens_for(engine, "before_cursor_execute")
    def _note_write(
        conn: sa.Connection, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        # Anything but a SELECT counts as a write: a wrong guess only makes a request wait for its answer.
        if not conn.info.get("geogrid_wrote", True) and statement.lstrip()[:6].upper() != "SELECT":
            conn.info["geogrid_wrote"] = True

    @event.listens_for(engine, "commit")
    def _commit(conn: sa.Connection) -> None:
        if conn.info.get(UNFLUSHED):  # geogrid.db.incident_kpis.defer without its flush: a bug
            raise RuntimeError("incident tallies held back and never written; flush them before the commit")
        if conn.info.get("geogrid_wrote", True):
            deadline.begin_commit()
        else:
            deadline.check()

    return engine
