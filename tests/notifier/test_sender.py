"""The sender against a real database and a local Twilio through the real SDK over HTTP."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from notifier.api import build_channel
from notifier.channels import LogChannel
from notifier.config import NotifierSettings
from notifier.models import outbox, tasks
from notifier.sender import Sender
from notifier.workflow import Context, escalate_overdue, on_lease, on_signal
from shared.bus import SimulatedCrash
from shared.clock import ManualClock
from shared.db import Database
from tests.notifier.conftest import (
    CALLBACK,
    SenderFactory,
    add_lease,
    add_staff,
    in_tx,
    local,
    make_lease,
    make_signal,
)
from tests.notifier.ingest_stub import IngestStub
from tests.notifier.twilio_server import FakeTwilio


async def _signal(db: Database, clock: ManualClock, ctx: Context, **kw: Any) -> None:
    await in_tx(db, clock, lambda s: on_signal(s, ctx, make_signal(**kw), clock.now()))


async def _notifications(db: Database, clock: ManualClock, lease: str = "L-1") -> list[Any]:
    return await in_tx(db, clock, lambda s: s.list_notifications(lease))


async def _tasks(db: Database) -> list[Any]:
    async with db.sessionmaker() as session:
        return list((await session.execute(select(tasks).order_by(tasks.c.created_at))).all())


async def test_sms_goes_out_through_twilio_with_masked_phone_and_dignified_text(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    assert await make_sender().run_once() == 1
    assert len(twilio.messages) == 1
    msg = twilio.messages[0]
    assert msg["to"] == "+46701234567"
    assert "8 123 kr" in msg["body"] and "2026-02-27" in msg["body"]
    assert "avbetalningsplan" in msg["body"] and "budget- och skuldrådgivning" in msg["body"]
    assert msg["status_callback"].startswith(CALLBACK + "?attempt=")
    [row] = await _notifications(db, clock)
    assert row.status == "sent" and row.provider_sid == msg["sid"]
    assert row.phone_masked == "***567" and row.channel == "sms"
    assert "1234567" not in repr(tuple(row))


async def test_quiet_hours_defer_to_next_morning(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    clock.set(local(2026, 3, 3, 21, 15))
    await _signal(db, clock, ctx)
    [row] = await _notifications(db, clock)
    assert row.status == "deferred" and row.due_at == local(2026, 3, 4, 8, 0)
    sender = make_sender()
    assert await sender.run_once() == 0
    clock.set(local(2026, 3, 4, 7, 59))
    assert await sender.run_once() == 0
    assert twilio.messages == []
    clock.set(local(2026, 3, 4, 8, 0))
    assert await sender.run_once() == 1
    assert len(twilio.messages) == 1


async def test_arrears_cleared_cancels_the_deferred_send(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await add_staff(db, clock, "s1")
    clock.set(local(2026, 3, 3, 16, 0))
    await _signal(db, clock, ctx, signal="plan_breached")  # SMS + call task
    await make_sender().run_once()  # the plan_breached SMS goes out at 16:00
    clock.set(local(2026, 3, 3, 22, 0))
    await _signal(db, clock, ctx, signal="late_rent_detected")  # deferred to 08:00
    clock.set(local(2026, 3, 3, 23, 0))
    await _signal(db, clock, ctx, signal="arrears_cleared")
    clock.set(local(2026, 3, 4, 9, 0))
    await make_sender().run_once()
    tenant_sms = [r for r in await _notifications(db, clock) if r.recipient_kind == "tenant"]
    assert [r.status for r in tenant_sms] == ["sent", "cancelled"]
    assert all(t.status == "cancelled" for t in await _tasks(db) if t.kind == "phone_call")
    assert len([m for m in twilio.messages if m["to"] == "+46701234567"]) == 1
    async with db.sessionmaker() as session:
        values = (await session.execute(select(outbox.c.value))).scalars().all()
    assert any(b'"cancelled"' in v for v in values)


async def test_a_payment_racing_the_send_wins(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    """The cleared lease is checked in the claim's own transaction."""
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    clock.advance(timedelta(minutes=1))
    await in_tx(db, clock, lambda s: s.mark_cleared([("L-1", "org1")], at=clock.now()))
    assert await make_sender().run_once() == 0
    assert twilio.messages == []


