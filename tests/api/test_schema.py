"""schemathesis on the OpenAPI schema, valid and invalid requests: no 5xx, refusals as problems, both databases."""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from api.main import create_app
from geogrid.settings import Settings
from tests.conftest import BACKENDS, migrated_engine, published_demo

ADMIN_KEY = "schemathesis-admin-key-0123456789"


@pytest.fixture(scope="module", params=BACKENDS)
def api_app(request, demo_layers, tmp_path_factory):
    with migrated_engine(request.param, tmp_path_factory) as engine:
        published_demo(engine, demo_layers)
        app = create_app(
            Settings(
                database_url=engine.url.render_as_string(hide_password=False),
                cache_dir=str(tmp_path_factory.mktemp("cache")),
                max_batch_points=1000,
                environment="test",
                admin_key=ADMIN_KEY,
                rate_limit_per_minute=0,
            )
        )
        with TestClient(app):  # runs the lifespan: the index is loaded
            yield app


def test_every_route_survives_generated_requests(api_app):
    """Valid requests: no 5xx, every response as the schema says."""
    calls = _run_every_operation(
        api_app, GenerationMode.POSITIVE, (not_a_server_error, response_schema_conformance)
    )
    assert 200 in calls and any(400 <= c < 500 for c in calls)  # some answered, some refused with a problem


def test_every_route_refuses_invalid_requests_with_a_problem(api_app):
    """Invalid requests (wrong types, missing and out-of-range values, bad bodies): a 4xx problem, never a 5xx."""
    calls = _run_every_operation(api_app, GenerationMode.NEGATIVE, (not_a_server_error,))
    assert any(400 <= c < 500 for c in calls)


def _run_every_operation(api_app, mode, checks) -> list[int]:
    """Generated requests of ``mode`` against every operation; the status codes they got."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=int(os.environ.get("GEOGRID_SCHEMA_EXAMPLES", "15")),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case):
            response = case.call(headers={"Authorization": f"Bearer {ADMIN_KEY}"})  # write routes too
            calls.append(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
            if response.status_code >= 400:
                kind = (response.headers.get("content-type") or [""])[0]  # schemathesis: a list per header
                assert kind.startswith("application/problem+json"), (
                    f"{case.method} {case.formatted_path}: {kind}"
                )
            case.validate_response(response, checks=checks)

        try:
            run()
        except Unsatisfiable:  # an operation with nothing to get wrong (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, operation.label
    assert len(calls) > 5 * len(operations)  # generated requests really ran
    return calls
