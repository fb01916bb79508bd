"""Property-based run of schemathesis over the ingest OpenAPI, in-process (ASGI).

Hypothesis generates the cases (positive and negative); they are sent through
httpx's ASGITransport to the app whose lifespan the fixture entered (real broker, real
database), and every answer must be no 5xx and conform to the documented schema.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.ingest.conftest import Ingest, lease_body
from tests.test_schemathesis import generated_cases

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
POSITIVE, NEGATIVE = 50, 20


@pytest.mark.slow
async def test_schemathesis_finds_no_5xx_and_no_schema_violation(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body("L-1001"))
    schema = schemathesis.openapi.from_dict(ingest.app.openapi())
    started, ran, statuses = time.monotonic(), 0, {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(("/v1/", "/internal/")):
            continue
        for mode, count in (
            (GenerationMode.POSITIVE, POSITIVE),
            (GenerationMode.NEGATIVE, NEGATIVE),
        ):
            for case in generated_cases(operation, mode, count):
                response = await _send(ingest, case)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                ran += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except BaseException as exc:  # schemathesis raises a FailureGroup
                    if isinstance(exc, KeyboardInterrupt | SystemExit):
                        raise
                    failures.append(f"{operation.label} [{mode.value}]: {exc}")
    elapsed = time.monotonic() - started
    print(f"schemathesis: {ran} cases in {elapsed:.1f}s, statuses {sorted(statuses.items())}")
    assert not failures, "\n\n".join(failures[:5])
    assert ran >= 300
    assert 202 in statuses  # some generated events were accepted and published


async def _send(ingest: Ingest, case: Any) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url="http://ingest")
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
    if case.path.startswith("/internal/"):
        headers["Authorization"] = "Bearer test-service-token"
    else:
        headers["X-API-Key"] = ingest.key
    content = kwargs.get("data")
    while isinstance(content, dict) and "data" in content:  # some serializers nest it
        content = content["data"]
    if "json" in kwargs:
        try:
            content = orjson.dumps(kwargs["json"])
        except TypeError:  # integers beyond 64 bits
            content = json.dumps(kwargs["json"]).encode()
    return await ingest.http.request(
        kwargs["method"],
        kwargs["url"],
        headers=headers,
        params=kwargs.get("params"),
        content=content,
    )
