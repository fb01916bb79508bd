"""schemathesis with every check (`--checks all`) on all four services' OpenAPI documents.

Each app runs in-process with its lifespan (real broker, real database), authorised as its
security scheme says, with a real lease and case to find. Every answer must be no 5xx and
conform to the documented status codes, content types, headers and schemas. Time-boxed:
a few examples per operation and mode (about a minute in all).
"""

from __future__ import annotations

import gc
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis

# schemathesis.openapi.from_dict imports its OpenAPI modules on first use, inside a test.
# pytest rewrites a plugin's modules as they are imported, with ast.parse, and a garbage
# collection in the middle of that once broke it in CI ("SystemError: AST constructor
# recursion depth mismatch": see `generated_cases`). Imported here, at collection.
import schemathesis.specs.openapi.schemas
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi

from ingest.api import create_app as ingest_app
from ingest.clients import create_client
from ingest.config import IngestSettings
from notifier.api import create_app as notifier_app
from notifier.config import NotifierSettings
from rules.api import create_app as rules_app
from rules.config import RulesSettings
from services.cases.api import create_app as cases_app
from services.cases.config import CasesSettings
from shared.auth import encode_token
from shared.bus.broker import EmbeddedBroker
from shared.clock import ManualClock
from tests.cases.conftest import NOW, SECRET, database_url, open_case
from tests.conftest import MakeDatabase
from tests.helpers import FAST_GROUP
from tests.ingest.conftest import lease_body

pytestmark = pytest.mark.slow

TOKEN = "schemathesis-service-token-0123456789abcdef"
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 8}
TIME_BOX_SECONDS = 120
# Batch and CSV import answer item by item: a batch whose items are all invalid is still
# 202 with each item's errors, so negative_data_rejection does not apply to them.
ITEM_BY_ITEM = ("/v1/events/batch", "/v1/ledger/import")
# positive_data_acceptance: schema-valid data may still break a rule no schema can state
# (a personnummer's check digit, a lease registered first, a consistent policy): 422 (400
# for an empty batch or a CSV without its header row), with the field and the reason.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429"]
            }
        }
    }
)


@schemathesis.serializer("application/x-ndjson", "text/csv")
def _text(_ctx: Any, value: Any) -> dict[str, Any]:
    """Send NDJSON and CSV bodies as text (any JSON value, integers of any size)."""
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": (value if isinstance(value, str) else json.dumps(value)).encode()}


@dataclass
class Target:
    """An unstarted app (schemathesis runs its lifespan), its credentials, real ids."""

    name: str
    app: FastAPI
    headers: dict[str, str]
    ids: dict[str, str]


def _common(url: str, broker: EmbeddedBroker, tmp_path: Path) -> dict[str, Any]:
    return {
        "database_url": url,
        "kafka_bootstrap_servers": broker.bootstrap_servers,
        "var_dir": tmp_path,
        "service_token": SecretStr(TOKEN),
        "kafka_session_timeout_ms": FAST_GROUP["session_timeout_ms"],
        "kafka_heartbeat_interval_ms": FAST_GROUP["heartbeat_interval_ms"],
        "kafka_rebalance_timeout_ms": FAST_GROUP["rebalance_timeout_ms"],
    }


async def _seed_ingest(app: FastAPI, key: str) -> None:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            got = await client.post(
                "/v1/leases", json=lease_body("L-1"), headers={"X-API-Key": key}
            )
            assert got.status_code == 202, got.text


