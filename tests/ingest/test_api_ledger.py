"""Ledger and complaint events through the API, read back from the real broker."""

from __future__ import annotations

from typing import Any

import orjson

from shared.events import decode
from shared.topics import COMPLAINT_EVENTS, LEDGER_EVENTS
from tests.helpers import header, read_topic
from tests.ingest.conftest import Ingest, lease_body


async def _one(ingest: Ingest, topic: str, count: int = 1) -> tuple[Any, dict[str, Any]]:
    records = await read_topic(ingest.broker.bootstrap_servers, topic, count=count)
    last = sorted(records, key=lambda r: r.timestamp)[-1] if count > 1 else records[0]
    return last, orjson.loads(last.value)


def _charge(**extra: Any) -> dict[str, Any]:
    body = {
        "event_id": "e-c1",
        "lease_id": "L-1",
        "invoice_id": "INV-1",
        "ocr": "55501",
        "period": "2026-03",
        "amount_ore": 850000,
    }
    body.update(extra)
    return body


async def test_charge_without_due_date_follows_jb_12_20(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    resp = await ingest.post("/v1/ledger/charges", _charge())
    assert resp.status_code == 202, resp.text
    record, body = await _one(ingest, LEDGER_EVENTS)
    assert header(record, "ce_type") == "se.bokvar.ledger.rent_charged.v1"
    assert header(record, "ce_id") == "org1:e-c1"
    assert record.key == b"L-1"
    assert body["due_date"] == "2026-02-27"  # last working day before 1 March 2026
    assert body["due_date_source"] == "jb_12_20"
    assert (body["amount_ore"], body["period"], body["ocr"]) == (850000, "2026-03", "55501")


async def test_charge_due_date_from_the_lease_or_the_invoice(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body(due_day=1))
    await ingest.post("/v1/ledger/charges", _charge())
    await ingest.post("/v1/ledger/charges", _charge(event_id="e-c2", due_date="2026-02-20"))
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS, count=2)
    by_id = {header(r, "ce_id"): orjson.loads(r.value) for r in records}
    # 1 March 2026 is a Sunday: the lease's due day moves to Monday 2 March
    assert by_id["org1:e-c1"]["due_date"] == "2026-03-02"
    assert by_id["org1:e-c1"]["due_date_source"] == "lease"
    assert by_id["org1:e-c2"]["due_date"] == "2026-02-20"
    assert by_id["org1:e-c2"]["due_date_source"] == "invoice"


async def test_payment_by_ocr_finds_lease_and_invoice(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    await ingest.post("/v1/ledger/charges", _charge())
    resp = await ingest.post(
        "/v1/ledger/payments",
        {
            "event_id": "e-p1",
            "payment_id": "BG-1",
            "amount_ore": 850000,
            "booked_date": "2026-02-26",
            "reference": "55501",
        },
    )
    assert resp.status_code == 202, resp.text
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS, count=2)
    [payment] = [r for r in records if header(r, "ce_id") == "org1:e-p1"]
    assert header(payment, "ce_type") == "se.bokvar.ledger.payment_received.v1"
    assert payment.key == b"L-1"
    body = orjson.loads(payment.value)
    assert body["invoice_id"] == "INV-1" and body["amount_ore"] == 850000


async def test_payment_by_lease_id_reference(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    resp = await ingest.post(
        "/v1/ledger/payments",
        {
            "event_id": "e-p1",
            "payment_id": "BG-1",
            "amount_ore": 100,
            "booked_date": "2026-02-26",
            "reference": "L-1",
        },
    )
    assert resp.status_code == 202
    record, body = await _one(ingest, LEDGER_EVENTS)
    assert record.key == b"L-1" and body["invoice_id"] is None


async def test_payment_with_unknown_reference_is_422(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    resp = await ingest.post(
        "/v1/ledger/payments",
        {
            "event_id": "e-p1",
            "payment_id": "BG-1",
            "amount_ore": 100,
            "booked_date": "2026-02-26",
            "reference": "999",
        },
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "body.reference"


async def test_reversal_and_credit(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    rev = {
        "event_id": "e-r1",
        "lease_id": "L-1",
        "reversal_id": "R-1",
        "payment_id": "BG-1",
        "amount_ore": 850000,
        "booked_date": "2026-03-02",
        "reason": "autogiro rejected",
    }
    credit = {
        "event_id": "e-k1",
        "lease_id": "L-1",
        "credit_id": "C-1",
        "amount_ore": 2000,
        "booked_date": "2026-03-03",
    }
    assert (await ingest.post("/v1/ledger/reversals", rev)).status_code == 202
    assert (await ingest.post("/v1/ledger/credits", credit)).status_code == 202
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS, count=2)
    types = {header(r, "ce_id"): decode(r.value, r.headers).type for r in records}
    assert types == {
        "org1:e-r1": "se.bokvar.ledger.payment_reversed.v1",
        "org1:e-k1": "se.bokvar.ledger.credit_issued.v1",
    }
    bodies = {header(r, "ce_id"): orjson.loads(r.value) for r in records}
    assert bodies["org1:e-r1"]["payment_id"] == "BG-1"
    assert bodies["org1:e-k1"]["amount_ore"] == 2000
    assert all(r.key == b"L-1" for r in records)


async def test_complaint_description_stays_out_of_kafka(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    description = "Neighbour reports shouting at night, secret-detail-42"
    resp = await ingest.post(
        "/v1/complaints",
        {
            "event_id": "e-q1",
            "lease_id": "L-1",
            "complaint_id": "K-1",
            "category": "disturbance",
            "occurred_at": "2026-03-01T23:30:00+01:00",
            "description": description,
        },
    )
    assert resp.status_code == 202, resp.text
    resolve = await ingest.post(
        "/v1/complaints/K-1/resolve",
        {"event_id": "e-q2", "resolved_at": "2026-03-05T10:00:00+01:00", "resolution": "corrected"},
    )
    assert resolve.status_code == 202, resolve.text
    warning = await ingest.post(
        "/v1/warnings",
        {
            "event_id": "e-q3",
            "lease_id": "L-1",
            "warning_id": "W-1",
            "category": "disturbance",
            "issued_date": "2026-03-04",
        },
    )
    assert warning.status_code == 202
    records = await read_topic(ingest.broker.bootstrap_servers, COMPLAINT_EVENTS, count=3)
    types = {header(r, "ce_id"): header(r, "ce_type") for r in records}
    assert types == {
        "org1:e-q1": "se.bokvar.complaint.received.v1",
        "org1:e-q2": "se.bokvar.complaint.resolved.v1",
        "org1:e-q3": "se.bokvar.complaint.warning_issued.v1",
    }
    bodies = {header(r, "ce_id"): orjson.loads(r.value) for r in records}
    assert bodies["org1:e-q1"]["occurred_at"] == "2026-03-01T23:30:00+01:00"
    assert bodies["org1:e-q2"]["lease_id"] == "L-1"
    assert all(b"secret-detail-42" not in (r.value or b"") for r in records)


async def test_resolving_an_unknown_complaint_is_404(ingest: Ingest) -> None:
    resp = await ingest.post(
        "/v1/complaints/K-9/resolve",
        {"event_id": "e-q2", "resolved_at": "2026-03-05T10:00:00+01:00"},
    )
    assert resp.status_code == 404
