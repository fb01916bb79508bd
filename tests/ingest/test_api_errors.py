"""Every kind of bad input gets its precise 4xx; a missing broker gets 503, never 202."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ingest.api import create_app
from ingest.clients import create_client
from shared.bus.broker import EmbeddedBroker, free_port
from shared.topics import LEDGER_EVENTS
from tests.conftest import MakeDatabase
from tests.helpers import read_topic
from tests.ingest.conftest import Ingest, lease_body, settings_for

CHARGE = {
    "event_id": "c1",
    "lease_id": "L-1",
    "invoice_id": "INV-1",
    "period": "2026-03",
    "amount_ore": 850000,
}


def _fields(resp: httpx.Response) -> list[str]:
    return [d["field"] for d in resp.json()["detail"]]


async def test_missing_or_wrong_key_is_401(ingest: Ingest) -> None:
    resp = await ingest.http.post("/v1/ledger/charges", json=CHARGE)
    assert resp.status_code == 401
    assert resp.json()["error"] == "Unauthorized"
    wrong = await ingest.post("/v1/ledger/charges", CHARGE, key="bkv_not-a-key")
    assert wrong.status_code == 401
    batch = await ingest.http.post("/v1/events/batch", json=[], headers={"X-API-Key": "bkv_nope"})
    assert batch.status_code == 401


async def test_another_orgs_lease_is_403(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    charge = await ingest.post("/v1/ledger/charges", CHARGE, key=ingest.other_key)
    assert charge.status_code == 403
    assert charge.json()["detail"][0]["field"] == "body.lease_id"
    takeover = await ingest.post("/v1/leases", lease_body(event_id="e9"), key=ingest.other_key)
    assert takeover.status_code == 403
    end = await ingest.post(
        "/v1/leases/L-1/end", {"event_id": "e10", "end_date": "2026-06-30"}, key=ingest.other_key
    )
    assert end.status_code == 403
    batch = await ingest.http.post(
        "/v1/events/batch",
        json=[{"type": "charge", **CHARGE}],
        headers={"X-API-Key": ingest.other_key},
    )
    assert batch.json()["results"][0]["errors"][0]["reason"] == (
        "the lease belongs to another organisation"
    )
    assert await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS) == []


async def test_unknown_lease_is_404_on_its_path_and_422_in_a_body(ingest: Ingest) -> None:
    end = await ingest.post("/v1/leases/L-9/end", {"event_id": "e1", "end_date": "2026-06-30"})
    assert end.status_code == 404
    assert _fields(end) == ["path.lease_id"]
    resolve = await ingest.post(
        "/v1/complaints/K-9/resolve", {"event_id": "e2", "resolved_at": "2026-03-05T10:00:00Z"}
    )
    assert resolve.status_code == 404 and _fields(resolve) == ["path.complaint_id"]
    charge = await ingest.post("/v1/ledger/charges", {**CHARGE, "lease_id": "L-9"})
    assert charge.status_code == 422
    assert _fields(charge) == ["body.lease_id"]


async def test_body_over_the_limit_is_413(ingest: Ingest) -> None:
    big = b"[" + b" " * ingest.settings.ingest_max_body_bytes + b"]"
    headers = {"X-API-Key": ingest.key, "Content-Type": "application/json"}
    resp = await ingest.http.post("/v1/events/batch", content=big, headers=headers)
    assert resp.status_code == 413

    async def stream() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(11):
            yield b" " * (1024 * 1024)

    streamed = await ingest.http.post("/v1/events/batch", content=stream(), headers=headers)
    assert streamed.status_code == 413
    single = await ingest.http.post(
        "/v1/ledger/charges", content=b" " * (300 * 1024), headers=headers
    )
    assert single.status_code == 413


async def test_too_many_events_is_413(ingest: Ingest) -> None:
    items = [{"type": "charge", **CHARGE, "event_id": f"c{i}"} for i in range(10_001)]
    resp = await ingest.http.post(
        "/v1/events/batch",
        content=orjson.dumps(items),
        headers={"X-API-Key": ingest.key, "Content-Type": "application/json"},
    )
    assert resp.status_code == 413
    assert "10000" in resp.json()["detail"]


async def test_wrong_content_type_is_415(ingest: Ingest) -> None:
    headers = {"X-API-Key": ingest.key, "Content-Type": "text/plain"}
    resp = await ingest.http.post(
        "/v1/ledger/charges", content=orjson.dumps(CHARGE), headers=headers
    )
    assert resp.status_code == 415
    batch = await ingest.http.post("/v1/events/batch", content=b"[]", headers=headers)
    assert batch.status_code == 415
    csv = await ingest.http.post(
        "/v1/ledger/import",
        content=b"[]",
        headers={"X-API-Key": ingest.key, "Content-Type": "application/json"},
    )
    assert csv.status_code == 415


async def test_malformed_batch_is_400(ingest: Ingest) -> None:
    headers = {"X-API-Key": ingest.key, "Content-Type": "application/json"}
    assert (
        await ingest.http.post("/v1/events/batch", content=b"{", headers=headers)
    ).status_code == 400
    assert (
        await ingest.http.post("/v1/events/batch", content=b"{}", headers=headers)
    ).status_code == 400
    assert (
        await ingest.http.post("/v1/events/batch", content=b"[]", headers=headers)
    ).status_code == 400


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"surprise": True}, "body.surprise"),
        ({"amount_ore": -100}, "body.amount_ore"),
        ({"amount_ore": 0}, "body.amount_ore"),
        ({"amount_ore": "850000"}, "body.amount_ore"),  # strict: no string-to-int coercion
        ({"amount_ore": 8500.5}, "body.amount_ore"),
        ({"period": "2026-13"}, "body.period"),
        ({"period": "March"}, "body.period"),
        ({"due_date": "2026-02-30"}, "body.due_date"),
        ({"due_date": "27/02/2026"}, "body.due_date"),
        ({"event_id": ""}, "body.event_id"),
        ({"lease_id": "has space"}, "body.lease_id"),
        ({"period": "٢٠٢٦-03"}, "body.period"),  # Arabic-Indic digits: 0-9 only
        ({"ocr": "١٢٣٤٥٦٧٨"}, "body.ocr"),
    ],
)
async def test_invalid_charge_is_422_naming_the_field(
    ingest: Ingest, change: dict[str, Any], field: str
) -> None:
    resp = await ingest.post("/v1/ledger/charges", {**CHARGE, **change})
    assert resp.status_code == 422, resp.text
    assert field in _fields(resp)


@pytest.mark.parametrize(
    ("tenant", "field", "reason"),
    [
        ({"personnummer": "811228-9875"}, "body.tenants.0.personnummer", "Luhn"),
        ({"personnummer": "811332-9874"}, "body.tenants.0.personnummer", "does not exist"),
        ({"personnummer": "81-12-28-98"}, "body.tenants.0.personnummer", "format"),
        ({"phone": "12345"}, "body.tenants.0.phone", "phone"),
        ({"phone": "+46 070 123 45 67"}, "body.tenants.0.phone", "Swedish"),
        # Unicode digits other than 0-9 (Python's int() and \d read them): the same person
        # would get another pseudonym, the same phone another number
        ({"personnummer": "٨١١٢٢٨-٩٨٧٤"}, "body.tenants.0.personnummer", "format"),
        ({"phone": "+٤٦٧٠١٢٣٤٥٦٧"}, "body.tenants.0.phone", "phone"),
        ({"language": "swedish"}, "body.tenants.0.language", ""),
        ({"shoe_size": 44}, "body.tenants.0.shoe_size", ""),
    ],
)
async def test_invalid_tenant_is_422_naming_the_field(
    ingest: Ingest, tenant: dict[str, Any], field: str, reason: str
) -> None:
    body = lease_body()
    body["tenants"][0].update(tenant)
    resp = await ingest.post("/v1/leases", body)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert field in [d["field"] for d in detail]
    assert reason in next(d["reason"] for d in detail if d["field"] == field)


async def test_invalid_lease_fields(ingest: Ingest) -> None:
    bad = await ingest.post("/v1/leases", lease_body(municipality_code="180", tenants=[]))
    assert bad.status_code == 422
    assert {"body.municipality_code", "body.tenants"} <= set(_fields(bad))
    arabic = await ingest.post("/v1/leases", lease_body(municipality_code="٠١٨٠"))
    assert arabic.status_code == 422 and _fields(arabic) == ["body.municipality_code"]
    order = await ingest.post("/v1/leases", lease_body(end_date="2020-01-01"))
    assert order.status_code == 422 and _fields(order) == ["body.end_date"]
    naive = await ingest.post(
        "/v1/complaints",
        {
            "event_id": "q",
            "lease_id": "L-1",
            "complaint_id": "K",
            "category": "other",
            "occurred_at": "2026-03-01T23:30:00",
        },
    )
    assert naive.status_code == 422 and _fields(naive) == ["body.occurred_at"]


@pytest.mark.slow
async def test_broker_down_is_503_with_retry_after(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    ready = await ingest.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["broker"] is True
    ingest.broker.stop()
    resp = await ingest.post("/v1/ledger/charges", CHARGE)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    batch = await ingest.http.post(
        "/v1/events/batch",
        json=[{"type": "charge", **CHARGE}],
        headers={"X-API-Key": ingest.key},
    )
    assert batch.status_code == 503 and "Retry-After" in batch.headers
    not_ready = await ingest.http.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["broker"] is False


async def test_broker_unreachable_at_start_is_503_and_not_ready(
    make_database: MakeDatabase, tmp_path: Path
) -> None:
    db = await make_database("ingest")
    dead = EmbeddedBroker(port=free_port())  # never started: nothing listens there
    app = create_app(settings_for(dead, db, tmp_path))
    key = await create_client(db, "org1", "ERP")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            assert (await http.get("/readyz")).status_code == 503
            resp = await http.post("/v1/leases", json=lease_body(), headers={"X-API-Key": key})
            assert resp.status_code == 503
            assert resp.headers["Retry-After"] == "5"
