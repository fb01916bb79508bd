"""The request path's shortcuts give exactly what the plain path gives (issue 14)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from ingest import examples
from ingest.batch import _UNCHECKED, parse_batch, to_item
from ingest.pipeline import Item, body_hash, process
from ingest.processing import Context, Known, LeaseRow, _new
from shared.events import CloudEvent, EventData, RentCharged, encode, new_event
from shared.guard import CONTROL_REASON

CTX = Context(
    org_id="org1", now=datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1))), secret=b"k"
)
EVERY_KIND: list[dict[str, Any]] = [
    *examples.BATCH,
    {"type": "reversal", **examples.REVERSAL},
    {"type": "credit", **examples.CREDIT},
    {"type": "complaint", **examples.COMPLAINT},
    {"type": "warning", **examples.WARNING},
    {"type": "payment", **examples.PAYMENT, "event_id": "p2", "reference": "L-1001"},
    {"type": "complaint", **examples.COMPLAINT, "event_id": "k2", "description": 'Åsa, "tyst"\n'},
]
JSON = "application/json"


def per_item(raws: list[dict[str, Any]]) -> list[Item]:
    return [to_item(i, raw) for i, raw in enumerate(raws)]


@pytest.mark.parametrize(
    "body",
    [orjson.dumps(EVERY_KIND), json.dumps(EVERY_KIND).encode()],  # raw UTF-8, \u escapes
    ids=["utf8", "escaped"],
)
def test_a_valid_array_gives_the_items_of_the_per_item_path(body: bytes) -> None:
    got = parse_batch(body, JSON, max_events=100)
    assert got == per_item(EVERY_KIND)
    assert [type(i.body) for i in got] == [type(i.body) for i in per_item(EVERY_KIND)]


@pytest.mark.parametrize("text", ["x\u0000y", "ring\u0007", "del\u007f", "b\bf\f"])
def test_a_control_character_still_gets_its_field_error(text: str) -> None:
    raws = [*EVERY_KIND, {"type": "complaint", **examples.COMPLAINT, "description": text}]
    for body in (orjson.dumps(raws), json.dumps(raws).encode()):
        got = parse_batch(body, JSON, max_events=100)
        assert got[:-1] == per_item(EVERY_KIND)
        assert got[-1].body is None
        assert [(e.field, e.reason) for e in got[-1].errors] == [
            ("description", f"Value error, {CONTROL_REASON}")
        ]


def test_the_unchecked_validator_leaves_out_only_the_control_check() -> None:
    # so the byte scan in parse_batch is what keeps control characters out of it
    nul = [{"type": "complaint", **examples.COMPLAINT, "description": "x\u0000y"}]
    assert _UNCHECKED.validate_json(orjson.dumps(nul))[0].description == "x\u0000y"
    with pytest.raises(ValueError):
        _UNCHECKED.validate_json(orjson.dumps([{**nul[0], "amount_ore": "1"}]))


def test_an_invalid_array_is_answered_item_by_item() -> None:
    raws = [EVERY_KIND[1], {**EVERY_KIND[2], "amount_ore": "100"}, 7]
    got = parse_batch(orjson.dumps(raws), JSON, max_events=100)
    assert got == per_item(raws)
    assert [i.body is None for i in got] == [False, True, True]


def old_body_hash(item: Item) -> str:
    """The formula the stored hashes were made with (before issue 14)."""
    assert item.body is not None
    digest = hashlib.sha256(f"{item.kind}\0{item.path_id or ''}\0".encode())
    digest.update(item.body.model_dump_json(exclude={"type"}).encode())
    return digest.hexdigest()


def test_body_hashes_match_the_stored_ones() -> None:
    items = parse_batch(orjson.dumps(EVERY_KIND), JSON, max_events=100)
    assert [body_hash(i) for i in items] == [old_body_hash(i) for i in items]
    # computed on main before the change: rows in seen_events hold these
    assert [body_hash(i) for i in items[:5]] == [
        "7cb16cc0472813cc48d995e3fa751800fe6978756d147ee238c8891ba3fa4bab",
        "14b64b995ddaf581e2ef11acf613ba52dd3c40a961e1c58680d3b15829402ab4",
        "852ff086e075d16ee04838415049836c13be34930ba56b8f172f5bb829c7aa8a",
        "c549844ce6060593ece3800f4857d8de0165f5c197d3201f007c0d427ef1dae6",
        "a2f7d0116b89e479da7170ad19f47edb7eae3d496f2f258a10f9b48a52202f0e",
    ]
    items[3].path_id = "L-1001"
    assert body_hash(items[3]) == old_body_hash(items[3])
    assert body_hash(items[3]) == "f11370baaa30c6129495ff09e78f2d3f6f002a3df08860927eb4cd0a528ba7d7"


def old_encode(event: CloudEvent[EventData]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """shared.events.encode before issue 14."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_time", event.time.isoformat().encode()),
        ("ce_subject", event.key.encode()),
        ("content-type", b"application/json"),
    ]
    return event.key.encode(), event.data.__pydantic_serializer__.to_json(event.data), headers


