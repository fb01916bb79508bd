"""Ingest throughput: events/s through the batch endpoint vs raw aiokafka produce.

    python bench/ingest.py [--events 100000] [--batch 5000] [--leases 2000]
                           [--database-url sqlite+aiosqlite:///TMP/bench.db]
                           [--feed ledger|households]

Starts an embedded broker and, in one run, sends the same kind of events (rent charges
and payments for `--leases` leases, registered first) three ways:
1. raw: the finished CloudEvents produced with aiokafka (acks=all), no HTTP, no database;
2. asgi: POST /v1/events/batch (JSON array) in-process through httpx's ASGITransport;
3. socket: the same over a real socket to `bokvar serve ingest` (uvicorn) in a child
   process, with an httpx client.
Each batch is validated, deduplicated against the database, published with acks=all
and recorded before it is answered. On PostgreSQL the run makes its own database on the
server of `--database-url` and drops it at the end (the dedup table would otherwise grow
by 400,000 rows a run and the runs would not compare). The endpoint runs are made once
with one client (batches one after another) and once with `--concurrency` clients.
`--feed households` sends, instead of the ledger events, what bench/pipeline.py's ERP
feed sends: per new lease its registration (one tenant), a charge and, for 9 in 10, a
payment, in one batch (the pipeline's mix; the raw pass still produces ledger events).
Prints events/s and the ratios to raw, and the CPU per event of the service (and on
PostgreSQL of the server backends serving the run's database).
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script is named like the package it measures: keep bench/ off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, date, datetime  # noqa: E402
from typing import Any  # noqa: E402

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bokvar.simulate.generator import personnummer  # noqa: E402
from ingest.api import create_app  # noqa: E402
from ingest.clients import create_client  # noqa: E402
from ingest.config import IngestSettings  # noqa: E402
from shared.bus import create_topics  # noqa: E402
from shared.bus.broker import EmbeddedBroker, free_port  # noqa: E402
from shared.db import Database  # noqa: E402
from shared.db.migrate import migrate  # noqa: E402
from shared.events import PaymentReceived, RentCharged, encode, new_event  # noqa: E402
from shared.logging import configure_logging  # noqa: E402
from shared.serve import tune_gc  # noqa: E402

Rate = tuple[float, float, float]  # events/s, CPU µs per event: service, PostgreSQL


def with_check(nine: str) -> str:
    """Return nine digits plus their Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(nine)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return nine + str((10 - total % 10) % 10)


def lease_items(run: str, leases: int) -> list[dict[str, Any]]:
    """Return lease registrations (one tenant each) for `leases` leases."""
    return [
        {
            "type": "lease",
            "event_id": f"{run}-lease-{i}",
            "lease_id": f"{run}-L{i}",
            "property_id": f"P{i % 97}",
            "municipality_code": "0180",
            "monthly_rent_ore": 850_000,
            "start_date": "2024-04-01",
            "team": "team-north",
            "tenants": [
                {
                    "tenant_id": f"T{i}",
                    "personnummer": with_check(f"8{i % 10}0101{i % 1000:03d}"),
                    "phone": f"+4670{i % 10_000_000:07d}",
                    "language": "sv",
                }
            ],
        }
        for i in range(leases)
    ]


def ledger_items(run: str, events: int, leases: int, tag: str = "") -> list[dict[str, Any]]:
    """Return alternating charges and payments spread over the leases."""
    items: list[dict[str, Any]] = []
    for n in range(events):
        i = f"{tag}{n}"
        lease = f"{run}-L{n % leases}"
        if n % 2 == 0:
            items.append(
                {
                    "type": "charge",
                    "event_id": f"{run}-{i}",
                    "lease_id": lease,
                    "invoice_id": f"INV-{i}",
                    "period": "2026-03",
                    "amount_ore": 850_000,
                }
            )
        else:
            items.append(
                {
                    "type": "payment",
                    "event_id": f"{run}-{i}",
                    "payment_id": f"BG-{i}",
                    "amount_ore": 850_000,
                    "booked_date": "2026-02-27",
                    "reference": lease,
                }
            )
    return items


