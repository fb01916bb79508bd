"""A signal that arrives before its lease: one SMS per tenant and signal, never two (issue 11)."""

from __future__ import annotations

from datetime import date
from typing import Any

from notifier.workflow import Context, on_lease, on_signal
from shared.clock import ManualClock
from shared.db import Database
from shared.events import LeaseUpdated
from tests.notifier.conftest import SenderFactory, in_tx, local, make_lease, make_signal
from tests.notifier.ingest_stub import IngestStub
from tests.notifier.twilio_server import FakeTwilio

PHONES = {"T1": "+46701234567", "T2": "+46701234568"}
LEASE = make_lease(date(2025, 4, 1), tenant_ids=tuple(PHONES), kind=LeaseUpdated)


def _two_tenants(ingest: IngestStub) -> None:
    ingest.add_lease(
        "L-1",
        tenants=[
            {"tenant_id": t, "phone": phone, "language": "sv", "opted_out": False}
            for t, phone in PHONES.items()
        ],
    )


async def _signal(db: Database, clock: ManualClock, ctx: Context) -> None:
    # the same signal each time, as a redelivery under another CloudEvent id brings it
    await in_tx(db, clock, lambda s: on_signal(s, ctx, make_signal(), clock.now()))


async def _rows(db: Database, clock: ManualClock) -> list[Any]:
    return await in_tx(db, clock, lambda s: s.list_notifications("L-1"))


async def test_a_signal_before_its_lease_texts_every_tenant_once(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    _two_tenants(ingest)
    await _signal(db, clock, ctx)
    await _signal(db, clock, ctx)
    assert await make_sender().run_once() == 2
    assert sorted(m["to"] for m in twilio.messages) == sorted(PHONES.values())
    await in_tx(db, clock, lambda s: on_lease(s, ctx, LEASE, clock.now()))
    await _signal(db, clock, ctx)  # now the tenants are known: keys (signal, tenant)
    assert await make_sender().run_once() == 0
    assert len(twilio.messages) == 2
    sent = {r.recipient_id: r.id for r in await _rows(db, clock) if r.status == "sent"}
    signal_id = make_signal().signal_id
    assert sent == {t: f"{signal_id}:{t}" for t in PHONES}


async def test_a_lease_arriving_after_the_signal_splits_the_pending_sms(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    _two_tenants(ingest)
    clock.set(local(2026, 3, 3, 21, 15))  # quiet hours: deferred to the morning
    await _signal(db, clock, ctx)
    await in_tx(db, clock, lambda s: on_lease(s, ctx, LEASE, clock.now()))
    await _signal(db, clock, ctx)
    rows = {r.recipient_id: r.status for r in await _rows(db, clock)}
    assert rows == {"*": "cancelled", "T1": "deferred", "T2": "deferred"}
    clock.set(local(2026, 3, 4, 8, 0))
    assert await make_sender().run_once() == 2
    assert sorted(m["to"] for m in twilio.messages) == sorted(PHONES.values())
