"""Notifier and cases consumers in-process, over ALL their events: CPU seconds per run.

    # once: run the pipeline (bench/pipeline.py's feed) and keep its records
    python bench/consumers.py --capture /tmp/records.pickle [--leases 5000]
    # then, as often as needed (e.g. A B A B against another tree via PYTHONPATH):
    python bench/consumers.py --replay /tmp/records.pickle [--service notifier|cases]

The pipeline bench measures notifier and cases only while rules is still busy: they finish
their part after that window. Here each consumer runs alone in this process on the
records the pipeline gave it (lease.events, risk.signals, and for cases
notification.events), replayed onto a fresh broker and database: the same ConsumerRunner,
handler, inbox, outbox and relay flush the service runs (batch 2,000, poll 50 ms, as in the
pipeline). The warm-up feed's records are applied first and not measured; then the
process CPU (time.process_time) and wall time until every measured record is applied and
the outbox flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pickle
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# `python bench/consumers.py` puts bench/ first on sys.path, where bench/notifier.py would
# shadow the package; the code under test comes from PYTHONPATH (this tree or another)
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

from aiokafka import AIOKafkaConsumer, TopicPartition

STHLM = ZoneInfo("Europe/Stockholm")
CLOCK = datetime(2026, 3, 10, 22, 0, tzinfo=STHLM)
TOPICS = (
    "lease.events",
    "ledger.events",
    "complaint.events",
    "case.events",
    "risk.signals",
    "notification.events",
)
WARMUP_PREFIX = b"B9"  # bench/pipeline.py's warm-up leases are B9000000...

Record = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]


async def capture(path: Path, leases: int) -> None:
    """Run the pipeline bench's feed (warm-up + sustained) and save the records of TOPICS."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # noqa: ASYNC240
    from bench.pipeline import WARMUP_OFFSET, sustained
    from shared.bus import create_topics
    from shared.bus.broker import EmbeddedBroker
    from tests.e2e.conftest import api_key
    from tests.e2e.pipeline import Pipeline, drop_database, fresh_database_url

    base_url = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    broker = EmbeddedBroker()
    broker.start()
    tmp = Path(tempfile.mkdtemp())
    url, dbname = await fresh_database_url(base_url, tmp)
    p = Pipeline(
        bootstrap_servers=broker.bootstrap_servers,
        database_url=url,
        var_dir=tmp,
        clock_start=CLOCK,
        clock_speed=1.0,
        extra_env={
            "BOKVAR_RULES_SWEEP_INTERVAL_SECONDS": "0.2",
            "BOKVAR_NOTIFIER_SENDER_INTERVAL_SECONDS": "0.2",
            "BOKVAR_LOG_LEVEL": "warning",
        },
    )
    try:
        await create_topics(broker.bootstrap_servers, partitions=6)
        await p.start()
        key = await api_key(p, "bench")
        await sustained(p, key, 500, offset=WARMUP_OFFSET, name="warm-up")
        await sustained(p, key, leases)
        if not await p.drained():
            raise RuntimeError("notifier/cases did not drain")
        records: dict[str, list[Record]] = {}
        for topic in TOPICS:
            records[topic] = await read_topic(broker.bootstrap_servers, topic)
            print(f"  {topic}: {len(records[topic])} records")
        path.write_bytes(pickle.dumps(records))  # noqa: ASYNC240
    finally:
        p.stop()
        broker.stop()
        if dbname:
            await drop_database(base_url, dbname)


async def read_topic(servers: str, topic: str) -> list[Record]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(parts)
    await consumer.seek_to_beginning()
    ends = await consumer.end_offsets(parts)
    out: list[Record] = []
    while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
        for msgs in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
            out += [(r.topic, r.key, r.value, list(r.headers)) for r in msgs]
    await consumer.stop()
    return out


def _is_warmup(record: Record) -> bool:
    return (record[1] or b"").startswith(WARMUP_PREFIX)


