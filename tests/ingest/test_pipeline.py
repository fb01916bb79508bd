"""Unit tests of the pure walk over a batch (no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ingest.batch import to_item
from ingest.pipeline import process, referenced
from ingest.processing import Context, Known, LeaseRow

CTX = Context(org_id="org1", now=datetime(2026, 3, 2, 8, 0, tzinfo=UTC), secret=b"k")
LEASE: dict[str, Any] = {
    "type": "lease",
    "event_id": "e0",
    "lease_id": "L-1",
    "property_id": "P",
    "municipality_code": "0180",
    "monthly_rent_ore": 1,
    "start_date": "2024-01-01",
    "team": "t",
    "due_day": 5,
    "tenants": [{"tenant_id": "T", "personnummer": "811228-9874", "phone": "0701234567"}],
}


def charge(event_id: str, lease_id: str = "L-1") -> dict[str, Any]:
    return {
        "type": "charge",
        "event_id": event_id,
        "lease_id": lease_id,
        "invoice_id": f"I-{event_id}",
        "ocr": "4242",
        "period": "2026-04",
        "amount_ore": 100,
    }


def run(raws: list[dict[str, Any]], known: Known | None = None) -> Any:
    items = [to_item(i, raw) for i, raw in enumerate(raws)]
    return process(items, CTX, known or Known())


def test_a_lease_registered_earlier_in_the_batch_can_be_charged() -> None:
    out = run([LEASE, charge("c1")])
    assert out.statuses == ["accepted", "accepted"]
    lease, rent = out.events
    assert lease.type == "se.bokvar.lease.registered.v1" and lease.id == "org1:e0"
    # 5 April 2026 is Easter Sunday and the 6th Easter Monday: due on Tuesday the 7th
    assert rent.data.due_date.isoformat() == "2026-04-07"
    assert rent.data.due_date_source == "lease"
    assert out.writes.invoices == {"4242": ("L-1", "I-c1")}
    assert [c.phone for c in out.writes.contacts["L-1"]] == ["+46701234567"]
    assert list(out.writes.seen) == ["e0", "c1"]


def test_duplicates_earlier_and_within_the_batch() -> None:
    known = Known(leases={"L-1": LeaseRow("org1", None)}, seen={"old": None})
    out = run([charge("old"), charge("c1"), charge("c1")], known)
    assert out.statuses == ["duplicate", "accepted", "duplicate"]
    assert [e.id for e in out.events] == ["org1:c1"]


def test_rejections_carry_the_http_status_of_a_single_request() -> None:
    known = Known(leases={"L-1": LeaseRow("org2", None)})
    out = run([charge("c1"), charge("c2", "L-9"), {**LEASE, "event_id": "e1"}], known)
    assert out.statuses == ["rejected"] * 3
    assert out.http_status == [403, 422, 403]
    assert out.events == [] and out.writes.seen == {}


def test_referenced_collects_what_to_load() -> None:
    payment = {
        "type": "payment",
        "event_id": "p1",
        "payment_id": "BG",
        "amount_ore": 1,
        "booked_date": "2026-03-01",
        "reference": "4242",
    }
    items = [to_item(0, LEASE), to_item(1, payment)]
    leases, ocrs, complaints, event_ids = referenced(items)
    assert leases == {"L-1", "4242"} and ocrs == {"4242"}
    assert complaints == set() and event_ids == {"e0", "p1"}