async def test_same_signal_twice_sends_one_sms(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    await _signal(db, clock, ctx)
    sender = make_sender()
    await sender.run_once()
    await sender.run_once()
    assert len(twilio.messages) == 1
    assert len(await _notifications(db, clock)) == 1


async def test_crash_after_twilio_call_is_reconciled_without_resend(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await _signal(db, clock, ctx)

    async def crash() -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await make_sender(after_provider_call=crash).run_once()
    [row] = await _notifications(db, clock)
    assert row.status == "sending" and len(twilio.messages) == 1
    restarted = make_sender()
    await restarted.run_once()  # too early to reconcile: the attempt may still be running
    assert (await _notifications(db, clock))[0].status == "sending"
    clock.advance(timedelta(minutes=2))
    await restarted.run_once()
    [row] = await _notifications(db, clock)
    assert row.status == "sent" and row.provider_sid == twilio.messages[0]["sid"]
    assert len(twilio.messages) == 1
    assert any(method == "GET" for method, _ in twilio.requests)


async def test_crash_with_unknown_outcome_opens_a_reconcile_task(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await _signal(db, clock, ctx)

    async def crash() -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await make_sender(after_provider_call=crash).run_once()
    twilio.hide_from_list = True
    clock.advance(timedelta(minutes=5))
    sender = make_sender()
    await sender.run_once()
    await sender.run_once()
    [row] = await _notifications(db, clock)
    assert row.status == "unknown"
    assert [t.kind for t in await _tasks(db)] == ["reconcile_send"]
    assert len(twilio.messages) == 1


async def test_permanent_error_falls_back_to_a_call_task(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await add_staff(db, clock, "s1")
    await _signal(db, clock, ctx)
    twilio.fail_next(400, 21211)
    await make_sender().run_once()
    tenant = [r for r in await _notifications(db, clock) if r.recipient_kind == "tenant"]
    assert tenant[0].status == "failed" and "21211" in tenant[0].detail
    [task] = await _tasks(db)
    assert task.kind == "phone_call" and task.assignee_id == "s1"
    staff_alerts = [r for r in await _notifications(db, clock) if r.recipient_kind == "staff"]
    assert [r.recipient_id for r in staff_alerts] == ["s1"]


async def test_unsubscribed_at_twilio_records_opt_out(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    twilio.fail_next(400, 21610)
    await make_sender().run_once()
    [opt] = await in_tx(db, clock, lambda s: s.list_opt_outs())
    assert opt.opted_out and opt.tenant_id == "T1"


async def test_429_and_500_are_retried_with_backoff(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    twilio.fail_next(429, 20429)
    twilio.fail_next(500, 20500)
    sender = make_sender()
    await sender.run_once()
    [row] = await _notifications(db, clock)
    assert row.status == "queued" and row.due_at > clock.now() and "429" in row.detail
    first_delay = row.due_at - clock.now()
    clock.set(row.due_at)
    await sender.run_once()
    [row] = await _notifications(db, clock)
    assert row.status == "queued" and row.attempts == 2
    assert row.due_at - clock.now() > first_delay / 2
    clock.set(row.due_at)
    await sender.run_once()
    [row] = await _notifications(db, clock)
    assert row.status == "sent" and len(twilio.messages) == 1


async def test_no_phone_opens_a_letter_task(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    ingest.add_lease(
        "L-1", tenants=[{"tenant_id": "T1", "phone": None, "language": "sv", "opted_out": False}]
    )
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    await make_sender().run_once()
    assert twilio.messages == []
    assert [t.kind for t in await _tasks(db)] == ["letter"]


async def test_opt_out_from_ingest_or_record_is_honoured(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    ingest.add_lease(
        "L-1", tenants=[{"tenant_id": "T1", "phone": "+46701234567", "opted_out": True}]
    )
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    await make_sender().run_once()
    assert twilio.messages == []
    [row] = await _notifications(db, clock)
    assert row.status == "cancelled" and row.detail == "opted_out"
    assert [t.kind for t in await _tasks(db)] == ["phone_call"]


async def test_weekly_cap_defers(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    capped = Context(policy=ctx.policy.model_copy(update={"weekly_cap_per_tenant": 1}), tz=ctx.tz)
    await add_lease(db, clock)
    await in_tx(db, clock, lambda s: on_signal(s, capped, make_signal(), clock.now()))
    await in_tx(
        db,
        clock,
        lambda s: on_signal(s, capped, make_signal(signal="recovery_period_reminder"), clock.now()),
    )
    sender = make_sender(ctx=capped)
    await sender.run_once()
    assert len(twilio.messages) == 1
    rows = await _notifications(db, clock)
    deferred = [r for r in rows if r.status == "deferred"]
    assert len(deferred) == 1 and deferred[0].due_at >= clock.now() + timedelta(days=6)


async def test_round_robin_assignment_and_escalation_to_lead(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await add_staff(db, clock, "s1")
    await add_staff(db, clock, "s2")
    await add_staff(db, clock, "s3", work_start="13:00", work_end="17:00")
    await add_staff(db, clock, "lead", is_lead=True, phone="+46705550001", work_days="67")
    for n in range(3):
        await _signal(db, clock, ctx, signal="personal_contact_needed", signal_id=f"L-1:p{n}")
    assignees = [t.assignee_id for t in await _tasks(db)]
    assert sorted(assignees) == ["s1", "s1", "s2"]
    await make_sender().run_once()  # the assignees' SMS alerts
    assert len(twilio.messages) == 3
    clock.advance(timedelta(hours=25))
    escalated = await in_tx(db, clock, lambda s: escalate_overdue(s, ctx, clock.now()))
    assert escalated == 3
    assert {t.escalated_to for t in await _tasks(db)} == {"lead"}
    assert {t.status for t in await _tasks(db)} == {"escalated"}
    await make_sender().run_once()
    assert twilio.messages[3:] == []  # the lead works weekends: the alerts wait for Saturday
    clock.set(local(2026, 3, 7, 8, 0))
    await make_sender().run_once()
    assert [m["to"] for m in twilio.messages[3:]] == ["+46705550001"] * 3
    assert await in_tx(db, clock, lambda s: escalate_overdue(s, ctx, clock.now())) == 0


def test_sender_rate_limit_is_from_policy(ctx: Context, make_sender: SenderFactory) -> None:
    sender: Sender = make_sender()
    assert sender.limiter is not None
    assert sender.limiter.rate == ctx.policy.sender_rate_per_second


async def test_new_lease_gets_a_welcome_sms_in_the_tenants_language(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    ingest.add_lease(
        "L-1", tenants=[{"tenant_id": "T1", "phone": "+46701234567", "language": "en"}]
    )
    lease = make_lease(date(2026, 4, 1))
    await in_tx(db, clock, lambda s: on_lease(s, ctx, lease, clock.now()))
    await in_tx(db, clock, lambda s: on_lease(s, ctx, lease, clock.now()))  # redelivered
    await make_sender().run_once()
    [msg] = twilio.messages
    assert msg["body"].startswith("Welcome") and "payment plan" in msg["body"]
    [row] = await _notifications(db, clock)
    assert row.language == "en" and row.template == "welcome"


async def test_no_phone_number_reaches_the_logs(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Neither our logs nor the SDK's (which logs query strings at INFO) carry the number."""
    caplog.set_level(logging.DEBUG)
    await add_lease(db, clock)
    await _signal(db, clock, ctx)

    async def crash() -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await make_sender(after_provider_call=crash).run_once()
    clock.advance(timedelta(minutes=5))
    await make_sender().run_once()  # reconcile: a GET with To=<number> at Twilio
    assert any("To=" in url for method, url in twilio.requests if method == "GET")
    out = capsys.readouterr()
    for text in (caplog.text, out.out, out.err):
        assert "701234567" not in text and "%2B46" not in text


async def test_ingest_refusing_the_token_postpones_and_unknown_lease_fails(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    sender = make_sender()
    ingest.token = "rotated"  # the sender's token is now wrong: 401
    assert await sender.run_once() == 0
    [row] = await _notifications(db, clock)
    assert row.status == "queued" and row.due_at > clock.now()
    assert twilio.messages == []
    ingest.token = "test-service-token"
    del ingest.leases["L-1"]  # ingest does not know the lease: 404
    clock.set(row.due_at)
    await sender.run_once()
    [row] = await _notifications(db, clock)
    assert row.status == "failed" and row.detail == "lease_unknown"
    assert twilio.messages == []


async def test_without_twilio_settings_the_log_channel_records_what_would_be_sent(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    channel = build_channel(NotifierSettings())
    assert isinstance(channel, LogChannel)
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    assert await make_sender(channel=channel).run_once() == 1
    assert twilio.messages == [] and len(channel.sent) == 1
    [row] = await _notifications(db, clock)
    assert row.status == "sent" and row.channel == "log" and row.provider_sid.startswith("LOG")
    async with db.sessionmaker() as session:
        values = (await session.execute(select(outbox.c.value))).scalars().all()
    assert any(b'"channel":"log"' in v and b'"sent"' in v for v in values)
    out = capsys.readouterr().out
    assert "notifier.log_channel.would_send" in out and "701234567" not in out


async def test_outcomes_are_counted_in_metrics(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    def sample(outcome: str) -> float:
        value = REGISTRY.get_sample_value(
            "bokvar_notifier_sms_total", {"channel": "sms", "outcome": outcome}
        )
        return value or 0.0

    before = sample("sent"), sample("retry")
    await add_lease(db, clock)
    await _signal(db, clock, ctx)
    twilio.fail_next(503, 20500)
    sender = make_sender()
    await sender.run_once()
    [row] = await _notifications(db, clock)
    clock.set(row.due_at)
    await sender.run_once()
    assert (sample("sent"), sample("retry")) == (before[0] + 1, before[1] + 1)


async def test_weekly_cap_is_per_tenant_even_when_the_lease_was_not_yet_known(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    """A signal can arrive before its lease event: the tenant is resolved at send time."""
    capped = Context(policy=ctx.policy.model_copy(update={"weekly_cap_per_tenant": 1}), tz=ctx.tz)
    for n in range(3):
        ingest.add_lease(f"U-{n}", tenants=[{"tenant_id": f"TU{n}", "phone": f"+4670555000{n}"}])
        sig = make_signal(f"U-{n}")
        await in_tx(db, clock, lambda s, sig=sig: on_signal(s, capped, sig, clock.now()))
    await make_sender(ctx=capped).run_once()
    assert sorted(m["to"] for m in twilio.messages) == [f"+4670555000{n}" for n in range(3)]
    rows = [r for n in range(3) for r in await _notifications(db, clock, f"U-{n}")]
    # the notification for any tenant ("*") was split into one per tenant at send time
    assert {r.status for r in rows if r.recipient_id == "*"} == {"cancelled"}
    rows = [r for r in rows if r.recipient_id != "*"]
    assert sorted(r.recipient_id for r in rows) == ["TU0", "TU1", "TU2"]
    assert {r.status for r in rows} == {"sent"}


async def test_sends_overlap_up_to_the_concurrency_setting(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
    backend: str,
) -> None:
    """One send at a time, a process sends at most 1 / (Twilio's latency) SMS a second."""
    for n in range(6):
        ingest.add_lease(f"C-{n}", tenants=[{"tenant_id": f"TC{n}", "phone": f"+4670666000{n}"}])
        sig = make_signal(f"C-{n}")
        await in_tx(db, clock, lambda s, sig=sig: on_signal(s, ctx, sig, clock.now()))
    twilio.delay = 0.2
    assert await make_sender(concurrency=3).run_once() == 6
    assert sorted(m["to"] for m in twilio.messages) == [f"+4670666000{n}" for n in range(6)]
    # SQLite has one writer at a time: its sender sends one at a time
    assert twilio.max_in_flight == (3 if backend == "postgresql" else 1)
    rows = [r for n in range(6) for r in await _notifications(db, clock, f"C-{n}")]
    assert sorted(r.status for r in rows if r.recipient_id != "*") == ["sent"] * 6


@pytest.mark.postgres
async def test_two_senders_at_once_keep_the_weekly_cap(
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    backend: str,
) -> None:
    """Two replicas (or two sends in flight) for one tenant: the cap's check and the claim
    are one step per tenant, and an SMS claimed but not yet recorded counts."""
    if backend != "postgresql":
        pytest.skip("replicas share a PostgreSQL database (BOKVAR_TEST_DATABASE_URL)")
    capped = Context(policy=ctx.policy.model_copy(update={"weekly_cap_per_tenant": 1}), tz=ctx.tz)
    await add_lease(db, clock)
    for signal in ("late_rent_detected", "recovery_period_reminder"):
        sig = make_signal(signal=signal)
        await in_tx(db, clock, lambda s, sig=sig: on_signal(s, capped, sig, clock.now()))
    twilio.delay = 0.3  # the first send is still at Twilio when the second is checked
    first, second = make_sender(ctx=capped), make_sender(ctx=capped, concurrency=2)
    assert sum(await asyncio.gather(first.run_once(), second.run_once())) == 1
    assert len(twilio.messages) == 1
    rows = await _notifications(db, clock)
    assert sorted(r.status for r in rows) == ["deferred", "sent"]
    [deferred] = [r for r in rows if r.status == "deferred"]
    assert deferred.due_at >= clock.now() + timedelta(days=6)
