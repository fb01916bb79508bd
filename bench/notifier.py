"""Notifier on PostgreSQL: signals/s into queued SMS and tasks, and arrears-cleared latency.

    python bench/notifier.py [--signals 5000] [--cancellations 200] [--rate 20]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Starts an embedded broker and a scratch database (dropped afterwards) and measures, in one run:
1. throughput: N signals on `risk.signals` (half `late_rent_detected` -> one tenant SMS
   queued; half `personal_contact_needed` -> a call task assigned round-robin + an SMS
   alert queued to the assignee) applied by the ConsumerRunner with the notifier's
   handler (inbox, outbox events, one transaction per batch), next to the same N events
   through a ConsumerRunner whose handler does nothing (inbox only) -> ratio;
2. latency: the whole service (create_app lifespan: consumer, outbox relay, sender, log
   channel) holds M deferred SMS (21:30, quiet hours); `arrears_cleared` is published for
   one lease at a time at `rate`/s, and the time until its `cancelled` NotificationStatusChanged
   is readable on `notification.events` is recorded (an upper bound of the cancellation
   commit: it also includes the outbox relay and the broker round trip). p50/p99.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/notifier.py` puts bench/ first on sys.path, where this file shadows the package
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from notifier import models
from notifier.api import create_app
from notifier.config import NotifierSettings
from notifier.consumer import make_handler
from notifier.policy import load_policy
from notifier.workflow import Context
from shared.bus import Batch, ConsumerRunner, Producer, create_topics
from shared.bus.broker import EmbeddedBroker
from shared.clock import ManualClock
from shared.db import Database, inbox_table, new_metadata
from shared.db.migrate import migrate
from shared.events import CloudEvent, EventData, RiskScore, SignalRaised, new_event
from shared.logging import configure_logging
from shared.topics import NOTIFICATION_EVENTS, RISK_SIGNALS

STHLM = ZoneInfo("Europe/Stockholm")
FAST = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 300, "rebalance_timeout_ms": 500}
TEAMS = 10


def signal(lease: str, kind: str, sid: str) -> SignalRaised:
    """A rules signal."""
    return SignalRaised(
        lease_id=lease,
        org_id="org1",
        signal_id=sid,
        signal=kind,  # type: ignore[arg-type]
        rule="bench",
        policy_version="bench",
        occurred_at=datetime(2026, 3, 3, 6, tzinfo=UTC),
        period="2026-03",
        due_date=date(2026, 2, 27),
        days_late=4,
        arrears_ore=812_300,
        risk=RiskScore(score=40),
        reason_sv="x",
        reason_en="x",
    )


def throughput_events(n: int, run: str) -> list[CloudEvent[EventData]]:
    """Half late-rent signals (SMS), half personal-contact signals (task + alert)."""
    now = datetime.now(UTC)
    out: list[CloudEvent[EventData]] = []
    for i in range(n):
        kind = "late_rent_detected" if i % 2 == 0 else "personal_contact_needed"
        data = signal(f"B-{i}", kind, f"B-{i}:2026-03:{kind}")
        out.append(new_event(data, id=f"{run}:{i}", source="bench", time=now))
    return out


async def seed(db: Database, leases: list[str], now: datetime) -> None:
    """Leases (one tenant, a team each) and an on-duty staff directory of 5 per team."""
    async with db.sessionmaker.begin() as session:
        rows = [
            {
                "lease_id": lease,
                "org_id": "org1",
                "team": f"team-{i % TEAMS}",
                "tenant_ids": ["T1"],
                "ended": False,
                "updated_at": now,
            }
            for i, lease in enumerate(leases)
        ]
        for start in range(0, len(rows), 5000):
            await session.execute(insert(models.leases), rows[start : start + 5000])
        staff = [
            {
                "id": f"s{t}-{k}",
                "name": "Staff",
                "phone": "+46709990000",
                "team": f"team-{t}",
                "is_lead": k == 0,
                "work_start": "00:00",
                "work_end": "23:59",
                "work_days": "1234567",
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
            for t in range(TEAMS)
            for k in range(5)
        ]
        await session.execute(insert(models.staff), staff)


async def run_consumer(
    servers: str, db: Database, inbox: Any, handler: Any, n: int, *, outbox: Any = None
) -> float:
    """Consume the topic from the start with a fresh group; return seconds until n applied."""
    producer = Producer(servers)
    await producer.start()
    runner = ConsumerRunner(
        service="bench",
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        topics=[RISK_SIGNALS],
        bootstrap_servers=servers,
        database=db,
        inbox=inbox,
        handler=handler,
        producer=producer,
        clock=ManualClock(datetime(2026, 3, 3, 9, tzinfo=STHLM)),
        outbox=outbox,
        **FAST,
    )
    await runner.start()
    task = asyncio.create_task(runner.run())
    t0 = time.perf_counter()
    while True:
        async with db.sessionmaker() as session:
            done = (await session.execute(select(func.count()).select_from(inbox))).scalar_one()
        if done >= n:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    runner.stop()
    await task
    await runner.close()
    await producer.stop()
    return elapsed


async def throughput(servers: str, url: str, n: int) -> None:
    """Part 1: signals/s through the notifier handler vs an inbox-only handler."""
    evs = throughput_events(n, "tp")
    producer = Producer(servers)
    await producer.start()
    for start in range(0, n, 1000):
        await producer.publish_many(evs[start : start + 1000])
    await producer.stop()

    base_db = Database(url, "nbench_base")
    async with base_db.engine.begin() as conn:
        await conn.exec_driver_sql('CREATE SCHEMA IF NOT EXISTS "nbench_base"')
    md = new_metadata()
    base_inbox = inbox_table(md)
    async with base_db.engine.begin() as conn:
        await conn.run_sync(md.create_all)

    async def nothing(batch: Batch) -> None:
        return None

    base_s = await run_consumer(servers, base_db, base_inbox, nothing, n)
    await base_db.dispose()

    db = Database(url, "notifier")
    clock = ManualClock(datetime(2026, 3, 3, 10, tzinfo=STHLM))
    await seed(db, [f"B-{i}" for i in range(n)], clock.now())
    ctx = Context(policy=load_policy(), tz=STHLM)
    handler = make_handler(ctx, clock)
    notifier_s = await run_consumer(servers, db, models.inbox, handler, n, outbox=models.outbox)
    async with db.sessionmaker() as session:
        sms = (
            await session.execute(select(func.count()).select_from(models.notifications))
        ).scalar_one()
        tasks = (await session.execute(select(func.count()).select_from(models.tasks))).scalar_one()
        events = (
            await session.execute(select(func.count()).select_from(models.outbox))
        ).scalar_one()
    await db.dispose()
    print(
        f"throughput: {n} signals -> {sms} queued SMS ({n // 2} tenant + alerts), {tasks} tasks, "
        f"{events} outbox events"
    )
    print(f"  inbox-only ConsumerRunner : {n / base_s:10,.0f} signals/s ({base_s:.2f} s)")
    print(f"  notifier handler          : {n / notifier_s:10,.0f} signals/s ({notifier_s:.2f} s)")
    print(f"  ratio notifier / inbox-only: {base_s / notifier_s:.2f}")


async def latency(servers: str, url: str, m: int, rate: float) -> None:
    """Part 2: arrears_cleared -> `cancelled` event latency with the whole service running."""
    clock = ManualClock(datetime(2026, 3, 3, 21, 30, tzinfo=STHLM))
    settings = NotifierSettings(
        database_url=url,
        kafka_bootstrap_servers=servers,
        notifier_sender_interval_seconds=0.5,
        consumer_poll_ms=20,
        service_token=SecretStr("bench"),
        **{f"kafka_{k}": v for k, v in FAST.items()},
    )
    scratch = Database(url, "notifier")  # part 1's queued SMS would keep the sender busy
    async with scratch.engine.begin() as conn:
        await conn.exec_driver_sql("TRUNCATE notifications, tasks, outbox")
    await scratch.dispose()
    app = create_app(settings, clock=clock)
    producer = Producer(servers)
    await producer.start()
    arrivals: dict[str, float] = {}
    all_seen = asyncio.Event()
    watcher = AIOKafkaConsumer(
        NOTIFICATION_EVENTS,
        bootstrap_servers=servers,
        auto_offset_reset="latest",
        group_id=f"w-{uuid.uuid4().hex[:6]}",
        **FAST,
    )
    await watcher.start()

    async def watch() -> None:
        async for record in watcher:
            body = orjson.loads(record.value)
            if body.get("status") == "cancelled":
                arrivals.setdefault(body["lease_id"], time.perf_counter())
                if len(arrivals) >= m:
                    all_seen.set()

    watch_task = asyncio.create_task(watch())
    async with app.router.lifespan_context(app):
        leases = [f"C-{i}" for i in range(m)]
        late = [
            new_event(
                signal(le, "late_rent_detected", f"{le}:late"),
                id=f"late:{le}",
                source="bench",
                time=clock.now(),
            )
            for le in leases
        ]
        await producer.publish_many(late)  # type: ignore[arg-type]
        db = app.state.rt.database
        while True:  # wait until every SMS is queued (deferred to 08:00)
            async with db.sessionmaker() as session:
                q = (
                    select(func.count())
                    .select_from(models.notifications)
                    .where(models.notifications.c.status == "deferred")
                )
                if (await session.execute(q)).scalar_one() >= m:
                    break
            await asyncio.sleep(0.1)
        sent_at: dict[str, float] = {}
        for lease in leases:
            ev = new_event(
                signal(lease, "arrears_cleared", f"{lease}:cleared"),
                id=f"cleared:{lease}",
                source="bench",
                time=clock.now(),
            )
            sent_at[lease] = time.perf_counter()
            await producer.publish(ev)  # type: ignore[arg-type]
            await asyncio.sleep(1 / rate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), timeout=30)
    watch_task.cancel()
    await watcher.stop()
    await producer.stop()
    lat = sorted((arrivals[le] - sent_at[le]) * 1000 for le in sent_at if le in arrivals)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"latency: {len(lat)}/{m} cancellations seen at {rate:.0f} arrears_cleared/s")
    print(
        f"  arrears_cleared published -> cancelled event readable: p50 {p50:.0f} ms, "
        f"p99 {p99:.0f} ms, max {lat[-1]:.0f} ms (target p99 < 1000 ms)"
    )


async def main() -> None:
    """Run both parts on a scratch database and a fresh embedded broker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=5000)
    parser.add_argument("--cancellations", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    configure_logging("warning")
    base = make_url(args.database_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bench_notifier_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = base.set(database=name).render_as_string(hide_password=False)
    broker = EmbeddedBroker()
    broker.start()
    try:
        await create_topics(broker.bootstrap_servers, partitions=3)
        db = Database(url, "notifier")
        await migrate(db)
        await db.dispose()
        await throughput(broker.bootstrap_servers, url, args.signals)
        await latency(broker.bootstrap_servers, url, args.cancellations, args.rate)
    finally:
        broker.stop()
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
