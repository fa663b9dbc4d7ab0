"""Fuzz the API from the OpenAPI schema the app publishes (schemathesis).

Every generated request must get a documented status with a body matching the
documented schema (the OpenAI envelope for errors), never a 5xx, and the server must
still serve afterwards. Generation is capped (`limits.max_tokens`) to keep it quick.

Not checked: that every schema-valid request is accepted. Litestar's schema leaves out
the numeric bounds msgspec enforces inside optional fields (e.g. `temperature` in
[0, 2]), so a request the schema allows can still get a correct 400.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import EnginePool
from tests.e2e.conftest import LiveServer, serve


@pytest.fixture(scope="module")
def capped(engine_pool: EnginePool, model_path: Path) -> Iterator[LiveServer]:
    yield from serve(engine_pool, model_path, limits={"max_tokens": 4, "request_timeout": 5})


def test_generated_requests_get_documented_answers(capped: LiveServer) -> None:
    schema = schemathesis.openapi.from_dict(httpx.get(f"{capped.root}/docs/openapi.json").json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/health"),
    }
    for operation in operations:

        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=capped.root, excluded_checks=[positive_data_acceptance])

        check()
    assert httpx.get(f"{capped.root}/health").status_code == 200
