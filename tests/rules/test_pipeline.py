"""Consumer + sweep on the real broker and database: signals once each, across restarts."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rules import models
from rules.config import RulesSettings
from rules.service import load_policies, start_rules
from shared.bus import Producer
from shared.bus.broker import EmbeddedBroker
from shared.clock import STOCKHOLM, ManualClock, local_midnight
from shared.db import Database
from shared.events import SignalRaised, decode
from shared.runtime import service_runtime
from shared.topics import RISK_SIGNALS
from tests.conftest import MakeDatabase
from tests.helpers import FAST_GROUP, read_topic, wait_for
from tests.rules.stream import EXPECTED, envelopes, stream

START = date(2026, 2, 20)
END = date(2026, 4, 27)

pytestmark = pytest.mark.slow


def _settings(db: Database, broker: EmbeddedBroker, tmp_path: Path) -> RulesSettings:
    if db.sqlite:
        url = f"sqlite+aiosqlite:///{tmp_path}/bokvar.db"
    else:
        url = db.url.render_as_string(hide_password=False)
    return RulesSettings(
        database_url=url,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_session_timeout_ms=FAST_GROUP["session_timeout_ms"],
        kafka_heartbeat_interval_ms=FAST_GROUP["heartbeat_interval_ms"],
        kafka_rebalance_timeout_ms=FAST_GROUP["rebalance_timeout_ms"],
        consumer_poll_ms=50,
        rules_sweep_interval_seconds=0.05,
        var_dir=tmp_path,
    )


async def _count(db: Database, query: object) -> int:
    async with db.sessionmaker() as session:
        return int((await session.execute(query)).scalar_one())  # type: ignore[call-overload]


async def _run_days(
    settings: RulesSettings,
    db: Database,
    producer: Producer,
    clock: ManualClock,
    days: list[date],
    *,
    id_suffix: str = "",
) -> None:
    """Run a rules runtime while the clock walks `days`: publish, consume, sweep each day."""
    async with service_runtime(settings, "rules", clock=clock) as rt:
        await start_rules(rt, settings, load_policies(settings))
        for day in days:
            clock.set(datetime.combine(day, time(9), tzinfo=STOCKHOLM))
            batch = envelopes(day, id_suffix=id_suffix)
            before = await _count(db, select(func.count()).select_from(models.inbox))
            await producer.publish_many(batch)
            await _wait_inbox(db, before + len(batch), day)
            clock.set(local_midnight(day + timedelta(days=1)) + timedelta(minutes=1))
            await wait_for(lambda: _nothing_due(db, clock), what=f"sweep after {day}")


async def _wait_inbox(db: Database, want: int, day: date) -> None:
    async def consumed() -> bool:
        return await _count(db, select(func.count()).select_from(models.inbox)) >= want

    await wait_for(consumed, what=f"events of {day} consumed")


async def _nothing_due(db: Database, clock: ManualClock) -> bool:
    t = models.deadlines
    due = select(func.count()).select_from(t).where(t.c.open, t.c.due_at <= clock.now())
    return await _count(db, due) == 0


async def _signals_on_topic(broker: EmbeddedBroker) -> Counter[str]:
    records = await read_topic(broker.bootstrap_servers, RISK_SIGNALS, idle_ms=1000)
    ids: Counter[str] = Counter()
    for record in records:
        event = decode(record.value, record.headers)
        assert isinstance(event.data, SignalRaised)
        ids[event.id] += 1
    return ids


async def test_stream_with_restarts_and_a_second_replay_emits_each_signal_once(
    broker: EmbeddedBroker, producer: Producer, make_database: MakeDatabase, tmp_path: Path
) -> None:
    db = await make_database("rules")
    settings = _settings(db, broker, tmp_path)
    clock = ManualClock(datetime.combine(START, time(9), tzinfo=STOCKHOLM))
    days = [START + timedelta(days=n) for n in range((END - START).days + 1)]
    assert {d for d, _ in stream()} <= set(days)

    await _run_days(settings, db, producer, clock, days[:12])  # stop mid-way (2026-03-03)
    await _run_days(settings, db, producer, clock, days[12:])
    first = await _signals_on_topic(broker)
    assert set(first) == EXPECTED
    assert all(n == 1 for n in first.values()), first

    # the ERP re-sends the whole stream under new event ids, across two more restarts
    clock.set(datetime.combine(START, time(9), tzinfo=STOCKHOLM))
    await _run_days(settings, db, producer, clock, days[:30], id_suffix="-again")
    await _run_days(settings, db, producer, clock, days[30:], id_suffix="-again")
    again = await _signals_on_topic(broker)
    assert again == first


async def test_signals_carry_rule_policy_inputs_risk_and_reasons(
    broker: EmbeddedBroker, producer: Producer, make_database: MakeDatabase, tmp_path: Path
) -> None:
    db = await make_database("rules")
    settings = _settings(db, broker, tmp_path)
    clock = ManualClock(datetime.combine(START, time(9), tzinfo=STOCKHOLM))
    days = [START + timedelta(days=n) for n in range(12)]
    await _run_days(settings, db, producer, clock, days)
    records = await read_topic(broker.bootstrap_servers, RISK_SIGNALS, idle_ms=1000)
    by_id = {
        r.key.decode() + "|" + decode(r.value, r.headers).id: decode(r.value, r.headers)
        for r in records
    }
    event = next(e for k, e in by_id.items() if k.endswith("L2:2026-03:late_rent_detected"))
    data = event.data
    assert isinstance(data, SignalRaised)
    assert data.rule == "ladder.late_rent_detected" and data.policy_version == "2026.3"
    assert data.arrears_ore == 300_000 and data.days_late == 3
    assert data.inputs["invoice_id"] == "inv-L2-2026-03"
    assert {f.name for f in data.risk.factors} >= {"days_late", "arrears_months"}
    assert "obetald" in data.reason_sv and "unpaid" in data.reason_en
    assert event.time == local_midnight(date(2026, 3, 2))
