"""Batches (JSON array, NDJSON), CSV import and deduplication."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from ingest.models import seen_events
from ingest.processing import Known
from ingest.store import IngestStore
from shared.bus.producer import Producer
from shared.events import RentCharged, decode
from shared.topics import LEASE_EVENTS, LEDGER_EVENTS
from tests.helpers import header, read_topic
from tests.ingest.conftest import NOW, Ingest, lease_body


def _charge(event_id: str, lease_id: str = "L-1", **extra: Any) -> dict[str, Any]:
    body = {
        "type": "charge",
        "event_id": event_id,
        "lease_id": lease_id,
        "invoice_id": f"INV-{event_id}",
        "period": "2026-03",
        "amount_ore": 850000,
    }
    body.update(extra)
    return body


async def _batch(ingest: Ingest, items: Any, content_type: str = "application/json") -> Any:
    content = (
        b"".join(orjson.dumps(i) + b"\n" for i in items)
        if content_type == "application/x-ndjson"
        else orjson.dumps(items)
    )
    return await ingest.http.post(
        "/v1/events/batch",
        content=content,
        headers={"X-API-Key": ingest.key, "Content-Type": content_type},
    )


async def test_batch_answers_item_by_item_and_keeps_good_rows(ingest: Ingest) -> None:
    items = [
        {"type": "lease", **lease_body()},
        _charge("c1"),
        _charge("c2", amount_ore=-5),  # bad: negative amount
        _charge("c1"),  # duplicate within the batch
        _charge("c3", lease_id="L-unknown"),
        {"type": "charge", "event_id": "c4", "lease_id": "L-1", "surprise": 1},
        {"type": "teleport", "event_id": "c5"},
        _charge("c6", period="2026-13"),
    ]
    resp = await _batch(ingest, items)
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (2, 1, 5)
    results = answer["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "accepted",
        "rejected",
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert [r["index"] for r in results] == list(range(8))
    assert results[2]["errors"][0]["field"] == "amount_ore"
    assert results[4]["errors"] == [
        {"field": "lease_id", "reason": "unknown lease: register it first"}
    ]
    assert {"field": "surprise", "reason": "unknown field"} in results[5]["errors"]
    assert results[6]["errors"][0]["field"] == "type"
    assert results[7]["errors"][0]["field"] == "period"
    ledger = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS, count=1)
    assert [header(r, "ce_id") for r in ledger] == ["org1:c1"]
    event = decode(ledger[0].value, ledger[0].headers)  # the full contract validates
    assert isinstance(event.data, RentCharged) and event.data.due_date_source == "jb_12_20"
    leases = await read_topic(ingest.broker.bootstrap_servers, LEASE_EVENTS, count=1)
    assert leases[0].key == b"L-1"


async def test_ndjson_batch(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    resp = await _batch(ingest, [_charge("n1"), _charge("n2")], "application/x-ndjson")
    assert resp.status_code == 202, resp.text
    assert resp.json()["accepted"] == 2
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS, count=2)
    assert sorted(header(r, "ce_id") or "" for r in records) == ["org1:n1", "org1:n2"]
    body = orjson.loads(records[0].value)
    assert body["due_date"] == "2026-02-27" and body["org_id"] == "org1"


async def test_bad_ndjson_line_is_rejected_alone(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    content = orjson.dumps(_charge("n1")) + b"\n{not json\n" + orjson.dumps(_charge("n2"))
    resp = await ingest.http.post(
        "/v1/events/batch",
        content=content,
        headers={"X-API-Key": ingest.key, "Content-Type": "application/x-ndjson"},
    )
    assert [r["status"] for r in resp.json()["results"]] == ["accepted", "rejected", "accepted"]


async def test_repeated_event_id_is_published_once(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    first = await ingest.post(
        "/v1/ledger/charges", {k: v for k, v in _charge("d1").items() if k != "type"}
    )
    again = await ingest.post(
        "/v1/ledger/charges", {k: v for k, v in _charge("d1").items() if k != "type"}
    )
    assert first.json()["status"] == "accepted"
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    batch = await _batch(ingest, [_charge("d1"), _charge("d2")])
    assert [r["status"] for r in batch.json()["results"]] == ["duplicate", "accepted"]
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS)
    assert sorted(header(r, "ce_id") or "" for r in records) == ["org1:d1", "org1:d2"]


async def test_event_ids_are_forgotten_after_the_dedup_window(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    body = {k: v for k, v in _charge("w1").items() if k != "type"}
    assert (await ingest.post("/v1/ledger/charges", body)).json()["status"] == "accepted"
    ingest.clock.advance(timedelta(days=29))
    assert (await ingest.post("/v1/ledger/charges", body)).json()["status"] == "duplicate"
    ingest.clock.advance(timedelta(days=2))
    assert (await ingest.post("/v1/ledger/charges", body)).json()["status"] == "accepted"


async def test_an_id_another_request_stored_after_the_lookup_is_not_published_again(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New event ids are inserted, not upserted: a request that stored one of them
    between this batch's lookup and its write fails that write before anything is
    published, and the batch is processed again from the lookup (then a duplicate)."""
    await ingest.post("/v1/leases", lease_body())
    lookup = IngestStore.load_known
    lookups = 0

    async def lookup_then_race(store: IngestStore, org_id: str, **ids: Any) -> Known:
        nonlocal lookups
        lookups += 1
        known = await lookup(store, org_id, **ids)
        if lookups == 1:  # "another request" stores r1 (recorded before hashes existed)
            async with ingest.database.sessionmaker() as session, session.begin():
                await session.execute(
                    seen_events.insert().values(
                        org_id="org1", event_id="r1", seen_at=NOW, body_hash=None
                    )
                )
        return known

    monkeypatch.setattr(IngestStore, "load_known", lookup_then_race)
    resp = await _batch(ingest, [_charge("r1"), _charge("r2")])
    assert resp.status_code == 202, resp.text
    assert [r["status"] for r in resp.json()["results"]] == ["duplicate", "accepted"]
    assert lookups == 2
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS)
    assert sorted(header(r, "ce_id") or "" for r in records) == ["org1:r2"]
    async with ingest.database.sessionmaker() as session:
        rows = await session.execute(select(seen_events.c.event_id, seen_events.c.body_hash))
        stored = {event_id: body_hash for event_id, body_hash in rows}
    assert stored["r1"] is None and stored["r2"] is not None