def household_items(run: str, events: int, tag: str) -> list[dict[str, Any]]:
    """Return `events` items of new households as bench/pipeline.py's feed sends them: a
    lease (one tenant with name and phone), its charge and, for 9 in 10, a payment."""
    rng = random.Random(1)
    items: list[dict[str, Any]] = []
    i = 0
    while len(items) < events:
        lease = f"{run}-{tag}H{i}"
        items += lease_items(lease, 1)
        items[-1] |= {"household_type": "single_adult", "area": None, "end_date": None}
        items[-1] |= {"due_day": None}
        items[-1]["tenants"][0] |= {"personnummer": personnummer(rng), "name": "Bench Bänksson"}
        items.append(
            {
                "type": "charge",
                "event_id": f"{lease}-charge",
                "lease_id": f"{lease}-L0",
                "invoice_id": f"INV-{lease}",
                "ocr": None,
                "period": "2026-03",
                "amount_ore": 812_500,
            }
        )
        if i % 10:
            items.append(
                {
                    "type": "payment",
                    "event_id": f"{lease}-pay",
                    "lease_id": f"{lease}-L0",
                    "payment_id": f"PAY-{lease}",
                    "amount_ore": 812_500,
                    "booked_date": "2026-02-26",
                    "reference": f"{lease}-L0",
                }
            )
        i += 1
    return items[:events]


def raw_records(run: str, events: int, leases: int) -> list[tuple[bytes, bytes, Any]]:
    """Return the CloudEvents the ledger items become, encoded (key, value, headers)."""
    now = datetime.now(UTC)
    out = []
    for i in range(events):
        lease = f"{run}-L{i % leases}"
        data: Any
        if i % 2 == 0:
            data = RentCharged(
                lease_id=lease,
                org_id="bench",
                invoice_id=f"INV-{i}",
                period="2026-03",
                amount_ore=850_000,
                due_date=date(2026, 2, 27),
                due_date_source="jb_12_20",
            )
        else:
            data = PaymentReceived(
                lease_id=lease,
                org_id="bench",
                payment_id=f"BG-{i}",
                amount_ore=850_000,
                booked_date=date(2026, 2, 27),
            )
        out.append(encode(new_event(data, id=f"bench:{run}-{i}", source="bench", time=now)))
    return out


async def bench_raw(servers: str, records: list[tuple[bytes, bytes, Any]]) -> tuple[float, float]:
    """Produce the records with aiokafka (acks=all); return events/s and the producing
    process's CPU µs per event."""
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", linger_ms=2, max_batch_size=256 * 1024
    )
    await producer.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    futures = [
        await producer.send("ledger.events", value=v, key=k, headers=h) for k, v, h in records
    ]
    await asyncio.gather(*futures)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await producer.stop()
    return len(records) / elapsed, cpu / len(records) * 1e6


async def post_all(
    http: httpx.AsyncClient,
    key: str,
    items: list[dict[str, Any]],
    batch: int,
    concurrency: int = 1,
) -> float:
    """POST `items` in batches; return events/s (every event must be accepted). A
    household's events stay in one batch (a batch ends before a lease or at the end), so
    concurrent clients never charge a lease another one registers."""
    bodies = []
    start = 0
    households = any(item["type"] == "lease" for item in items[1:])
    while start < len(items):
        end = min(start + batch, len(items))
        while households and end < len(items) and items[end]["type"] != "lease":
            end += 1
        bodies.append(orjson.dumps(items[start:end]))
        start = end
    headers = {"X-API-Key": key, "Content-Type": "application/json"}

    async def sender(queue: list[bytes]) -> None:
        while queue:
            body = queue.pop(0)
            resp = await http.post("/v1/events/batch", content=body, headers=headers, timeout=120)
            resp.raise_for_status()
            answer = orjson.loads(resp.content)
            if answer["rejected"] or answer["duplicates"]:
                raise SystemExit(f"unexpected answer: {answer['results'][:3]}")

    t0 = time.perf_counter()
    await asyncio.gather(*(sender(bodies) for _ in range(concurrency)))
    return len(items) / (time.perf_counter() - t0)


