"""The ledger watermark through the API: org-wide, keyed by the organisation, never ahead."""

from __future__ import annotations

from datetime import timedelta

import orjson

from shared.clock import local_date
from shared.topics import LEDGER_EVENTS
from tests.helpers import header, read_topic
from tests.ingest.conftest import Ingest


async def test_watermark_is_published_org_wide_after_acks(ingest: Ingest) -> None:
    today = local_date(ingest.clock.now())
    body = {"event_id": "wm-1", "booked_through": today.isoformat()}
    resp = await ingest.post("/v1/ledger/watermark", body)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"event_id": "wm-1", "id": "org1:wm-1", "status": "accepted"}
    # one copy per partition of ledger.events, each behind what was sent before it there
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS)
    partitions = orjson.loads(records[0].value)["partitions"]
    assert partitions > 1 and len(records) == partitions
    assert {r.partition for r in records} == set(range(partitions))
    for record in records:
        assert header(record, "ce_type") == "se.bokvar.ledger.watermark_advanced.v1"
        data = orjson.loads(record.value)
        assert header(record, "ce_id") == f"org1:wm-1:p{data['partition']}"
        assert record.key.decode().startswith("org:org1:")
        assert data == {
            "lease_id": "*",
            "org_id": "org1",
            "booked_through": today.isoformat(),
            "partition": record.partition,
            "partitions": partitions,
        }
    again = await ingest.post("/v1/ledger/watermark", body)
    assert again.status_code == 202 and again.json()["status"] == "duplicate"


async def test_watermark_in_the_future_or_malformed_is_rejected_naming_the_field(
    ingest: Ingest,
) -> None:
    tomorrow = local_date(ingest.clock.now()) + timedelta(days=1)
    body = {"event_id": "wm-2", "booked_through": tomorrow.isoformat()}
    resp = await ingest.post("/v1/ledger/watermark", body)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "body.booked_through"
    assert "after today" in resp.json()["detail"][0]["reason"]
    resp = await ingest.post(
        "/v1/ledger/watermark", {"event_id": "wm-3", "booked_through": "4 jan"}
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"].endswith("booked_through")
    resp = await ingest.post("/v1/ledger/watermark", {"event_id": "wm-4"})
    assert resp.status_code == 422
    assert await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS) == []
    assert (await ingest.http.post("/v1/ledger/watermark", json=body)).status_code == 401
