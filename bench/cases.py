"""Cases service throughput, each figure against a raw baseline measured in the same run.

    python bench/cases.py [--events 20000] [--appends 2000] \
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

1. consumer: N events (signals, one in ten opening a case, and SMS status changes) on
   risk.signals / notification.events, applied by the cases consumer (inbox, case lookup,
   case creation, timeline rows, outbox) into a migrated cases schema; baseline: a raw
   aiokafka consumer reading the same records back.
2. audit: M audit appends, one transaction each (as the API does), through the hash
   chain (head-row lock, sha256, insert); baseline: M plain single-row inserts into an
   unchained table, one transaction each.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.engine import make_url

from services.cases.consumer import TOPICS, make_handler
from services.cases.models import inbox, outbox, timeline
from services.cases.store import AuditStore
from shared.bus import ConsumerRunner, Producer, create_topics
from shared.bus.broker import EmbeddedBroker
from shared.clock import SystemClock
from shared.db import Database
from shared.db.migrate import migrate
from shared.events import CloudEvent, EventData, NotificationStatusChanged, SignalRaised, new_event
from shared.events.signal import RiskScore

FAST = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 300, "rebalance_timeout_ms": 500}


def make_events(n: int) -> list[CloudEvent[EventData]]:
    """Return n events: per lease a late signal, an SMS, and every tenth lease forfeiture."""
    now = datetime.now(UTC)
    out: list[CloudEvent[EventData]] = []
    i = 0
    while len(out) < n:
        lease = f"L-{i}"
        sid = f"{lease}:2026-03:late"
        late = SignalRaised(
            lease_id=lease,
            org_id="org1",
            signal_id=sid,
            signal="late_rent_detected",
            rule="late",
            policy_version="bench",
            occurred_at=now,
            risk=RiskScore(score=30),
            reason_sv="sen hyra",
            reason_en="late rent",
        )
        sms = NotificationStatusChanged(
            lease_id=lease,
            org_id="org1",
            notification_id=f"N-{i}",
            signal_id=sid,
            status="delivered",
            at=now,
        )
        out += [
            new_event(late, id=f"s:{sid}", source="bench", time=now),
            new_event(sms, id=f"n:{i}", source="bench", time=now),
        ]
        if i % 10 == 0:
            fid = f"{lease}:2026-03:forfeiture"
            forfeit = SignalRaised(
                lease_id=lease,
                org_id="org1",
                signal_id=fid,
                signal="forfeiture_possible",
                rule="forfeiture",
                policy_version="bench",
                occurred_at=now,
                risk=RiskScore(score=60),
                reason_sv="förverkande",
                reason_en="forfeiture",
            )
            out.append(new_event(forfeit, id=f"s:{fid}", source="bench", time=now))
        i += 1
    return out[:n]


async def raw_consume(servers: str, n: int) -> float:
    """Seconds for a raw aiokafka consumer to read n records of the cases topics."""
    consumer = AIOKafkaConsumer(
        *TOPICS,
        bootstrap_servers=servers,
        group_id=f"raw-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **FAST,
    )
    await consumer.start()
    got = 0
    t0 = time.perf_counter()
    while got < n:
        batch = await consumer.getmany(timeout_ms=500, max_records=1000)
        for tp, msgs in batch.items():
            got += len(msgs)
            await consumer.commit({tp: msgs[-1].offset + 1})
    elapsed = time.perf_counter() - t0
    await consumer.stop()
    return elapsed


async def cases_consume(servers: str, db: Database, producer: Producer, n: int) -> float:
    """Seconds for the cases consumer to apply n events (counted by inbox rows)."""
    runner = ConsumerRunner(
        service="cases",
        group_id="cases-bench",
        topics=TOPICS,
        bootstrap_servers=servers,
        database=db,
        inbox=inbox,
        handler=make_handler(SystemClock()),
        producer=producer,
        clock=SystemClock(),
        outbox=outbox,
        batch_size=1000,
        poll_ms=100,
        **FAST,
    )
    await runner.start()
    task = asyncio.create_task(runner.run())
    t0 = time.perf_counter()
    while True:
        async with db.engine.connect() as conn:
            done = (await conn.execute(select(func.count()).select_from(inbox))).scalar_one()
        if done >= n:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    runner.stop()
    await task
    await runner.close()
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(timeline))).scalar_one()
    print(f"  timeline rows written: {rows}")
    return elapsed


async def audit_appends(db: Database, m: int) -> tuple[float, float]:
    """Seconds for m chained audit appends and for m plain inserts, one transaction each."""
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    for i in range(m):
        async with db.sessionmaker() as session, session.begin():
            await AuditStore(session).append(
                at=now,
                actor="bench",
                role="admin",
                org_id="org1",
                action="case.read",
                outcome="allowed",
                case_id=f"C-{i % 100}",
                reason="bench",
            )
    chained = time.perf_counter() - t0
    md = MetaData(schema=db.schema)
    plain = Table(
        "plain_audit",
        md,
        Column("id", Integer, primary_key=True),
        Column("at", DateTime(timezone=True)),
        Column("actor", String(100)),
        Column("action", String(60)),
        Column("case_id", String(64)),
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(md.create_all)
    t0 = time.perf_counter()
    for i in range(m):
        async with db.sessionmaker() as session, session.begin():
            await session.execute(
                insert(plain).values(
                    id=i + 1, at=now, actor="bench", action="case.read", case_id=f"C-{i % 100}"
                )
            )
    return chained, time.perf_counter() - t0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--appends", type=int, default=2_000)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    broker = EmbeddedBroker()
    broker.start()
    dbname = f"bokvar_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = make_url(args.database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{dbname}"')
    db = Database(make_url(args.database_url).set(database=dbname).render_as_string(False), "cases")
    producer = Producer(broker.bootstrap_servers)
    try:
        await migrate(db)
        await create_topics(broker.bootstrap_servers, partitions=6)
        await producer.start()
        evs = make_events(args.events)
        await producer.publish_many(evs)
        n = len(evs)
        raw_s = await raw_consume(broker.bootstrap_servers, n)
        cases_s = await cases_consume(broker.bootstrap_servers, db, producer, n)
        print(
            f"consumer, {n} events: raw aiokafka {n / raw_s:,.0f}/s; "
            f"cases consumer into PostgreSQL {n / cases_s:,.0f}/s; "
            f"ratio cases/raw {raw_s / cases_s:.2f}"
        )
        chained_s, plain_s = await audit_appends(db, args.appends)
        m = args.appends
        print(
            f"audit, {m} appends (1 tx each): chained {m / chained_s:,.0f}/s; "
            f"plain insert {m / plain_s:,.0f}/s; ratio chained/plain {plain_s / chained_s:.2f}"
        )
        async with db.sessionmaker() as session:
            rows, broken = await AuditStore(session).verify()
        print(f"audit verify: {rows} rows, first broken: {broken}")
    finally:
        await producer.stop()
        await db.dispose()
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await conn.close()
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
