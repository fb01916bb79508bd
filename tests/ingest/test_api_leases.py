"""Leases through the API: published pseudonymised, contacts kept in the vault."""

from __future__ import annotations

import orjson

from shared.topics import LEASE_EVENTS
from tests.helpers import header, read_topic
from tests.ingest.conftest import SERVICE_TOKEN, Ingest, lease_body


async def test_register_lease_publishes_pseudonymised_event(ingest: Ingest) -> None:
    resp = await ingest.post("/v1/leases", lease_body())
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"event_id": "e-lease-1", "id": "org1:e-lease-1", "status": "accepted"}
    [record] = await read_topic(ingest.broker.bootstrap_servers, LEASE_EVENTS, count=1)
    assert record.key == b"L-1"
    assert header(record, "ce_type") == "se.bokvar.lease.registered.v1"
    assert header(record, "ce_id") == "org1:e-lease-1"
    assert header(record, "ce_source") == "ingest/org1"
    body = orjson.loads(record.value)
    assert body["org_id"] == "org1" and body["lease_id"] == "L-1"
    assert body["due_day"] is None and body["monthly_rent_ore"] == 850000
    [tenant] = body["tenants"]
    assert tenant["tenant_id"] == "T-1"
    assert len(tenant["pseudonym"]) == 64
    assert (tenant["birth_year"], tenant["age_band"], tenant["gender"]) == (1981, "40-49", "male")
    assert set(tenant) == {"tenant_id", "pseudonym", "birth_year", "age_band", "gender"}


async def test_second_snapshot_is_an_update_with_the_same_pseudonym(ingest: Ingest) -> None:
    assert (await ingest.post("/v1/leases", lease_body())).status_code == 202
    resp = await ingest.post("/v1/leases", lease_body(event_id="e-lease-2", due_day=25))
    assert resp.status_code == 202
    first, second = await read_topic(ingest.broker.bootstrap_servers, LEASE_EVENTS, count=2)
    assert header(second, "ce_type") == "se.bokvar.lease.updated.v1"
    assert orjson.loads(second.value)["due_day"] == 25
    pseudonyms = [orjson.loads(r.value)["tenants"][0]["pseudonym"] for r in (first, second)]
    assert pseudonyms[0] == pseudonyms[1]


async def test_contacts_api_for_the_notifier(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    auth = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    resp = await ingest.http.get("/internal/v1/leases/L-1/contacts", headers=auth)
    assert resp.status_code == 200
    assert resp.json() == {
        "lease_id": "L-1",
        "org_id": "org1",
        "tenants": [
            {"tenant_id": "T-1", "phone": "+46701234567", "language": "sv", "opted_out": False}
        ],
    }
    missing = await ingest.http.get("/internal/v1/leases/nope/contacts", headers=auth)
    assert missing.status_code == 404
    wrong = await ingest.http.get(
        "/internal/v1/leases/L-1/contacts", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    assert (await ingest.http.get("/internal/v1/leases/L-1/contacts")).status_code == 401


async def test_update_replaces_the_vault_entry(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    await ingest.post("/v1/leases", lease_body(event_id="e-lease-2", phone="+46 8 123 456 78"))
    auth = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    resp = await ingest.http.get("/internal/v1/leases/L-1/contacts", headers=auth)
    assert [t["phone"] for t in resp.json()["tenants"]] == ["+46812345678"]


async def test_end_lease(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    resp = await ingest.post(
        "/v1/leases/L-1/end", {"event_id": "e-end", "end_date": "2026-06-30", "reason": "moved_out"}
    )
    assert resp.status_code == 202, resp.text
    records = await read_topic(ingest.broker.bootstrap_servers, LEASE_EVENTS, count=2)
    ended = records[-1]
    assert header(ended, "ce_type") == "se.bokvar.lease.ended.v1"
    assert ended.key == b"L-1"
    assert orjson.loads(ended.value) == {
        "lease_id": "L-1",
        "org_id": "org1",
        "end_date": "2026-06-30",
        "reason": "moved_out",
    }
