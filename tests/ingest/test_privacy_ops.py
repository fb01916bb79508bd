"""Personal data never reaches Kafka; operations endpoints (/readyz, /metrics)."""

from __future__ import annotations

import orjson

from ingest.engine import pseudonym
from shared.topics import LEASE_EVENTS
from tests.helpers import read_topic
from tests.ingest.conftest import Ingest, lease_body
from tests.pii import find_pii, register_literal, scan_broker

TENANTS = [
    # (personnummer as sent, normalised, phone as sent, E.164, name)
    ("811228-9874", "198112289874", "070-123 45 67", "+46701234567", "Anna Andersson"),
    ("19670919-9530", "196709199530", "+46 8 555 123 45", "+46855512345", "Björn Östlund"),
    ("121212+1212", "191212121212", "0046 73 999 88 77", "+46739998877", "Clara Çelik"),
]


async def test_no_personnummer_phone_or_name_in_any_message(ingest: Ingest) -> None:
    for i, (pnr, normalised, phone, e164, name) in enumerate(TENANTS):
        for value in (pnr, normalised, normalised[2:], phone, e164):
            register_literal(value)
        body = lease_body(f"L-{i}", f"e-{i}", name=name, pnr=pnr, phone=phone)
        resp = await ingest.post("/v1/leases", body)
        assert resp.status_code == 202, resp.text
    records = await read_topic(ingest.broker.bootstrap_servers, LEASE_EVENTS, count=3)
    for record in records:
        blob = (record.value or b"") + (record.key or b"")
        blob += b"".join(bytes(v) for _, v in record.headers)
        assert find_pii(blob) == []
        for pnr, normalised, phone, e164, name in TENANTS:
            for value in (pnr, normalised, normalised[2:], phone, e164, name):
                assert value.encode() not in blob
                assert value not in blob.decode()
    # the pseudonym is the keyed HMAC, so the same secret re-derives it and nothing else does
    secret = ingest.settings.ingest_pseudonym_secret.get_secret_value().encode()
    got = {orjson.loads(r.value)["tenants"][0]["pseudonym"] for r in records}
    assert got == {pseudonym(secret, t[1]) for t in TENANTS}
    assert await scan_broker(ingest.broker.bootstrap_servers) == []


def test_the_guard_itself_finds_personal_data() -> None:
    register_literal("Zlatan Testsson")
    assert find_pii(b'{"x": "811228-9874"}')
    assert find_pii(b'{"x": "198112289874"}')
    assert find_pii(b'{"x": "+46701234567"}')
    assert find_pii(b'{"name": "Zlatan Testsson"}')
    assert find_pii(b'{"ocr": "100120260301", "amount_ore": 850000}') == []


async def test_metrics_count_events_by_type_and_outcome(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    await ingest.post("/v1/leases", lease_body())
    await ingest.post(
        "/v1/ledger/charges",
        {
            "event_id": "x",
            "lease_id": "nope",
            "invoice_id": "i",
            "period": "2026-03",
            "amount_ore": 1,
        },
    )
    text = (await ingest.http.get("/metrics")).text
    assert 'bokvar_ingest_events_total{outcome="accepted",type="lease"}' in text
    assert 'bokvar_ingest_events_total{outcome="duplicate",type="lease"}' in text
    assert 'bokvar_ingest_events_total{outcome="rejected",type="charge"}' in text
    assert "Andersson" not in text and "811228" not in text


async def test_health_and_readiness(ingest: Ingest) -> None:
    assert (await ingest.http.get("/healthz")).json()["status"] == "ok"
    ready = await ingest.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "broker": True, "migrations": True}


async def test_openapi_has_an_example_for_every_body(ingest: Ingest) -> None:
    spec = (await ingest.http.get("/openapi.json")).json()
    posts = [(path, ops["post"]) for path, ops in spec["paths"].items() if "post" in ops]
    assert len(posts) == 12  # ... and /v1/ledger/watermark
    for path, op in posts:
        for media, content in op["requestBody"]["content"].items():
            assert content.get("examples"), f"{path} {media} has no example"
