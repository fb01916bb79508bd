"""The outbox rows rules bulk-inserts (shared.bus.outbox.outbox_row) decode like `encode`."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson

from rules.consumer import signal_event
from rules.engine import LeaseState, LedgerEntry, evaluate
from shared.bus.outbox import outbox_row
from shared.clock import local_midnight
from shared.events import decode, encode
from tests.rules.scenario import POLICY


def test_outbox_row_decodes_like_encode() -> None:
    due = date(2026, 2, 27)
    state = LeaseState(
        lease_id="L-1",
        org_id="org1",
        monthly_rent_ore=812_345,
        entries=(LedgerEntry("inv-1", "charge", 812_345, date(2026, 2, 13), "2026-03", due),),
    )
    ev = evaluate(state, POLICY, local_midnight(date(2026, 3, 10)), frozenset())
    assert ev.signals  # late rent at least: a body with Swedish text, floats and nested risk
    now = datetime(2026, 3, 10, 8, tzinfo=UTC)
    for draft in ev.signals:
        event = signal_event(
            draft, lease_id=state.lease_id, org_id="org1", version="v", risk=ev.risk.model()
        )
        key, value, headers = encode(event)
        row = outbox_row(event, now)
        row_headers = [(k, v.encode()) for k, v in orjson.loads(row["headers"])]
        assert row_headers == headers
        assert row["key"].encode() == key
        assert orjson.loads(row["value"]) == orjson.loads(value)
        assert decode(row["value"], row_headers) == decode(value, headers)
        assert (row["event_id"], row["topic"], row["created_at"]) == (event.id, event.topic, now)
