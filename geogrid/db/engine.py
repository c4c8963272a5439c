"""Connect to PostGIS or SpatiaLite, loading SpatiaLite through whichever SQLite module can."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

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
    """Create an engine for ``settings.database_url`` (PostGIS or a SpatiaLite file)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, **kwargs)
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

    return engine
