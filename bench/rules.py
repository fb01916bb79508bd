"""Rules service on PostgreSQL: ledger events/s through the store, and the deadline sweep.

    python bench/rules.py [--events 100000] [--leases 100000] [--late-share 0.05] [--batch 2000]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Creates a scratch database (dropped afterwards) and measures, in one run:
1. ledger: N ledger events (charges, then payments) applied the way the consumer does it
   (`apply_events` + `evaluate_leases` per batch of `--batch`, default the consumer's
   BOKVAR_CONSUMER_BATCH_SIZE default, one transaction per batch),
   next to the raw asyncpg `executemany` insert of the same rows into a bare table; and
   the consumer path's CPU per event, of this process and of the PostgreSQL backends
   serving it (robust on a busy machine, where the rates are not);
2. sweep: L leases bulk-loaded with COPY (a charge each; all but `late-share` paid), their
   open deadlines due; then `sweep_once` over them in chunks, with wall time, peak Python
   heap (tracemalloc) and RSS growth (psutil).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/rules.py` puts bench/ first on sys.path, where this file shadows the package
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import gc
import os
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import psutil
from sqlalchemy import text
from sqlalchemy.engine import make_url

from rules.consumer import apply_events, evaluate_leases
from rules.policy import PolicySet
from rules.store import RulesStore
from rules.sweep import sweep_once
from shared.clock import ManualClock, local_midnight
from shared.config import CommonSettings
from shared.db import Database
from shared.db.migrate import migrate
from shared.events import CloudEvent, EventData, PaymentReceived, RentCharged, new_event
from shared.logging import configure_logging
from shared.serve import tune_gc

DUE = date(2026, 2, 27)  # March rent (JB 12:20)
BATCH = CommonSettings.model_fields["consumer_batch_size"].default
ORG = "org1"
RENT = 800_000
OFFSET = 100_000_000  # ids of bulk-loaded rows stay clear of the ledger part's rows


def ledger_events(n: int, leases: int) -> list[CloudEvent[EventData]]:
    """Half charges, half payments, spread over `leases` leases."""
    t = datetime(2026, 2, 20, 9, tzinfo=UTC)
    out: list[CloudEvent[EventData]] = []
    half = max(1, n // 2)
    for i in range(n):
        lease = f"B-{(i % half) % leases}"  # each charge is later paid by a payment
        data: EventData
        if i < n // 2:
            data = RentCharged(
                lease_id=lease,
                org_id=ORG,
                invoice_id=f"inv-{i}",
                period="2026-03",
                amount_ore=RENT,
                due_date=DUE,
                due_date_source="jb_12_20",
            )
        else:
            data = PaymentReceived(
                lease_id=lease,
                org_id=ORG,
                payment_id=f"pay-{i}",
                amount_ore=RENT,
                booked_date=date(2026, 2, 26),
            )
        out.append(new_event(data, id=f"e-{i}", source="bench", time=t))
    return out


async def bench_ledger(db: Database, dsn: str, n: int, leases: int, batch: int = BATCH) -> None:
    """Apply ledger events through the store; compare with raw asyncpg executemany."""
    events = ledger_events(n, leases)
    policies = PolicySet.load()
    clock = ManualClock(datetime(2026, 2, 26, 12, tzinfo=UTC))
    apply_s = store_s = 0.0
    backends = BackendCpu(await _backend_pids(db))
    cpu0 = time.process_time()
    for start in range(0, n, batch):
        chunk = events[start : start + batch]
        async with db.sessionmaker() as session, session.begin():
            store = RulesStore(session)
            t0 = time.perf_counter()
            touched = await apply_events(store, chunk)
            t1 = time.perf_counter()
            await evaluate_leases(store, policies, sorted(touched), clock.now())
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        apply_s += t1 - t0 + (t3 - t2)  # the commit belongs to both
        store_s += t3 - t0
    client_cpu = time.process_time() - cpu0
    server_cpu = backends.used(await _backend_pids(db))

    rows = [
        (
            e.data.lease_id,
            "charge" if isinstance(e.data, RentCharged) else "payment",
            getattr(e.data, "invoice_id", None) or getattr(e.data, "payment_id", ""),
            RENT,
            date(2026, 2, 26),
            "2026-03",
            DUE,
        )
        for e in events
    ]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE raw_entries (id bigserial primary key, lease_id text, kind text,"
            " entry_id text, amount_ore bigint, booked_on date, period text, due_date date,"
            " UNIQUE (kind, entry_id))"
        )
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO raw_entries (lease_id, kind, entry_id, amount_ore, booked_on,"
                    " period, due_date) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                    rows[start : start + batch],
                )
        raw_s = time.perf_counter() - t0
    finally:
        await conn.close()
    print(f"ledger: {n} events over {leases} leases, batches of {batch}")
    print(f"  store only (apply_events):        {n / apply_s:,.0f} events/s ({apply_s:.2f} s)")
    print(f"  consumer path (+ engine, deadlines): {n / store_s:,.0f} events/s ({store_s:.2f} s)")
    print(f"  raw asyncpg executemany, same rows:  {n / raw_s:,.0f} rows/s ({raw_s:.2f} s)")
    print(
        f"  consumer path CPU per event: client {1e6 * client_cpu / n:.1f} us,"
        f" PostgreSQL backend {1e6 * server_cpu / n:.1f} us (load average {os.getloadavg()[0]:.2f})"
    )
    print(f"  ratio store/raw: {raw_s / apply_s:.2f}; consumer path/raw: {raw_s / store_s:.2f}")


async def _backend_pids(db: Database) -> set[int]:
    """The PostgreSQL backends serving the bench's database (its pool's connections)."""
    async with db.sessionmaker() as session:
        query = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return set((await session.execute(query)).scalars())


class BackendCpu:
    """CPU seconds the given backends use from now on (psutil; a backend seen only at the
    end counts from its start)."""

    def __init__(self, pids: set[int]) -> None:
        self.start = {pid: _cpu(pid) for pid in pids}

    def used(self, pids: set[int]) -> float:
        return sum(_cpu(pid) - self.start.get(pid, 0.0) for pid in pids | set(self.start))


def _cpu(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _records(leases: int, late_every: int, kind: str) -> Iterator[tuple[object, ...]]:
    due_at = local_midnight(date(2026, 3, 2))  # working day 1 after the due date
    for i in range(leases):
        lease = f"S-{i}"
        late = i % late_every == 0
        if kind == "leases":
            yield (lease, ORG, RENT, None, None)
        elif kind == "charges":
            yield (
                OFFSET + i * 2 + 1,
                lease,
                "charge",
                f"sinv-{i}",
                RENT,
                DUE - timedelta(days=14),
                "2026-03",
                DUE,
                f"sinv-{i}",
                None,
            )
        elif kind == "payments" and not late:
            yield (
                OFFSET + i * 2 + 2,
                lease,
                "payment",
                f"spay-{i}",
                RENT,
                date(2026, 2, 26),
                None,
                None,
                None,
                None,
            )
        elif kind == "deadlines" and late:
            yield (
                OFFSET + i + 1,
                lease,
                "late_rent_detected",
                "2026-03",
                "late_rent_detected",
                due_at,
                True,
            )


async def load_sweep_data(dsn: str, leases: int, late_share: float) -> float:
    """Bulk-load leases, charges, payments and due deadlines with COPY; return seconds."""
    late_every = max(1, round(1 / late_share))
    entry_cols = [
        "id",
        "lease_id",
        "kind",
        "entry_id",
        "amount_ore",
        "booked_on",
        "period",
        "due_date",
        "invoice_id",
        "payment_id",
    ]
    conn = await asyncpg.connect(dsn)
    t0 = time.perf_counter()
    try:
        for kind, table, cols in (
            ("leases", "leases", ["lease_id", "org_id", "monthly_rent_ore", "due_day", "ended_on"]),
            ("charges", "ledger_entries", entry_cols),
            ("payments", "ledger_entries", entry_cols),
            (
                "deadlines",
                "deadlines",
                ["id", "lease_id", "kind", "ref", "stage", "due_at", "open"],
            ),
        ):
            await conn.copy_records_to_table(
                table, records=_records(leases, late_every, kind), columns=cols, schema_name="rules"
            )
        for table in ("leases", "ledger_entries", "deadlines"):
            # steady state: a live database is vacuumed (hint bits, visibility map)
            await conn.execute(f"VACUUM ANALYZE rules.{table}")
        for seq in ("ledger_entries_id_seq", "deadlines_id_seq"):
            await conn.execute(f"SELECT setval('rules.{seq}', {OFFSET + 3 * leases})")
    finally:
        await conn.close()
    return time.perf_counter() - t0


async def _peak_rss(stop: asyncio.Event, peak: list[int]) -> None:
    proc = psutil.Process()
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        await asyncio.sleep(0.02)


async def bench_sweep(
    db: Database,
    dsn: str,
    leases: int,
    late_share: float,
    chunk: int,
    trace: bool,
    workers: int,
) -> None:
    """Sweep every due deadline; report time, signals and memory."""
    load_s = await load_sweep_data(dsn, leases, late_share)
    print(f"sweep: {leases:,} leases, {late_share:.0%} late (COPY load {load_s:.1f} s)")
    policies = PolicySet.load()
    # working day 1 is 03-02; with the default settlement lag (1 banking day, no watermark)
    # its stage is released at midnight on 03-03: sweep then, so every late lease signals
    clock = ManualClock(local_midnight(date(2026, 3, 3)) + timedelta(minutes=1))
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    peak, stop = [rss0], asyncio.Event()
    sampler = asyncio.create_task(_peak_rss(stop, peak))
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    result = await sweep_once(db, policies, clock, chunk=chunk, workers=workers)
    sweep_s = time.perf_counter() - t0
    stop.set()
    await sampler
    mib = 2**20
    print(
        f"  swept {result.leases:,} due leases: {result.chunks} chunks of {chunk},"
        f" {workers} workers"
    )
    print(f"  sweep time: {sweep_s:.2f} s ({result.leases / sweep_s:,.0f} leases/s)")
    print(f"  signals staged in the outbox: {result.signals:,}")
    print(f"  peak RSS growth during the sweep: {(peak[0] - rss0) / mib:.1f} MiB")
    if trace:
        _, heap = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  peak Python heap (tracemalloc, slows the sweep): {heap / mib:.1f} MiB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--ledger-leases", type=int, default=20_000)
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--late-share", type=float, default=0.05)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=BATCH, help="ledger events per transaction")
    parser.add_argument("--workers", type=int, default=2, help="concurrent sweep chunks")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace the Python heap")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's GC thresholds (the service process tunes them: rules.__main__)",
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    configure_logging("warning")
    if not args.default_gc:
        tune_gc()  # as `python -m rules` does
    print(f"gc thresholds: {gc.get_threshold()}")
    base = make_url(args.database_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bokvar_bench_rules_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = base.set(database=name).render_as_string(hide_password=False)
    dsn = base.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    db = Database(url, "rules")
    try:
        await migrate(db)
        if args.events:
            await bench_ledger(
                db,
                dsn + "?options=-csearch_path%3Drules",
                args.events,
                args.ledger_leases,
                args.batch,
            )
        if args.leases:
            await bench_sweep(
                db, dsn, args.leases, args.late_share, args.chunk, args.tracemalloc, args.workers
            )
    finally:
        await db.dispose()
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
