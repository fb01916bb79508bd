"""Event contracts: CloudEvents binary mode round trip, validation, and schema drift."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from bokvar.commands.docs import ROOT
from shared.events import CloudEvent, EnvelopeError, RentCharged, decode, encode, new_event
from shared.events.base import REGISTRY
from shared.topics import CATALOG

T = datetime(2026, 2, 27, 12, 0, tzinfo=UTC)


def _charge() -> RentCharged:
    return RentCharged(
        lease_id="L-1",
        org_id="org1",
        invoice_id="INV-1",
        period="2026-03",
        amount_ore=812_500,
        due_date=date(2026, 2, 27),
        due_date_source="jb_12_20",
    )


def test_round_trip_in_binary_mode() -> None:
    event = new_event(_charge(), id="org1:e1", source="ingest/org1", time=T)
    key, value, headers = encode(event)
    h = dict(headers)
    assert key == b"L-1"
    assert h["ce_type"] == b"se.bokvar.ledger.rent_charged.v1"
    assert h["ce_specversion"] == b"1.0" and h["ce_id"] == b"org1:e1"
    back = decode(value, headers)
    assert back == event
    assert back.topic == "ledger.events"


def test_a_decoded_event_is_a_whole_frozen_cloud_event() -> None:
    # decode builds the CloudEvent without its __init__: every field set, still frozen
    event = new_event(_charge(), id="org1:e1", source="ingest/org1", time=T)
    back = decode(*encode(event)[1:])
    assert type(back) is CloudEvent
    assert (back.id, back.source, back.time, back.data) == ("org1:e1", "ingest/org1", T, _charge())
    assert hash(back) == hash(event) and repr(back) == repr(event)
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.id = "other"  # type: ignore[misc]


def test_decode_explains_what_is_wrong() -> None:
    event = new_event(_charge(), id="e1", source="s", time=T)
    _, value, headers = encode(event)
    with pytest.raises(EnvelopeError, match=r"unknown ce_type 'x\.v9'"):
        decode(value, [(k, b"x.v9" if k == "ce_type" else v) for k, v in headers])
    with pytest.raises(EnvelopeError, match="amount_ore: Input should be greater than 0"):
        decode(value.replace(b"812500", b"-5"), headers)
    with pytest.raises(EnvelopeError, match="ce_time has no time zone"):
        decode(value, [(k, b"2026-01-01T00:00:00" if k == "ce_time" else v) for k, v in headers])


def test_decode_names_the_first_missing_or_bad_header() -> None:
    event = new_event(_charge(), id="e1", source="s", time=T)
    _, value, headers = encode(event)

    def without(*names: str) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in headers if k not in names]

    with pytest.raises(EnvelopeError, match="missing header ce_source"):
        decode(value, without("ce_source", "ce_time"))
    with pytest.raises(EnvelopeError, match="missing header ce_id"):
        decode(value, [*without("ce_id"), ("ce_id", b"")])
    with pytest.raises(EnvelopeError, match="missing header ce_id"):
        decode(value, [(k, None if k == "ce_id" else v) for k, v in headers])  # type: ignore[misc]
    with pytest.raises(EnvelopeError, match="missing header ce_id"):
        decode(value, [])
    with pytest.raises(EnvelopeError, match=r"unsupported ce_specversion '0\.3'"):
        decode(value, [*without("ce_specversion"), ("ce_specversion", b"0.3")])
    with pytest.raises(EnvelopeError, match="ce_time is not ISO 8601: 'later'"):
        decode(value, [*without("ce_time"), ("ce_time", b"later")])
    with pytest.raises(EnvelopeError, match="empty body"):
        decode(None, headers)
    for _ in range(2):  # an unknown type stays unknown (nothing cached for it)
        with pytest.raises(EnvelopeError, match=r"unknown ce_type 'x\.v9'"):
            decode(value, [*without("ce_type"), ("ce_type", b"x.v9")])
    assert decode(value, [*headers, ("ce_id", b"e2")]).id == "e2"  # the last one wins


def test_money_is_integer_ore_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError):
        RentCharged.model_validate({**_charge().model_dump(), "amount_ore": 12.5})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        RentCharged.model_validate({**_charge().model_dump(), "tenant_name": "x"})


def test_every_event_type_is_versioned_and_on_a_catalog_topic() -> None:
    topics = {t.name for t in CATALOG}
    for event_type, model in REGISTRY.items():
        assert event_type.startswith("se.bokvar.") and event_type.endswith(".v1")
        assert model.topic in topics


def test_generated_docs_match_the_code() -> None:
    """Fails when event schemas or the README settings table drift: run `bokvar docs`."""
    result = subprocess.run(
        [sys.executable, "-m", "bokvar.cli_main", "docs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_body_is_the_json_of_the_model() -> None:
    """The wire format: pydantic's JSON mode, whatever serialiser writes it."""
    import orjson

    event = new_event(_charge(), id="e1", source="s", time=T)
    _, value, _ = encode(event)
    assert orjson.loads(value) == orjson.loads(orjson.dumps(event.data.model_dump(mode="json")))
    assert orjson.loads(value)["due_date"] == "2026-02-27"
