"""schemathesis (v4) over the cases OpenAPI, in-process, with a valid admin token: no 5xx."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.python import asgi

from services.cases.api import create_app
from services.cases.config import CasesSettings
from shared.auth import encode_token
from shared.bus.broker import EmbeddedBroker
from shared.clock import ManualClock
from tests.cases.conftest import NOW, SECRET, database_url, open_case
from tests.conftest import MakeDatabase
from tests.helpers import FAST_GROUP

EXAMPLES = 30


@dataclass
class Target:
    """An unstarted app (schemathesis runs its lifespan) and a real case id."""

    app: FastAPI
    case_id: str
    headers: dict[str, str]


@pytest.fixture
async def target(
    make_database: MakeDatabase,
    test_database_url: str,
    tmp_path: Path,
    module_broker: EmbeddedBroker,
) -> AsyncIterator[Target]:
    db = await make_database("cases")
    case_id = await open_case(db)
    app = create_app(
        CasesSettings(
            database_url=database_url(test_database_url, tmp_path),
            cases_jwt_secret=SECRET,  # type: ignore[arg-type]
            cases_consume=False,
            kafka_session_timeout_ms=FAST_GROUP["session_timeout_ms"],
        ),
        clock=ManualClock(NOW),
        bootstrap_servers=module_broker.bootstrap_servers,
    )
    token = encode_token({"sub": "fuzz", "role": "admin", "org": "org1"}, SECRET, now=NOW)
    yield Target(app, case_id, {"Authorization": f"Bearer {token}"})


@pytest.mark.slow
def test_openapi_fuzzing_finds_no_5xx(target: Target) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = 0
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1

            @given(case=operation.as_strategy(), real=st.booleans())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case, real: bool) -> None:
                if real and case.path_parameters and "case_id" in case.path_parameters:
                    case.path_parameters["case_id"] = target.case_id
                response = case.call(headers=target.headers)
                statuses[response.status_code] += 1
                # /readyz answers 503 by design when a dependency is down.
                if response.status_code >= 500 and case.formatted_path != "/readyz":
                    failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

            check()
    finally:
        asgi.shutdown_lifespans()
    total = sum(statuses.values())
    print(f"schemathesis: {operations} operations, {total} calls, statuses {dict(statuses)}")
    assert operations >= 24
    assert total >= operations * 5
    assert not failures, failures
    assert any(200 <= s < 300 for s in statuses), statuses
