"""Shared fixtures: the demo county, and a real database per backend (SpatiaLite and PostGIS).

Under ``CI=true`` a backend that cannot be reached fails its tests instead of skipping them, and any
skipped test fails the run: a green CI means every database test ran on both engines.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import sqlalchemy as sa

from geogrid.db import Store, create_engine, upgrade
from geogrid.io import read_boundaries
from geogrid.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "boundaries" / "demo"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_URL = os.environ.get(
    "GEOGRID_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("spatialite", "postgis")


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI: a missing database is a broken CI machine, not a pass."""
    if CI:
        pytest.fail(f"required test resource unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if CI and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) were skipped; failing the run.", red=True)


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


@pytest.fixture(scope="session")
def demo_layers() -> dict[str, gpd.GeoDataFrame]:
    """The demo county's unit layers, read once."""
    names = ("county", "streets", "communities", "grids", "microgrids")
    return {name: read_boundaries(DEMO / f"{name}.geojson") for name in names}


def _spatialite_engine(tmp: Path) -> sa.Engine:
    return create_engine(Settings(database_url=f"sqlite:///{tmp / 'geogrid-test.sqlite'}"))


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """A migrated database on each backend, created for the test session and dropped after it."""
    if request.param == "spatialite":
        try:
            eng = _spatialite_engine(tmp_path_factory.mktemp("spatialite"))
            upgrade(eng)
        except Exception as exc:  # SpatialiteUnavailable, or a broken library
            unavailable(f"SpatiaLite: {exc}")
        yield eng
        eng.dispose()
        return
    name = f"geogrid_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL}: {exc}")
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name)
    eng = create_engine(Settings(database_url=url.render_as_string(hide_password=False)))
    try:
        upgrade(eng)
    except Exception as exc:
        unavailable(f"PostGIS extension: {exc}")
    yield eng
    eng.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> Store:
    """An empty store on the backend under test."""
    with engine.begin() as conn:
        for table in ("audit_log", "unit", "boundary_version", "boundary_set"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    return Store(engine, actor="tester")


@pytest.fixture
def database_url(store: Store) -> str:
    """The URL of the (emptied) database under test, for the CLI."""
    return store.engine.url.render_as_string(hide_password=False)