async def write_digest(path: Path, database: Any, metadata: Any, servers: str) -> None:
    """Every row of the service's tables and every record it published, as text (to diff
    two trees' outputs)."""
    from sqlalchemy import select

    lines = []
    async with database.sessionmaker() as session:
        for table in metadata.sorted_tables:
            keys = list(table.primary_key.columns) or list(table.columns)
            for row in await session.execute(select(table).order_by(*keys)):
                lines.append(f"{table.name} {tuple(row)!r}")
    for topic in ("notification.events", "case.events", "risk.signals"):
        for record in await read_topic(servers, topic):
            lines.append(f"{topic} {record!r}")
    path.write_text("\n".join(lines) + "\n")  # noqa: ASYNC240
    print(f"  digest: {len(lines)} lines -> {path}")


async def replay(
    path: Path,
    service: str,
    profile: Path | None = None,
    count_statements: bool = False,
    digest: Path | None = None,
) -> None:
    from sqlalchemy import Table

    from shared.bus import ConsumerRunner, Hooks, OutboxRelay, Producer, create_topics
    from shared.bus.broker import EmbeddedBroker
    from shared.calendar import preload
    from shared.clock import ManualClock
    from shared.db import Database
    from shared.db.migrate import migrate
    from shared.logging import configure_logging
    from shared.serve import tune_gc
    from tests.e2e.pipeline import drop_database, fresh_database_url

    configure_logging("warning", "json")
    records: dict[str, list[Record]] = pickle.loads(path.read_bytes())  # noqa: ASYNC240
    clock = ManualClock(CLOCK)
    handler: Any
    if service == "notifier":
        from notifier import models
        from notifier.consumer import TOPICS as topics
        from notifier.consumer import make_handler
        from notifier.policy import load_policy
        from notifier.workflow import Context

        handler = make_handler(Context(policy=load_policy(), tz=STHLM), clock)
        inbox: Table = models.inbox
        outbox: Table = models.outbox
        metadata = models.metadata
    elif service == "rules":
        from rules import models as rules_models
        from rules.consumer import TOPICS as topics
        from rules.consumer import make_handler as rules_handler
        from rules.policy import DEFAULT_POLICY, OVERRIDES_DIR, PolicySet

        handler = rules_handler(PolicySet.load(DEFAULT_POLICY, OVERRIDES_DIR), clock)
        inbox, outbox, metadata = rules_models.inbox, rules_models.outbox, rules_models.metadata
    else:
        from services.cases.consumer import TOPICS as topics
        from services.cases.consumer import make_handler
        from services.cases.models import inbox, metadata, outbox

        handler = make_handler(clock)
    mine = [r for t in topics for r in records.get(t, [])]
    warm = [r for r in mine if _is_warmup(r)]
    rest = [r for r in mine if not _is_warmup(r)]
    base_url = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    broker = EmbeddedBroker()
    broker.start()
    url, dbname = await fresh_database_url(base_url, Path(tempfile.mkdtemp()))
    if os.environ.get("BENCH_PG_LOG_STATEMENTS") and dbname:  # durations in the server log
        import asyncpg

        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        await conn.execute(f'ALTER DATABASE "{dbname}" SET log_min_duration_statement = 0')
        if os.environ.get("BENCH_PG_LOG_STATEMENTS") == "explain":
            for setting in (
                "session_preload_libraries = 'auto_explain'",
                "auto_explain.log_min_duration = 3",
                "auto_explain.log_analyze = on",
                "auto_explain.log_buffers = on",
                "auto_explain.log_wal = on",
                "auto_explain.log_timing = off",
            ):
                await conn.execute(f'ALTER DATABASE "{dbname}" SET {setting}')
        await conn.close()
    database = Database(url, service)
    try:
        await create_topics(broker.bootstrap_servers, partitions=6)
        await migrate(database)
        producer = Producer(broker.bootstrap_servers)
        await producer.start()
        relay = OutboxRelay(database, outbox, producer)
        applied = 0
        target = 0
        done = asyncio.Event()

        async def counting(batch: Any) -> None:
            nonlocal applied
            await handler(batch)
            applied += len(batch.events)

        async def after_commit() -> None:
            if applied >= target:
                done.set()

        runner = ConsumerRunner(
            service=service,
            group_id=service,
            topics=topics,
            bootstrap_servers=broker.bootstrap_servers,
            database=database,
            inbox=inbox,
            handler=counting,
            producer=producer,
            clock=clock,
            outbox=outbox,
            relay=relay,
            batch_size=2000,
            poll_ms=50,
            hooks=Hooks(after_db_commit=after_commit),
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
            rebalance_timeout_ms=1000,
        )
        await runner.start()
        preload(CLOCK.date())  # as the service's main does, then the GC tuning
        tune_gc()
        consumer = runner._consumer
        while len(consumer.assignment()) < 6 * len(topics):  # noqa: ASYNC110 (joined)
            await asyncio.sleep(0.05)
        # rules reads its topics together, as in the pipeline (leases and their ledger
        # events interleaved); notifier and cases one topic after the other
        order: list[Any] = [None] if service == "rules" else [t for t in TOPICS if t in topics]

        async def stages(part: list[Record]) -> None:
            # one topic after the other, in the order the pipeline produces them (leases,
            # then signals, then SMS events); the others are paused meanwhile
            nonlocal target
            task = asyncio.create_task(runner.run())
            for topic in order:
                target += len({dict(r[3])["ce_id"] for r in part if topic in (None, r[0])})
                done.clear()
                consumer.resume(*[tp for tp in consumer.assignment() if topic in (None, tp.topic)])
                await done.wait()
            runner.stop()
            await task
            runner._stop.clear()

        consumer.pause(*consumer.assignment())
        await producer.send_raw(warm)
        await stages(warm)
        await asyncio.sleep(0.3)
        consumer.pause(*consumer.assignment())
        await producer.send_raw(rest)
        batches = runner.batches_committed
        statements: Counter[str] = Counter()
        if count_statements:
            from sqlalchemy import event

            @event.listens_for(database.engine.sync_engine, "before_cursor_execute")
            def _count(conn: Any, cursor: Any, sql: str, params: Any, ctx: Any, many: bool) -> None:
                statements[" ".join(sql.split())[:110]] += 1

        profiler = cProfile.Profile() if profile else None
        backends0 = await _backend_cpu(database)
        cpu0, t0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        await stages(rest)
        if profiler:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{service}")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        backends = await _backend_cpu(database)
        pg = sum(sec - backends0.get(pid, 0.0) for pid, sec in backends.items())
        print(
            f"{service}: {len(rest)} records ({len(warm)} warm-up before) in "
            f"{runner.batches_committed - batches} batches: CPU {cpu:.3f} s "
            f"({cpu / len(rest) * 1e6:.1f} us/record), wall {wall:.2f} s, "
            f"load {os.getloadavg()[0]:.2f}; "
            f"PostgreSQL {pg:.3f} s ({pg / len(rest) * 1e6:.1f} us/record)"
        )
        for sql, n in statements.most_common():
            print(f"  {n:6d}  {sql}")
        if digest is not None:
            await write_digest(digest, database, metadata, broker.bootstrap_servers)
        await runner.close()
        await producer.stop()
    finally:
        await database.dispose()
        broker.stop()
        if dbname:
            await drop_database(base_url, dbname)


async def _backend_cpu(database: Any) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the service's database."""
    import psutil
    from sqlalchemy import text

    async with database.engine.connect() as conn:
        pids = (
            await conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
        ).scalars()
        out = {}
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            out[pid] = t.user + t.system
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--capture", type=Path)
    parser.add_argument("--replay", type=Path)
    parser.add_argument("--leases", type=int, default=5000)
    parser.add_argument("--statements", action="store_true", help="count SQL statements")
    parser.add_argument(
        "--digest", type=Path, help="write every row and output record to FILE.<service>"
    )
    parser.add_argument(
        "--cprofile", type=Path, help="cProfile the measured part into FILE.<service>"
    )
    parser.add_argument("--service", choices=("notifier", "cases", "rules", "both"), default="both")
    args = parser.parse_args()
    if args.capture:
        asyncio.run(capture(args.capture, args.leases))
    if args.replay:
        for service in ("notifier", "cases") if args.service == "both" else (args.service,):
            digest = args.digest.with_name(f"{args.digest.name}.{service}") if args.digest else None
            asyncio.run(replay(args.replay, service, args.cprofile, args.statements, digest))


if __name__ == "__main__":
    main()
