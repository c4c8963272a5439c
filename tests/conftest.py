"""Shared fixtures: the demo county, and a real database per backend (SpatiaLite and PostGIS).

Under ``CI=true`` a backend that cannot be reached fails its tests instead of skipping them, and any
skipped test fails the run: a green CI means every database test ran on both engines.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under ``--dist loadgroup`` every xdist_group-marked test must carry its group, or the group splits
    across workers and its session fixtures (the README's shell run, a browser) run once per worker."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    lost = [i.nodeid for i in session.items if any(i.iter_markers("xdist_group")) and "@" not in i.nodeid]
    if lost:
        raise pytest.UsageError(
            f"pytest-xdist did not tag {len(lost)} grouped test(s) (first: {lost[0]}): this pytest and "
            "pytest-xdist do not work together; see the pin in pyproject.toml"
        )


# The longest groups of tests, longest first (the README's shell run ~3 min, the dashboard's browser, a
# simulated month of incidents per database, …): under --dist loadgroup one that starts last is a tail a
# single worker runs alone while the other waits.
LONG_GROUPS = ("readme-shell", "e2e-dashboard", "incident-kpis", "e2e-pages", "e2e-maps", "readme-python")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the long groups first, then the notebooks (half a minute each), then the rest as collected."""

    def rank(item: pytest.Item) -> int:
        groups = [m.args[0] for m in item.iter_markers("xdist_group") if m.args]
        if groups and groups[0] in LONG_GROUPS:
            return LONG_GROUPS.index(groups[0])
        return len(LONG_GROUPS) + (0 if ".ipynb" in item.nodeid else 1)

    items.sort(key=rank)  # stable: each module's tests keep their order


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if CI and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) were skipped; failing the run.", red=True)


@pytest.fixture(autouse=True, scope="session")
def _index_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the CLI's index cache out of the checkout."""
    previous = os.environ.get("GEOGRID_CACHE_DIR")
    os.environ["GEOGRID_CACHE_DIR"] = str(tmp_path_factory.mktemp("index-cache"))
    yield
    if previous is None:
        os.environ.pop("GEOGRID_CACHE_DIR", None)
    else:
        os.environ["GEOGRID_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


@pytest.fixture(scope="session")
def demo_layers() -> dict[str, gpd.GeoDataFrame]:
    """The demo county's unit layers, read once."""
    names = ("county", "streets", "communities", "grids", "microgrids")
    return {name: read_boundaries(DEMO / f"{name}.geojson") for name in names}


@contextmanager
def migrated_engine(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """A fresh, migrated database of ``kind`` (spatialite or postgis), dropped afterwards."""
    if kind == "spatialite":
        try:
            path = tmp_path_factory.mktemp("spatialite") / "geogrid-test.sqlite"
            eng = create_engine(Settings(database_url=f"sqlite:///{path}"))
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
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """A migrated database on each backend, created for the test session and dropped after it."""
    with migrated_engine(request.param, tmp_path_factory) as eng:
        yield eng


@pytest.fixture(scope="session")
def postgis_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """A migrated PostGIS database, for what only PostGIS has (the SQL lookup function)."""
    with migrated_engine("postgis", tmp_path_factory) as eng:
        yield eng


def empty_store(engine: sa.Engine) -> Store:
    """Delete every row, and return a store on the engine."""
    with engine.begin() as conn:
        for table in ("audit_log", "api_key", "unit", "boundary_version", "boundary_set"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    return Store(engine, actor="tester")


def published_demo(
    engine: sa.Engine,
    demo_layers: dict[str, gpd.GeoDataFrame],
    layers: tuple[tuple[str, str], ...] = (("grids", "grid"), ("microgrids", "microgrid")),
) -> Store:
    """An emptied store holding the demo's ``layers`` (name, level), published from 2026-01-01."""
    store = empty_store(engine)
    for name, level in layers:
        store.import_units("demo", demo_layers[name], level, commit=True)
    store.publish("demo", dt.date(2026, 1, 1))
    return store


def stop(process: subprocess.Popen) -> None:
    """Stop a server process: terminate, and kill it if it has not stopped in 60 s (a loaded machine)."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def problem(response, status: int, *words: str) -> dict:
    """Assert a problem+json answer of ``status`` that says every one of ``words``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and "Traceback" not in response.text
    for word in words:
        assert word in json.dumps(body, ensure_ascii=False), body
    return body


@pytest.fixture
def store(engine: sa.Engine) -> Store:
    """An empty store on the backend under test."""
    return empty_store(engine)


@pytest.fixture
def database_url(store: Store) -> str:
    """The URL of the (emptied) database under test, for the CLI."""
    return store.engine.url.render_as_string(hide_password=False)