async def test_a_batch_raced_on_every_try_is_answered_503_and_publishes_nothing(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When another request stores one of the batch's new ids after each of its lookups,
    every write fails before it publishes; after the third try the answer is 503 with
    Retry-After (busy, retry), not a 500, and nothing is recorded or published."""
    await ingest.post("/v1/leases", lease_body())
    lookup = IngestStore.load_known
    raced = 0

    async def lookup_then_race(store: IngestStore, org_id: str, **ids: Any) -> Known:
        nonlocal raced
        known = await lookup(store, org_id, **ids)
        raced += 1
        async with ingest.database.sessionmaker() as session, session.begin():
            await session.execute(
                seen_events.insert().values(
                    org_id="org1", event_id=f"x{raced}", seen_at=NOW, body_hash=None
                )
            )
        return known

    monkeypatch.setattr(IngestStore, "load_known", lookup_then_race)
    resp = await _batch(ingest, [_charge("x1"), _charge("x2"), _charge("x3")])
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"]
    assert raced == 3
    assert await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS) == []
    async with ingest.database.sessionmaker() as session:
        ids = (await session.execute(select(seen_events.c.event_id))).scalars().all()
    assert sorted(i for i in ids if i.startswith("x")) == ["x1", "x2", "x3"]  # the others'
    assert len(ids) == 4  # and the lease's registration: none of the batch's own rows


async def test_new_ids_are_not_looked_up_and_repeated_ids_still_are_duplicates(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch skips the lookup of its event ids unless its organisation's last batch
    repeated a stored id: a repeat fails the insert, and the batch is processed again
    with its ids looked up. A rejected item's id is looked up too (a stored id is
    answered 409 or duplicate before its body is checked against the vault); when it
    is stored, the batch is processed again with all its ids looked up."""
    lookup = IngestStore.load_known
    asked: list[set[str]] = []

    async def spy(store: IngestStore, org_id: str, **ids: Any) -> Known:
        asked.append(set(ids["event_ids"]))
        return await lookup(store, org_id, **ids)

    monkeypatch.setattr(IngestStore, "load_known", spy)

    async def statuses(*items: Any) -> list[str]:
        asked.clear()
        resp = await _batch(ingest, list(items))
        assert resp.status_code == 202, resp.text
        return [r["status"] for r in resp.json()["results"]]

    assert await statuses({"type": "lease", **lease_body()}, _charge("c1")) == ["accepted"] * 2
    assert asked == [set()]
    assert await statuses(_charge("c1"), _charge("c2")) == ["duplicate", "accepted"]
    assert asked == [set(), {"c1", "c2"}]  # the insert of c1 failed: looked up, again
    assert await statuses(_charge("c3")) == ["accepted"]
    assert asked == [{"c3"}]  # the last batch repeated an id
    assert await statuses(_charge("c4")) == ["accepted"]
    assert asked == [set()]
    asked.clear()
    resp = await _batch(ingest, [_charge("c1", lease_id="L-unknown"), _charge("c5")])
    assert [r["status"] for r in resp.json()["results"]] == ["rejected", "accepted"]
    assert resp.json()["results"][0]["errors"][0]["field"] == "event_id"  # not lease_id
    assert asked == [set(), {"c1"}, {"c1", "c5"}]  # c1 is stored: all looked up
    asked.clear()
    resp = await _batch(ingest, [_charge("c6", lease_id="L-unknown"), _charge("c7")])
    assert [r["status"] for r in resp.json()["results"]] == ["rejected", "accepted"]
    assert resp.json()["results"][0]["errors"][0]["field"] == "lease_id"
    assert asked == [set(), {"c6"}]  # c6 is not stored: the answers stand
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS)
    assert sorted(header(r, "ce_id") or "" for r in records) == [
        f"org1:c{i}" for i in (1, 2, 3, 4, 5, 7)
    ]


