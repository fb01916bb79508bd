"""The outbox relay on PostgreSQL: events/s from the outbox table to the broker.

    python bench/relay.py [--events 6000] [--runs 5] [--batch-size 1000]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Starts an embedded broker and a scratch database (dropped afterwards), then `--runs`
times, interleaved:
1. raw: the same records through `Producer.send_raw` at once, acks=all (the ceiling: what
   the broker and the client take, without a database);
2. relay: the events staged in an outbox table in one transaction (`add_to_outbox`, not
   timed), then `OutboxRelay.flush()` until the table is empty (select, send, delete, in
   batches of `--batch-size`).
Prints events/s for each run and the medians, with the ratio relay/raw. A month-end's
release stages 6,000 alarms at once in rules' outbox (bench/RESULTS.md, issue 14).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/relay.py` puts bench/ first on sys.path; the repository root is needed
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg
from sqlalchemy.engine import make_url

from bench.bus import events
from shared.bus import OutboxRelay, Producer, create_topics
from shared.bus.broker import EmbeddedBroker
from shared.bus.outbox import add_to_outbox
from shared.clock import SystemClock
from shared.db import Database, new_metadata, outbox_table
from shared.events import CloudEvent, EventData, encode


async def raw(producer: Producer, evs: list[CloudEvent[EventData]]) -> float:
    """Seconds to send the records the relay would send, all at once."""
    records = [(e.topic, *encode(e)) for e in evs]
    t0 = time.perf_counter()
    await producer.send_raw(records)
    return time.perf_counter() - t0


async def relay(
    db: Database, producer: Producer, evs: list[CloudEvent[EventData]], batch_size: int
) -> float:
    """Seconds for the relay to publish `evs`, staged in the outbox beforehand."""
    md = new_metadata()
    outbox = outbox_table(md)
    async with db.engine.begin() as conn:
        await conn.run_sync(md.create_all)
    async with db.sessionmaker.begin() as session:
        await add_to_outbox(session, outbox, evs, clock=SystemClock())
    relay = OutboxRelay(db, outbox, producer, batch_size=batch_size)
    t0 = time.perf_counter()
    published = await relay.flush()
    elapsed = time.perf_counter() - t0
    if published != len(evs):
        raise RuntimeError(f"relay published {published} of {len(evs)}")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    broker = EmbeddedBroker()
    broker.start()
    name = f"bokvar_bench_relay_{uuid.uuid4().hex[:8]}"
    admin = make_url(args.database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(make_url(args.database_url).set(database=name).render_as_string(False), "public")
    producer = Producer(broker.bootstrap_servers)
    try:
        await create_topics(broker.bootstrap_servers, partitions=6)
        await producer.start()
        await raw(producer, events(500, "warm"))  # metadata and connections, not measured
        n = args.events
        raws, relays = [], []
        for k in range(args.runs):
            raws.append(n / await raw(producer, events(n, f"raw{k}")))
            relays.append(n / await relay(db, producer, events(n, f"relay{k}"), args.batch_size))
            print(f"run {k + 1}: raw {raws[-1]:,.0f}/s, relay {relays[-1]:,.0f}/s")
        raw_m, relay_m = statistics.median(raws), statistics.median(relays)
        print(f"{n} events, relay batches of {args.batch_size}, {args.runs} runs (medians):")
        print(f"  raw send_raw: {raw_m:,.0f} events/s")
        print(f"  relay:        {relay_m:,.0f} events/s (ratio relay/raw {relay_m / raw_m:.2f})")
    finally:
        await producer.stop()
        await db.dispose()
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