async def bench_asgi(
    settings: IngestSettings, key: str, run: str, args: argparse.Namespace
) -> tuple[Rate, Rate]:
    """Send the events through the batch endpoint in-process (ASGI)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            return await _runs(http, key, run, args, time.process_time)


async def _runs(
    http: httpx.AsyncClient,
    key: str,
    run: str,
    args: argparse.Namespace,
    cpu: Callable[[], float],
) -> tuple[Rate, Rate]:
    """Register the leases, then send the ledger events sequentially and concurrently;
    each pass's rate, the CPU seconds `cpu` counts per event (robust on a busy machine,
    where the rates are not) and the PostgreSQL backends' CPU seconds per event."""
    await post_all(http, key, lease_items(run, args.leases), args.batch)
    results = []
    for tag, clients in (("a", 1), ("b", args.concurrency)):
        if args.feed == "households":
            items = household_items(run, args.events, tag)
        else:
            items = ledger_items(run, args.events, args.leases, tag)
        server = await _pg_cpu(args.database_url)
        before = cpu()
        rate = await post_all(http, key, items, args.batch, clients)
        used, server_used = cpu() - before, await _pg_cpu(args.database_url) - server
        results.append((rate, used / len(items) * 1e6, server_used / len(items) * 1e6))
    return results[0], results[1]


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _pg_cpu(url: str | None) -> float:
    """CPU seconds so far of the PostgreSQL backends serving the database of `url` (0 on
    SQLite). The server runs on this machine; the service's pooled connections live
    through a pass, so the difference over a pass is the server work the pass caused."""
    if url is None or not url.startswith("postgresql"):
        return 0.0
    database = make_url(url).database
    dsn = make_url(url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    total = 0.0
    for row in rows:
        with contextlib.suppress(OSError):
            total += _process_cpu(row["pid"])
    return total


async def bench_socket(
    env: dict[str, str], key: str, run: str, args: argparse.Namespace
) -> tuple[Rate, Rate]:
    """Send the events to `bokvar serve ingest` (uvicorn) over a real socket."""
    port = free_port()
    env = {**os.environ, **env, "BOKVAR_INGEST_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ingest", env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            return await _runs(http, key, run, args, lambda: _process_cpu(proc.pid))
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def _pg_admin(url: str, sql: str) -> None:
    """Run `sql` on the `postgres` database of the server of `url`."""
    dsn = make_url(url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    configure_logging("warning", "console")
    tune_gc()  # as `python -m ingest` does; the socket run gets it from there
    broker = EmbeddedBroker()
    broker.start()
    tmp = tempfile.mkdtemp(prefix="bench-ingest-")
    url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
    fresh = None
    if url.startswith("postgresql"):
        fresh = f"bench_ingest_{os.getpid()}_{int(time.time())}"
        await _pg_admin(url, f'CREATE DATABASE "{fresh}"')
        url = make_url(url).set(database=fresh).render_as_string(hide_password=False)
    try:
        await create_topics(broker.bootstrap_servers, partitions=6)
        database = Database(url, "ingest")
        await migrate(database)
        key = await create_client(database, "bench", "bench")
        await database.dispose()
        env = {
            "BOKVAR_DATABASE_URL": url,
            "BOKVAR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "BOKVAR_VAR_DIR": tmp,
            "BOKVAR_LOG_LEVEL": "warning",
            # the published development secrets (bokvar serve refuses them on PostgreSQL)
            "BOKVAR_DEV_MODE": "true",
        }
        args.database_url = url  # the run's own database (`_pg_cpu`)
        settings = IngestSettings(
            database_url=url,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            var_dir=Path(tmp),
            log_level="warning",
        )
        stamp = str(int(time.time()))
        raw, raw_cpu = await bench_raw(
            broker.bootstrap_servers, raw_records(f"r{stamp}", args.events, args.leases)
        )
        asgi = await bench_asgi(settings, key, f"a{stamp}", args)
        sock = await bench_socket(env, key, f"s{stamp}", args)
        db_kind = url.split(":")[0]
        print(
            f"events={args.events} batch={args.batch} leases={args.leases} database={db_kind}"
            f" feed={args.feed}"
        )
        c = args.concurrency
        print(
            f"raw aiokafka produce (acks=all):          {raw:>9,.0f} events/s"
            f"              CPU {raw_cpu:.1f} µs/event"
        )
        for name, (one, many) in (("in-process ASGI", asgi), ("uvicorn socket ", sock)):
            for clients, (rate, cpu, server) in ((1, one), (c, many)):
                label = f"batch endpoint, {name}, {clients} client(s):"
                print(
                    f"{label:<42}{rate:>9,.0f} events/s  ratio {rate / raw:.2f}"
                    f"  CPU {cpu:.1f} µs/event  PostgreSQL {server:.1f}"
                )
        print(
            "CPU per event: in-process = the bench process (service and client); "
            "socket = the ingest process alone; PostgreSQL = the backends serving the "
            "run's database (0 on SQLite)"
        )
    finally:
        broker.stop()
        if fresh is not None:
            await _pg_admin(url, f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--leases", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=4, help="clients in the second pass")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--feed",
        choices=("ledger", "households"),
        default="ledger",
        help="ledger: charges and payments of registered leases; households: new leases "
        "with their charge and payment, as bench/pipeline.py sends them",
    )
    asyncio.run(main(parser.parse_args()))