async def test_same_event_id_in_two_orgs_is_not_a_duplicate(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    await ingest.post("/v1/leases", lease_body("L-2", name="Bo Berg"), key=ingest.other_key)
    a = await ingest.post(
        "/v1/ledger/charges", {k: v for k, v in _charge("x").items() if k != "type"}
    )
    b = await ingest.post(
        "/v1/ledger/charges",
        {k: v for k, v in _charge("x", lease_id="L-2").items() if k != "type"},
        key=ingest.other_key,
    )
    assert a.json()["status"] == b.json()["status"] == "accepted"
    assert b.json()["id"] == "org2:x"


async def test_csv_import(ingest: Ingest) -> None:
    await ingest.post("/v1/leases", lease_body())
    csv = (
        "type,event_id,lease_id,invoice_id,ocr,period,amount_ore,due_date,payment_id,"
        "booked_date,reference\n"
        "charge,v1,L-1,INV-4,7770401,2026-04,850000,,,,\n"
        "payment,v2,,,,,850000,,BG-1,2026-03-31,7770401\n"
        "payment,v3,,,,,12.5,,BG-2,2026-03-31,7770401\n"
        "charge,v4,L-1,INV-5,,2026-04,-1,,,,\n"
    )
    resp = await ingest.http.post(
        "/v1/ledger/import",
        content=csv.encode(),
        headers={"X-API-Key": ingest.key, "Content-Type": "text/csv; charset=utf-8"},
    )
    assert resp.status_code == 202, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected", "rejected"]
    assert results[2]["errors"][0]["field"] == "amount_ore"
    assert results[3]["errors"][0]["field"] == "amount_ore"
    records = await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS, count=2)
    by_id = {header(r, "ce_id"): orjson.loads(r.value) for r in records}
    for record in records:
        decode(record.value, record.headers)  # constructed events still satisfy the contract
    assert by_id["org1:v1"]["due_date"] == "2026-03-31"  # Tuesday 31 March 2026
    assert by_id["org1:v2"]["invoice_id"] == "INV-4"


async def test_csv_with_unknown_column_is_400(ingest: Ingest) -> None:
    resp = await ingest.http.post(
        "/v1/ledger/import",
        content=b"type,event_id,colour\ncharge,v1,red\n",
        headers={"X-API-Key": ingest.key, "Content-Type": "text/csv"},
    )
    assert resp.status_code == 400
    assert "colour" in resp.json()["detail"]


async def test_records_are_encoded_while_the_write_runs_and_sent_after_it(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's records are encoded while its database write runs; nothing is sent
    before the write succeeded, and a refused write sends nothing (tests/ingest/
    test_hardening.py and the raced batch above check that nothing is published)."""
    await ingest.post("/v1/leases", lease_body())
    steps: list[str] = []
    apply, prepare, send = IngestStore.apply, Producer.prepare, Producer.send_prepared

    async def logged_apply(store: IngestStore, *args: Any, **kwargs: Any) -> None:
        steps.append("write")
        await apply(store, *args, **kwargs)
        steps.append("written")

    async def logged_prepare(producer: Producer, events: Any) -> Any:
        steps.append("encode")
        return await prepare(producer, events)

    async def logged_send(producer: Producer, prepared: Any) -> None:
        steps.append("send")
        await send(producer, prepared)

    monkeypatch.setattr(IngestStore, "apply", logged_apply)
    monkeypatch.setattr(Producer, "prepare", logged_prepare)
    monkeypatch.setattr(Producer, "send_prepared", logged_send)
    resp = await _batch(ingest, [_charge(f"o{i}") for i in range(3)])
    assert resp.status_code == 202 and resp.json()["accepted"] == 3
    assert steps == ["write", "encode", "written", "send"]
    assert len(await read_topic(ingest.broker.bootstrap_servers, LEDGER_EVENTS, count=3)) == 3