@pytest.fixture
async def targets(
    make_database: MakeDatabase, test_database_url: str, tmp_path: Path, broker: EmbeddedBroker
) -> AsyncIterator[list[Target]]:
    url = database_url(test_database_url, tmp_path)
    common = _common(url, broker, tmp_path)
    clock = ManualClock(NOW)
    ingest_db = await make_database("ingest")
    key = await create_client(ingest_db, "org1", "fuzz")
    ingest = ingest_app(IngestSettings(**common), clock=clock)
    await _seed_ingest(ingest, key)
    await make_database("rules")
    cases_db = await make_database("cases")
    case_id = await open_case(cases_db)
    await make_database("notifier")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    staff = encode_token({"sub": "fuzz", "role": "admin", "org": "org1"}, SECRET, now=NOW)
    yield [
        Target("ingest", ingest, {**bearer, "X-API-Key": key}, {"lease_id": "L-1"}),
        Target(
            "rules",
            rules_app(RulesSettings(**common), clock=clock, run_workers=False),
            bearer,
            {"lease_id": "L-1"},
        ),
        Target(
            "notifier",
            notifier_app(
                NotifierSettings(
                    **common,
                    notifier_ingest_url="http://127.0.0.1:9",
                    notifier_sender_interval_seconds=3600,
                ),
                clock=clock,
            ),
            bearer,
            {"lease_id": "L-1"},
        ),
        Target(
            "cases",
            cases_app(
                CasesSettings(**common, cases_jwt_secret=SecretStr(SECRET), cases_consume=False),
                clock=clock,
                bootstrap_servers=broker.bootstrap_servers,
            ),
            {"Authorization": f"Bearer {staff}", "X-Audit-Reason": "fuzz"},
            {"case_id": case_id, "lease_id": "L-1"},
        ),
    ]


def generated_cases(operation: Any, mode: GenerationMode, count: int) -> list[Any]:
    """Return `count` cases of `mode` for an operation, the same on every run."""
    found: list[Any] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def collect(case: Any) -> None:
        found.append(case)

    random.seed(f"{operation.label}:{mode.value}")  # schemathesis draws from `random` too
    # No cyclic garbage collection while hypothesis draws: it describes strategies with
    # ast.parse, and a collection in the middle of that can finalise an asyncio Future
    # whose exception nobody retrieved (an aiokafka request to a broker not yet ready);
    # asyncio logs it with its traceback, which Python 3.11 formats with ast.parse too, and
    # the nested parse breaks the outer one ("AST constructor recursion depth mismatch",
    # python/cpython#106905; CI failed on it once). Collected here instead, between draws.
    gc.collect()
    gc.disable()
    try:
        collect()
    except Unsatisfiable:  # nothing to make negative (no parameters, no body)
        return []
    finally:
        gc.enable()
    return found


def _fuzz(target: Target, deadline: float, statuses: Counter[int]) -> list[str]:
    load_all_checks()
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app, config=CONFIG)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        checks = [
            check
            for check in CHECKS.get_all()
            if not (operation.path in ITEM_BY_ITEM and check.__name__ == "negative_data_rejection")
        ]
        for mode, count in EXAMPLES.items():
            for n, case in enumerate(generated_cases(operation, mode, count)):
                if time.monotonic() > deadline:  # time box: stop, keep what was found
                    return failures
                positive = mode is GenerationMode.POSITIVE
                if positive and n % 2 == 0 and case.path_parameters:  # half hit real ids
                    for name, value in target.ids.items():
                        if name in case.path_parameters:
                            case.path_parameters[name] = value
                headers = target.headers
                if not positive:  # keep the invalid headers the case was made with
                    own = {name.lower() for name in case.headers or {}}
                    headers = {k: v for k, v in headers.items() if k.lower() not in own}
                response = case.call(headers=headers)
                statuses[response.status_code] += 1
                try:
                    case.validate_response(response, checks=checks, headers=headers)
                except BaseException as exc:  # schemathesis raises a FailureGroup
                    if isinstance(exc, KeyboardInterrupt | SystemExit):
                        raise
                    failures.append(f"{target.name} {operation.label} [{mode.value}]: {exc}")
    return failures


def test_every_service_passes_all_checks(targets: list[Target]) -> None:
    started = time.monotonic()
    deadline = started + TIME_BOX_SECONDS
    failures: list[str] = []
    report: list[str] = []
    try:
        for target in targets:
            statuses: Counter[int] = Counter()
            failures += _fuzz(target, deadline, statuses)
            report.append(f"{target.name} {sum(statuses.values())} calls {dict(statuses)}")
            assert sum(statuses.values()) >= 30, f"{target.name}: too few calls in the time box"
            assert any(200 <= s < 300 for s in statuses), (target.name, statuses)
    finally:
        asgi.shutdown_lifespans()
    print(f"schemathesis in {time.monotonic() - started:.1f}s: " + "; ".join(report))
    assert not failures, "\n\n".join(failures[:8]) + f"\n\n({len(failures)} failures)"
