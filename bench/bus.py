"""Bus throughput: raw aiokafka produce+consume vs the same events through the consumer runner.

    python bench/bus.py [--events 50000] [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Starts an embedded broker, then in one run measures:
1. raw: aiokafka produce (acks=all) of N events, then a raw consumer reading them back;
2. runner: the same N events produced with the Bokvar Producer and applied by the
   ConsumerRunner into PostgreSQL (inbox + a table write per event, one transaction per
   batch, offsets committed after the database commit).
Prints events/s for each and the ratio runner/raw.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, date, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import Column, Integer, String, Table, insert
from sqlalchemy.engine import make_url

from shared.bus import Batch, ConsumerRunner, Producer, create_topics
from shared.bus.broker import EmbeddedBroker
from shared.clock import SystemClock
from shared.db import Database, inbox_table, new_metadata
from shared.events import PaymentReceived, encode, new_event
from shared.topics import LEDGER_EVENTS

FAST = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 300, "rebalance_timeout_ms": 500}


def events(n: int, run: str) -> list:  # type: ignore[type-arg]
    now = datetime.now(UTC)
    return [
        new_event(
            PaymentReceived(
                lease_id=f"L-{i % 5000}",
                org_id="org1",
                payment_id=f"p{i}",
                amount_ore=812_500,
                booked_date=date(2026, 3, 2),
            ),
            id=f"{run}:{i}",
            source="bench",
            time=now,
        )
        for i in range(n)
    ]


async def raw(servers: str, topic: str, evs: list) -> tuple[float, float]:  # type: ignore[type-arg]
    encoded = [encode(e) for e in evs]
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", linger_ms=2, max_batch_size=256 * 1024
    )
    await producer.start()
    t0 = time.perf_counter()
    futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in encoded]
    await asyncio.gather(*futures)
    produce_s = time.perf_counter() - t0
    await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=f"raw-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **FAST,
    )
    await consumer.start()
    got = 0
    t0 = time.perf_counter()
    while got < len(evs):
        batch = await consumer.getmany(timeout_ms=500, max_records=500)
        for tp, msgs in batch.items():
            got += len(msgs)
            await consumer.commit({tp: msgs[-1].offset + 1})
    consume_s = time.perf_counter() - t0
    await consumer.stop()
    return produce_s, consume_s


async def through_runner(servers: str, db: Database, evs: list) -> tuple[float, float]:  # type: ignore[type-arg]
    md = new_metadata()
    inbox = inbox_table(md)
    applied = Table(
        "applied",
        md,
        Column("event_id", String(200), primary_key=True),
        Column("amount_ore", Integer),
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(md.create_all)
    producer = Producer(servers)
    await producer.start()
    t0 = time.perf_counter()
    await producer.publish_many(evs)
    produce_s = time.perf_counter() - t0

    async def handle(batch: Batch) -> None:
        await batch.session.execute(
            insert(applied),
            [
                {"event_id": r.event.id, "amount_ore": r.event.data.amount_ore}  # type: ignore[attr-defined]
                for r in batch.events
            ],
        )

    runner = ConsumerRunner(
        service="bench",
        group_id="bench",
        topics=[LEDGER_EVENTS],
        bootstrap_servers=servers,
        database=db,
        inbox=inbox,
        handler=handle,
        producer=producer,
        clock=SystemClock(),
        batch_size=1000,
        poll_ms=100,
        **FAST,
    )
    await runner.start()
    task = asyncio.create_task(runner.run())
    t0 = time.perf_counter()
    while True:
        async with db.engine.connect() as conn:
            from sqlalchemy import func, select

            n = (await conn.execute(select(func.count()).select_from(applied))).scalar_one()
        if n >= len(evs):
            break
        await asyncio.sleep(0.05)
    consume_s = time.perf_counter() - t0
    runner.stop()
    await task
    await runner.close()
    await producer.stop()
    return produce_s, consume_s


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
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
    url = make_url(args.database_url).set(database=dbname).render_as_string(False)
    db = Database(url, "public")
    try:
        await create_topics(broker.bootstrap_servers, partitions=6)
        n = args.events
        rp, rc = await raw(broker.bootstrap_servers, "bench.raw", events(n, "raw"))
        bp, bc = await through_runner(broker.bootstrap_servers, db, events(n, "runner"))
        raw_rate = n / (rp + rc)
        runner_rate = n / (bp + bc)
        print(f"events: {n}")
        print(
            f"raw aiokafka:  produce {n / rp:,.0f}/s  consume+commit {n / rc:,.0f}/s  "
            f"end-to-end {raw_rate:,.0f}/s"
        )
        print(
            f"bokvar runner: produce {n / bp:,.0f}/s  apply into PostgreSQL {n / bc:,.0f}/s  "
            f"end-to-end {runner_rate:,.0f}/s"
        )
        print(
            f"ratio runner/raw (end-to-end): {runner_rate / raw_rate:.2f}; "
            f"apply/raw consume: {(n / bc) / (n / rc):.2f}"
        )
    finally:
        await db.dispose()
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await conn.close()
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