def test_envelopes_and_kafka_records_are_unchanged() -> None:
    items = parse_batch(orjson.dumps(EVERY_KIND), JSON, max_events=100)
    known = Known(complaints={"K-55": "L-1001"})
    out = process(items, CTX, known)
    assert out.statuses == ["accepted"] * len(items), out.errors
    for item, event in zip(items, out.events, strict=True):
        assert event == new_event(
            event.data, id=f"org1:{item.event_id}", source="ingest/org1", time=CTX.now
        )
        assert event.time.tzinfo is UTC
    other = Context(org_id="org1", now=datetime(2026, 3, 3, tzinfo=UTC), secret=b"k")
    second = process(items[1:3], other, Known(leases={"L-1001": LeaseRow("org1", None)}))
    for event in [*out.events, *second.events, *out.events]:  # time changes between batches
        assert encode(event) == old_encode(event)


LEDGER_VARIANTS: list[dict[str, Any]] = [
    {"type": "charge", **examples.CHARGE, "event_id": "c2", "due_date": "2026-02-25"},
    {"type": "charge", **examples.CHARGE, "event_id": "c3", "ocr": None},
    {"type": "payment", **examples.PAYMENT, "event_id": "p3", "lease_id": "L-1001"},
    {"type": "payment", **examples.PAYMENT, "event_id": "p4", "reference": "L-1001"},
]


def test_event_data_is_built_and_validated_as_the_model_builds_it() -> None:
    """Every kind's event data, charges and payments in each variant, is what the model
    builds from the same fields: the same data, field order, fields set and JSON."""
    raws = [*EVERY_KIND, *LEDGER_VARIANTS]
    items = parse_batch(orjson.dumps(raws), JSON, max_events=100)
    out = process(items, CTX, Known(complaints={"K-55": "L-1001"}))
    assert out.statuses == ["accepted"] * len(items), out.errors
    for event in out.events:
        data = event.data
        rebuilt = type(data)(**{name: getattr(data, name) for name in data.model_fields_set})
        assert rebuilt == data
        assert rebuilt.model_fields_set == data.model_fields_set
        assert list(data.__dict__) == list(type(data).model_fields)
        assert data.model_dump_json() == rebuilt.model_dump_json()
        assert (data.__pydantic_extra__, data.__pydantic_private__) == (None, None)
    fields: dict[str, Any] = {
        "lease_id": "L-1",
        "org_id": "org1",
        "invoice_id": "I-1",
        "period": "2026-03",
        "amount_ore": 0,
        "due_date": date(2026, 2, 27),
        "due_date_source": "jb_12_20",
    }
    with pytest.raises(ValidationError) as caught:
        _new(RentCharged, **fields)
    assert [e["loc"] for e in caught.value.errors()] == [("amount_ore",)]
    assert _new(RentCharged, **{**fields, "amount_ore": 1}) == RentCharged(
        **{**fields, "amount_ore": 1}
    )
