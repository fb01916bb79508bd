"""kill -9 in the middle of a simulated month: nothing lost, nothing doubled, no second SMS."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from bokvar.simulate.generator import Shares, history, households
from shared.events import NotificationStatusChanged, SignalRaised
from shared.topics import NOTIFICATION_EVENTS, RISK_SIGNALS
from tests.e2e.conftest import api_key
from tests.e2e.pipeline import Pipeline
from tests.e2e.test_pipeline import local
from tests.e2e.watch import Watcher
from tests.notifier.twilio_server import FakeTwilio

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ORG = "sim"
TODAY = date(2026, 3, 10)


async def _push(client: httpx.AsyncClient, items: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/events/batch", json=items)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == 0, response.text


async def _watermark(client: httpx.AsyncClient, n: int) -> None:
    """Say, as the ERP does after sending history, that payments through today are all in."""
    body = {"event_id": f"wm-{n}", "booked_through": TODAY.isoformat()}
    response = await client.post("/v1/ledger/watermark", json=body)
    assert response.status_code == 202, response.text


async def _quiet(twilio: FakeTwilio, w: Watcher, seconds: float = 3.0) -> None:
    """Await until neither the Twilio server nor the topics have seen anything new for a while."""
    last = (-1, -1)
    since = time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await w.poll(timeout_ms=300)
        now = (len(twilio.messages), len(w.events))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > seconds:
            return
    raise AssertionError("the pipeline did not settle")


async def test_kill_9_rules_and_notifier_mid_month_loses_and_doubles_nothing(
    start_pipeline: Callable[..., Any], twilio: FakeTwilio
) -> None:
    # Tuesday 10 March 2026, 10:00: no quiet hours for the next hours (real-time clock).
    p: Pipeline = await start_pipeline(local(2026, 3, 10, 10, 0), speed=1.0)
    key = await api_key(p, ORG)
    homes = households(
        120,
        seed=5,
        org=ORG,
        start=TODAY,
        shares=Shares(late=0.1, partial=0.1, stops_paying=0.15, disturbance=0.0),
    )
    items = [e.item for e in history(homes, months=2, today=TODAY, seed=5)]
    chunks = [items[i : i + len(items) // 6 + 1] for i in range(0, len(items), len(items) // 6 + 1)]
    async with (
        httpx.AsyncClient(
            base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=60
        ) as ingest,
        Watcher(p.bootstrap_servers, [RISK_SIGNALS, NOTIFICATION_EVENTS]) as w,
    ):
        for chunk in chunks[:3]:
            await _push(ingest, chunk)
        await _watermark(ingest, 1)  # late stages wait for it (history covered so far)
        # Both die while they are working through the first half of the month.
        await w.wait(lambda d: isinstance(d, SignalRaised), what="first signals")
        p.kill9("rules")
        p.kill9("notifier")
        await _push(ingest, chunks[3])  # arrives while they are down
        await p.restart("rules")
        await p.restart("notifier")
        for chunk in chunks[4:]:
            await _push(ingest, chunk)
        await _watermark(ingest, 2)
        assert await p.drained(("rules", "notifier")), "consumers did not drain"
        await _quiet(twilio, w)

    signals = [e.data for e in w.events if isinstance(e.data, SignalRaised)]
    # Nothing doubled: one signal id per lease, stage and due date, whatever was redelivered.
    ids_per_stage: dict[tuple[str, str, Any], set[str]] = defaultdict(set)
    for s in signals:
        ids_per_stage[(s.lease_id, s.signal, s.due_date)].add(s.signal_id)
    assert all(len(ids) == 1 for ids in ids_per_stage.values()), ids_per_stage
    # Nothing lost: every household still owing got the whole arrears ladder for March rent.
    owing = {h.lease_id for h in homes if h.behaviour in ("stops_paying", "partial")}
    assert len(owing) >= 15
    march_due = date(2026, 2, 27)
    for stage in ("late_rent_detected", "personal_contact_needed", "forfeiture_possible"):
        flagged = {s.lease_id for s in signals if s.signal == stage and s.due_date == march_due}
        assert owing <= flagged, (stage, sorted(owing - flagged))
    # No tenant got a second SMS: one message per recipient and text, and one 'sent' per send.
    pairs = Counter((m["to"], m["body"]) for m in twilio.messages)
    assert pairs and max(pairs.values()) == 1, [k for k, v in pairs.items() if v > 1][:3]
    sent = Counter(
        e.data.notification_id
        for e in w.events
        if isinstance(e.data, NotificationStatusChanged) and e.data.status == "sent"
    )
    assert max(sent.values()) == 1
    late_sms = {
        e.data.lease_id
        for e in w.events
        if isinstance(e.data, NotificationStatusChanged)
        and e.data.signal == "late_rent_detected"
        and e.data.status == "sent"
    }
    assert owing <= late_sms, sorted(owing - late_sms)[:5]
