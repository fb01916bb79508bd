"""A retracted signal (SignalRetracted on risk.signals) withdraws what it queued, nothing more."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pytest

from notifier.api import create_app
from notifier.channels import ChannelError, LogChannel, SendResult
from notifier.workflow import Context, apply_provider_status, on_retracted, on_signal
from shared.bus import Producer
from shared.bus.broker import EmbeddedBroker
from shared.clock import ManualClock
from shared.db import Database
from shared.events import SignalRaised, SignalRetracted
from shared.topics import NOTIFICATION_EVENTS
from tests.helpers import header, read_topic, wait_for
from tests.notifier.conftest import (
    SenderFactory,
    add_lease,
    add_staff,
    in_tx,
    local,
    make_lease,
    make_signal,
)
from tests.notifier.ingest_stub import IngestStub
from tests.notifier.test_service import _event, _settings, running
from tests.notifier.twilio_server import FakeTwilio


def retraction(sig: SignalRaised) -> SignalRetracted:
    """The retraction the rules service emits when a payment booked in time arrives late."""
    return SignalRetracted(
        lease_id=sig.lease_id,
        org_id=sig.org_id,
        retraction_id=f"{sig.signal_id}:retracted",
        signal_id=sig.signal_id,
        signal=sig.signal,
        rule=sig.rule,
        policy_version=sig.policy_version,
        occurred_at=datetime(2026, 3, 3, 20, 0, tzinfo=local(2026, 3, 3).tzinfo),
        reason_code="paid_on_time",
        period=sig.period,
        due_date=sig.due_date,
        inputs={"paid_on": "2026-02-27"},
        reason_sv="Hyran betalades i tid.",
        reason_en="The rent was paid on time.",
    )


def _bodies(records: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(header(r, "ce_type") or "", orjson.loads(r.value)) for r in records]


def _cancelled(signal_id: str, kind: str) -> Any:
    def seen(records: list[Any]) -> bool:
        return any(
            t.endswith(kind) and b["status"] == "cancelled" and b["signal_id"] == signal_id
            for t, b in _bodies(records)
        )

    return seen


@pytest.mark.slow
async def test_retraction_on_the_broker_cancels_pending_sms_and_tasks_of_that_signal_only(
    broker: EmbeddedBroker,
    producer: Producer,
    db: Database,
    clock: ManualClock,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    clock.set(local(2026, 3, 3, 21, 30))  # quiet hours: tenant SMS wait for the morning
    wrong = make_signal()  # late rent for 2026-03, paid on the due date but booked late
    forfeiture = make_signal(signal="forfeiture_possible")
    standing = make_signal(signal_id="L-1:2026-04:late_rent_detected").model_copy(
        update={"period": "2026-04"}
    )
    app = create_app(_settings(db, broker, twilio, ingest), clock=clock)
    async with running(app):
        # lease.events and risk.signals have no order between them: let the notifier know
        # the tenants first, or the signals queue for any tenant and are split per tenant
        # later (a cancellation of its own, not the one this test is about)
        await producer.publish_many([_event(make_lease(), "lease-1", clock)])
        await wait_for(
            lambda: in_tx(db, clock, lambda store: store.get_lease("L-1")),
            what="the notifier to know the lease",
        )
        await producer.publish_many(
            [
                _event(wrong, "s1", clock),
                _event(forfeiture, "s2", clock),
                _event(standing, "s3", clock),
            ]
        )
        await read_topic(
            broker.bootstrap_servers,
            NOTIFICATION_EVENTS,
            until=lambda rs: (
                sum(b["status"] in ("deferred", "created") for _, b in _bodies(rs)) >= 3
            ),
        )
        await producer.publish_many(
            [_event(retraction(wrong), "r1", clock), _event(retraction(forfeiture), "r2", clock)]
        )
        records = await read_topic(
            broker.bootstrap_servers,
            NOTIFICATION_EVENTS,
            until=lambda rs: (
                _cancelled(wrong.signal_id, "status_changed.v1")(rs)
                and _cancelled(forfeiture.signal_id, "task_changed.v1")(rs)
            ),
        )
        sms_cancel = [
            b for t, b in _bodies(records) if b["status"] == "cancelled" and "status_changed" in t
        ]
        assert [(b["signal_id"], b["detail"]) for b in sms_cancel] == [
            (wrong.signal_id, "signal_retracted")
        ]
        clock.set(local(2026, 3, 4, 8, 30))
        await wait_for(lambda: _value(len(twilio.messages) >= 1), what="the standing SMS")
        await app.state.sender.run_once()
    assert len(twilio.messages) == 1 and "2026-04" in twilio.messages[0]["body"]


async def _value(value: Any) -> Any:
    return value


async def test_a_sent_sms_stays_sent_but_nothing_follows_a_retracted_signal(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await add_staff(db, clock, "s1", work_start="00:00", work_end="23:59", work_days="1234567")
    late, forfeiture = make_signal(), make_signal(signal="forfeiture_possible")
    await in_tx(db, clock, lambda s: on_signal(s, ctx, late, clock.now()))
    assert await make_sender().run_once() == 1  # sent before anyone knew it was wrong
    await in_tx(db, clock, lambda s: on_signal(s, ctx, forfeiture, clock.now()))
    for sig in (late, forfeiture):
        await in_tx(db, clock, lambda s, sig=sig: on_retracted(s, retraction(sig), clock.now()))
    rows = {r.id: r for r in await in_tx(db, clock, lambda s: s.list_notifications("L-1"))}
    assert rows["L-1:2026-03:late_rent_detected:T1"].status == "sent"  # not unsent
    alert = next(r for r in rows.values() if r.recipient_kind == "staff")
    assert (alert.status, alert.detail) == ("cancelled", "signal_retracted")
    [task] = await in_tx(db, clock, lambda s: s.list_tasks(lease_id="L-1"))
    assert task.status == "cancelled"
    # A failure receipt for the sent SMS opens no fallback call, and nothing else goes out.
    sid = rows["L-1:2026-03:late_rent_detected:T1"].provider_sid
    await in_tx(
        db,
        clock,
        lambda s: apply_provider_status(
            s,
            ctx,
            attempt_id=None,
            sid=sid,
            provider_status="undelivered",
            error_code="30003",
            now=clock.now(),
        ),
    )
    assert len(await in_tx(db, clock, lambda s: s.list_tasks(lease_id="L-1"))) == 1
    assert await make_sender().run_once() == 0
    assert len(twilio.messages) == 1
    # The same signal delivered again under another event id queues nothing.
    await in_tx(db, clock, lambda s: on_signal(s, ctx, forfeiture, clock.now()))
    assert len(await in_tx(db, clock, lambda s: s.list_tasks(lease_id="L-1"))) == 1


@dataclass
class RetractDuringSend(LogChannel):
    """A provider that fails with 500 while the retraction commits: the retry must not go."""

    retract: Any = None
    calls: list[str] = field(default_factory=list)

    async def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        self.calls.append(body)
        if len(self.calls) == 1:
            await self.retract()
            raise ChannelError(500, None, "server error")
        return await super().send(to=to, body=body, status_callback=status_callback)


async def test_a_send_under_way_when_the_retraction_arrives_is_not_retried(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory
) -> None:
    await add_lease(db, clock)
    late = make_signal()
    await in_tx(db, clock, lambda s: on_signal(s, ctx, late, clock.now()))

    async def retract() -> None:
        await in_tx(db, clock, lambda s: on_retracted(s, retraction(late), clock.now()))

    channel = RetractDuringSend(retract=retract)
    sender = make_sender(channel=channel)
    assert await sender.run_once() == 0
    [row] = await in_tx(db, clock, lambda s: s.list_notifications("L-1"))
    assert row.status == "queued"  # the retry the 500 scheduled
    clock.set(local(2026, 3, 3, 15, 0))
    assert await sender.run_once() == 0
    assert len(channel.calls) == 1 and channel.sent == []
    [row] = await in_tx(db, clock, lambda s: s.list_notifications("L-1"))
    assert (row.status, row.detail) == ("cancelled", "signal_retracted")
