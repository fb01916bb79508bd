"""The whole pipeline: ingest API -> rules (ledger applied, signals) -> notifier, as processes.

    python bench/pipeline.py [--leases 5000] [--latency-samples 100]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--warmup 500] [--profile DIR] [--history MONTHS] [--raw-runs 3]

In one run, on one embedded broker and a fresh PostgreSQL database:
1. raw broker: aiokafka produce + consume of the same number of events (the ceiling),
   `--raw-runs` times before the services start, and once more right after the
   sustained part (the services idle): the first run (on a fresh broker: the figure of
   passes 1-6), the median of the runs before and the run after are printed, with the
   pipeline's ratio to each;
2. sustained rate, after a warm-up feed of `--warmup` households that is not measured (the
   services' connections, prepared statements and type caches are made once; a pipeline
   that runs for months pays that once): leases, charges (rent already due) and payments
   for 90 % of them pushed through ingest's batch API; measured until rules has applied
   all of them (its group has no lag) and the signals for the 10 % who did not pay are
   on risk.signals. With `--history MONTHS` the feed is a month-end instead: the leases
   are registered and MONTHS months of rent, paid on time, are fed first and applied by
   every service, and the database vacuumed as a month of autovacuum would (not
   measured); the measured part is March's charges and payments only, against ledgers of
   2 x MONTHS entries per lease, as in production. Printed with it: when the rules
   group last had a lag, when the first and the last late-rent alarm arrived (the
   alarms wait for the watermark the feed ends with), and when the rules group had
   consumed everything after the last alarm (rules also reads the case events that cases
   makes of the alarms). `--log-level info` writes the services' info lines (rules'
   `rules.watermark` and `rules.sweep_done` with their timestamps) and prints where.
   `--staff N` puts N members of the leases' team on duty around the clock into the
   notifier first: the alarms' call tasks are then assigned and their assignees alerted,
   as at a landlord with staff (without it no one is on duty: the tasks stay unassigned);
3. latency from a payment accepted by ingest (202) to the notifier's cancellation of the
   tenant's pending SMS (deferred by quiet hours: the clock stands at 22:00), p50/p99;
   the payments go one per request, or `--latency-per-request K` at a time (a day's
   file from the ERP: all in one);
4. peak resident memory of each service process;
5. CPU time of each service process, the broker, PostgreSQL (the backends serving the
   bench's database) and the bench client itself during the sustained part, per event:
   robust on a loaded machine, where the wall-clock rates are not; and the same until
   every consumer group has consumed everything (notifier and cases turn rules' signals
   into SMS, tasks and cases after the sustained part ends), with when that was and when
   each group was last seen with a lag (rules too: it reads the case events cases goes on
   making after the measured part ends). With `--profile DIR`, py-spy (`pip install
   py-spy`, not a dependency) samples each service during the sustained part and writes
   collapsed stacks to DIR/<service>.txt; `--top` prints the functions with the most own
   samples per service. `--table-writes N` prints the rows
   inserted, updated or deleted per event in the N busiest tables (pg_stat_user_tables).
   The PostgreSQL server's write pressure during the sustained part is printed with its
   settings: buffers its backends had to write themselves, checkpoints, WAL and its
   full-page images (docs/deploy.md, "PostgreSQL settings").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bokvar.processes import ServiceProcess
from bokvar.simulate.generator import personnummer
from shared.bus import create_topics
from shared.bus.broker import EmbeddedBroker, free_port
from shared.clock import STOCKHOLM
from shared.config import CommonSettings
from shared.events import NotificationStatusChanged, SignalRaised, decode
from shared.topics import NOTIFICATION_EVENTS, RISK_SIGNALS
from tests.e2e.conftest import api_key
from tests.e2e.pipeline import Pipeline, drop_database, fresh_database_url

# The bench's own consumers (signals counted, cancellations timed) fetch with a 20 ms wait:
# the embedded broker holds an empty fetch for the whole wait (aiokafka's default 500 ms)
# even when records arrive meanwhile, which added up to that much to every figure.
FAST = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 500,
    "rebalance_timeout_ms": 1000,
    "fetch_max_wait_ms": 20,
}
RENT = 812_500
JSON = {"Content-Type": "application/json"}
WARMUP_OFFSET = 9_000_000  # lease ids of the warm-up feed (B9000000...) stay clear of the rest
RULES_TOPICS = ("lease.events", "ledger.events", "complaint.events", "case.events")


def lease(i: int, rng: Any) -> dict[str, Any]:
    return {
        "type": "lease",
        "event_id": f"lease-{i}",
        "lease_id": f"B{i:07d}",
        "property_id": "P",
        "area": None,
        "municipality_code": "0180",
        "monthly_rent_ore": RENT,
        "start_date": "2024-01-01",
        "end_date": None,
        "team": "team-a",
        "household_type": "single_adult",
        "due_day": None,
        "tenants": [
            {
                "tenant_id": f"T{i}",
                "personnummer": personnummer(rng),
                "phone": f"+4670{i:07d}",
                "language": "sv",
                "name": "Bench Bänksson",
            }
        ],
    }


def charge(i: int, period: str = "2026-03") -> dict[str, Any]:
    suffix = "" if period == "2026-03" else f"-{period}"  # March: the ids of passes 1-6
    return {
        "type": "charge",
        "event_id": f"charge-{i}{suffix}",
        "lease_id": f"B{i:07d}",
        "invoice_id": f"INV-{i}{suffix}",
        "ocr": None,
        "period": period,
        "amount_ore": RENT,
    }


def payment(i: int, booked: date, suffix: str = "") -> dict[str, Any]:
    return {
        "type": "payment",
        "event_id": f"pay-{i}{suffix}",
        "lease_id": f"B{i:07d}",
        "payment_id": f"PAY-{i}{suffix}",
        "amount_ore": RENT,
        "booked_date": booked.isoformat(),
        "reference": f"B{i:07d}",
    }


async def raw_rate(servers: str, n: int, size: int, topic: str = "bench.raw") -> float:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=2)
    await producer.start()
    t0 = time.perf_counter()
    futures = [await producer.send(topic, b"x" * size, key=str(i % 500).encode()) for i in range(n)]
    await asyncio.gather(*futures)
    await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,  # as the bench's other consumers (FAST)
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or {0}])
    await consumer.seek_to_beginning()
    got = 0
    while got < n:
        for msgs in (await consumer.getmany(timeout_ms=500, max_records=1000)).values():
            got += len(msgs)
    await consumer.stop()
    return n / (time.perf_counter() - t0)


async def raw_rates(servers: str, n: int, size: int, runs: int) -> list[float]:
    """`raw_rate` `runs` times, each on a topic of its own. The first run on a fresh broker
    is the figure of passes 1-6; on one machine it came out anywhere between 15,800 and
    30,500 events/s, the later runs of one bench steadier and faster (RESULTS, pass 7)."""
    return [
        await raw_rate(servers, n, size, f"bench.raw.{k}" if k else "bench.raw")
        for k in range(runs)
    ]


class MemorySampler:
    """Samples the resident memory of each service process in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.peak = dict.fromkeys(pids, 0)
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self._procs.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
            self._stop.wait(0.2)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float | None:
    """Return the user + system CPU seconds of a process (and its reaped children)."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return t.user + t.system + t.children_user + t.children_system


class CpuMeter:
    """CPU seconds (user + system) each process spent between enter and exit.

    `postgres` is the sum over the backends serving the bench's database (looked up in
    pg_stat_activity at enter and at exit; pooled connections live through the run).
    """

    def __init__(self, pids: dict[str, int], database_url: str | None = None) -> None:
        self._pids = pids
        self._database_url = database_url
        self._start: dict[str, float] = {}
        self._backends: dict[int, float] = {}
        self._owners: dict[int, str] = {}
        self.used: dict[str, float] = {}
        self.postgres_by_service: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {}
        for name, pid in self._pids.items():
            seconds = cpu_seconds(pid)
            if seconds is not None:
                out[name] = seconds
        return out

    async def _backend_cpu(self) -> dict[int, float]:
        if self._database_url is None or self._database_url.startswith("sqlite"):
            return {}
        import asyncpg
        from sqlalchemy.engine import make_url

        url = make_url(self._database_url)
        conn = await asyncpg.connect(
            url.set(drivername="postgresql", database="postgres").render_as_string(False)
        )
        try:
            rows = await conn.fetch(
                "SELECT pid, client_port FROM pg_stat_activity WHERE datname = $1", url.database
            )
        finally:
            await conn.close()
        ports = self._client_ports()
        out = {}
        for row in rows:
            self._owners[row["pid"]] = ports.get(row["client_port"], "other")
            seconds = cpu_seconds(row["pid"])
            if seconds is not None:
                out[row["pid"]] = seconds
        return out

    def _client_ports(self) -> dict[int, str]:
        """Local TCP ports of each metered process: which service a backend serves."""
        out = {}
        for name, pid in self._pids.items():
            with contextlib.suppress(psutil.Error):
                for conn in psutil.Process(pid).net_connections(kind="tcp"):
                    out[conn.laddr.port] = name
        return out

    async def start(self) -> None:
        """Take the first reading (the backends are looked up before it)."""
        self._backends = await self._backend_cpu()
        self._start = self._now() | {"bench": time.process_time()}

    async def stop(self) -> None:
        """Take the second reading (before the backends' lookup) and fill `used`."""
        end = self._now() | {"bench": time.process_time()}
        backends = await self._backend_cpu()
        self.used = {name: end[name] - self._start.get(name, 0.0) for name in end}
        if backends:
            self.used["postgres"] = sum(
                sec - self._backends.get(pid, 0.0) for pid, sec in backends.items()
            )
            split: Counter[str] = Counter()
            for pid, sec in backends.items():
                split[self._owners.get(pid, "other")] += sec - self._backends.get(pid, 0.0)
            self.postgres_by_service = dict(split)


class Profiler:
    """py-spy record of each service process, stopped with SIGINT (collapsed stacks)."""

    def __init__(self, pids: dict[str, int], out: Path | None) -> None:
        self._pids = pids
        self._out = out
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Profiler:
        if self._out is None:
            return self
        self._out.mkdir(parents=True, exist_ok=True)
        spy = str(Path(sys.executable).with_name("py-spy"))
        for name, pid in self._pids.items():
            args = [spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
            args += ["--nonblocking", "-o", str(self._out / f"{name}.txt")]
            self._procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        time.sleep(1.0)  # py-spy attaches
        return self

    def __exit__(self, *_: Any) -> None:
        for proc in self._procs:
            os.kill(proc.pid, signal.SIGINT)
        for proc in self._procs:
            proc.wait(timeout=60)


async def consumer_batches(p: Any) -> Counter[str]:
    """Batches each service's consumers have applied so far (its /metrics)."""
    out: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=5.0) as client:
        for name, proc in p.procs.items():
            if name == "ingest":
                continue
            text = (await client.get(f"{proc.url}/metrics")).text
            for line in text.splitlines():
                if line.startswith("bokvar_consumer_batch_seconds_count"):
                    out[name] += float(line.rsplit(" ", 1)[1])
    return out


@contextlib.asynccontextmanager
async def bench_database(database_url: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection to the bench's database (for statistics and VACUUM)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    conn = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        yield conn
    finally:
        await conn.close()


async def table_writes(database_url: str) -> Counter[str]:
    """Rows inserted, updated and deleted so far per table of the bench's database
    (pg_stat_user_tables; a backend reports its counts at most a second late)."""
    if database_url.startswith("sqlite"):
        return Counter()
    async with bench_database(database_url) as conn:
        rows = await conn.fetch(
            "SELECT schemaname, relname, n_tup_ins + n_tup_upd + n_tup_del AS n"
            " FROM pg_stat_user_tables"
        )
    return Counter({f"{r['schemaname']}.{r['relname']}": r["n"] for r in rows})


# The server's write pressure (whole cluster; pg_stat_bgwriter and pg_stat_wal of PostgreSQL
# 14-16, PostgreSQL 17 moved these columns): buffers a backend had to write itself to
# free one (the working set does not fit in shared_buffers), checkpoints begun, and the WAL
# written with its full-page images (a page's first change after a checkpoint logs all of
# it). With the server's settings that decide them.
_PRESSURE = (
    "SELECT b.buffers_backend, b.checkpoints_timed + b.checkpoints_req AS checkpoints,"
    " w.wal_bytes, w.wal_fpi FROM pg_stat_bgwriter AS b, pg_stat_wal AS w"
)
_PRESSURE_SETTINGS = ("shared_buffers", "max_wal_size", "checkpoint_timeout")


async def server_pressure(database_url: str) -> dict[str, float]:
    """`_PRESSURE` so far: {} on SQLite, or where the server has no such columns."""
    if database_url.startswith("sqlite"):
        return {}
    import asyncpg

    async with bench_database(database_url) as conn:
        try:
            row = await conn.fetchrow(_PRESSURE)
        except asyncpg.PostgresError:
            return {}
    return {k: float(v) for k, v in row.items()}


async def server_settings(database_url: str) -> str:
    """The PostgreSQL settings that decide `_PRESSURE`, as `name=value` pairs."""
    if database_url.startswith("sqlite"):
        return "SQLite"
    async with bench_database(database_url) as conn:
        values = [await conn.fetchval(f"SHOW {name}") for name in _PRESSURE_SETTINGS]
    return " ".join(f"{n}={v}" for n, v in zip(_PRESSURE_SETTINGS, values, strict=True))


async def vacuum(database_url: str) -> None:
    """VACUUM (ANALYZE) the bench's database: what autovacuum does in the month between two
    month-ends (the pages of last month's rows all-visible, the statistics fresh)."""
    if database_url.startswith("sqlite"):
        return
    async with bench_database(database_url) as conn:
        await conn.execute("VACUUM (ANALYZE)")


def top_functions(path: Path, n: int = 12) -> list[tuple[str, float]]:
    """Return the functions with the most own (leaf) samples in a collapsed-stack file."""
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return [(name, c / max(total, 1)) for name, c in ranked]


def bodies(items: list[dict[str, Any]], chunk: int = 5000, clients: int = 1) -> list[bytes]:
    """The JSON bodies of `items` in batches of `chunk`, as an ERP sends them; a
    household's lease, charge and payment stay in one batch when `clients` > 1.

    Built before the measured part starts, as the raw rate's payloads are: what the bench
    measures is the pipeline, not the load generator's serialising."""
    out, start = [], 0
    while start < len(items):
        end = min(start + chunk, len(items))
        while clients > 1 and end < len(items) and items[end]["type"] != "lease":
            end += 1  # a batch ends before a household's lease, not inside the household
        out.append(orjson.dumps(items[start:end]))
        start = end
    return out


async def push(client: httpx.AsyncClient, batches: list[bytes], clients: int = 1) -> None:
    """POST the batch bodies, from `clients` senders at once (as several ERPs would)."""

    async def sender(mine: list[bytes]) -> None:
        for body in mine:
            response = await client.post("/v1/events/batch", content=body, headers=JSON)
            # orjson, not httpx's json(): a 5,000-event answer (a result per event) cost
            # the stdlib parser ~5 µs of the bench's CPU per event, counted in the figures
            if response.status_code != 202 or orjson.loads(response.content)["rejected"]:
                raise RuntimeError(f"ingest: {response.status_code} {response.text[:300]}")

    await asyncio.gather(*(sender(batches[k::clients]) for k in range(clients)))


async def watermark(client: httpx.AsyncClient, name: str) -> None:
    """Say, as the ERP does after a feed, that every payment through 9 March is in."""
    body = {"event_id": f"wm-{name}", "booked_through": "2026-03-09"}
    response = await client.post("/v1/ledger/watermark", json=body)
    if response.status_code != 202:
        raise RuntimeError(f"ingest: {response.status_code} {response.text[:300]}")


class LagProbe:
    """The rules group's lag, asked on clients kept open (never joining the group):
    `bokvar.processes.group_lag` starts a client per call, which would add up to a few
    hundred ms to the measured time. Each probe is two requests (the end offsets, and the
    group's committed offsets of every partition in one OffsetFetch): asked every 50 ms
    during the measured part, a request per partition (24) cost the broker and the bench
    CPU that the pipeline shares."""

    def __init__(self, bootstrap_servers: str, group: str, topics: tuple[str, ...]) -> None:
        self._topics = topics
        self._group = group
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False
        )
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
        self._coordinator = 0
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> LagProbe:
        await self._consumer.start()
        await self._admin.start()
        self._coordinator = await self._admin.find_coordinator(self._group)
        self._partitions = [
            TopicPartition(t, p)
            for t in self._topics
            for p in (self._consumer.partitions_for_topic(t) or ())
        ]
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self._admin.close()
        await self._consumer.stop()

    async def lag(self) -> int:
        """Return how many records of the topics the group has not committed yet."""
        ends = await self._consumer.end_offsets(self._partitions)
        done = await self._admin.list_consumer_group_offsets(
            self._group, self._coordinator, self._partitions
        )
        return sum(
            max(0, end - max(0, done[tp].offset if tp in done else 0)) for tp, end in ends.items()
        )


# what each group consumes; notifier and cases work on rules' signals after the measured
# window ends, and cases on the notifier's events after that
DRAINED = {
    "rules": RULES_TOPICS,
    "notifier": ("risk.signals", "lease.events"),
    "cases": ("risk.signals", "notification.events", "lease.events"),
}


async def drained(
    bootstrap_servers: str, groups: dict[str, tuple[str, ...]]
) -> dict[str, float | None]:
    """Return once every group has committed everything, in two probes 20 ms apart (a
    consumer commits its offsets just before its outbox relay publishes): per group, the
    last `time.perf_counter()` it was seen with a lag (None: never)."""
    last: dict[str, float | None] = dict.fromkeys(groups)
    async with contextlib.AsyncExitStack() as stack:
        probes = [
            await stack.enter_async_context(LagProbe(bootstrap_servers, group, topics))
            for group, topics in groups.items()
        ]
        quiet = 0
        while quiet < 2:
            lags = await asyncio.gather(*(probe.lag() for probe in probes))
            now = time.perf_counter()
            for group, lag in zip(groups, lags, strict=True):
                if lag:
                    last[group] = now
            quiet = quiet + 1 if not any(lags) else 0
            await asyncio.sleep(0.02)
    return last


_SIGNAL_RAISED = SignalRaised.event_type.encode()


async def count_signals(consumer: AIOKafkaConsumer, seen: dict[str, int], leases: set[str]) -> None:
    """Note the SignalRaised records of `leases` by id. Read from the headers the producer
    writes (ce_type; ce_id is the signal id, the key the lease id), without decoding the
    bodies: the bench counts, and its CPU is part of the measured figures."""
    for msgs in (await consumer.getmany(timeout_ms=20, max_records=10000)).values():
        for r in msgs:
            headers = dict(r.headers)
            if headers.get("ce_type") == _SIGNAL_RAISED and r.key.decode() in leases:
                seen[headers["ce_id"].decode()] = 1


async def sustained(
    p: Pipeline,
    key: str,
    n: int,
    *,
    offset: int = 0,
    name: str = "sustained",
    chunk: int = 5000,
    clients: int = 1,
    meter: CpuMeter | None = None,
    whole: CpuMeter | None = None,
    month_end: bool = False,
) -> tuple[int, float, int]:
    """Push `n` households through ingest; return (events, seconds, signals seen).

    The measured part starts once the feed is built and serialised and the bench's
    clients are connected: `meter` is read at its start and its end, `whole` at its start
    (the caller reads it again once every group drained)."""
    import random

    rng = random.Random(1)
    # Each household's lease (not with `month_end`: registered by `history`), charge and
    # (for 9 in 10) payment arrive together, as an ERP feed would send them; the 10 % who
    # do not pay get the arrears ladder.
    items = []
    for i in range(offset, offset + n):
        items += ([] if month_end else [lease(i, rng)]) + [charge(i)]
        items += [payment(i, date(2026, 2, 26))] if i % 10 else []
    leases = {f"B{i:07d}" for i in range(offset, offset + n)}
    consumer = AIOKafkaConsumer(
        RISK_SIGNALS,
        bootstrap_servers=p.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"b-{uuid.uuid4()}",
        enable_auto_commit=False,
        **FAST,
    )
    await consumer.start()
    signals: dict[str, int] = {}
    expected = (n // 10 + (1 if n % 10 else 0)) * 3  # late, contact, forfeiture for the 10 %
    batches = bodies(items, chunk=chunk, clients=clients)
    async with (
        httpx.AsyncClient(
            base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=120
        ) as client,
        LagProbe(p.bootstrap_servers, "rules", RULES_TOPICS) as probe,
    ):
        for m in (meter, whole):
            if m is not None:
                await m.start()
        t0, started = time.perf_counter(), datetime.now(UTC)  # started: to align the logs
        lagging = asyncio.create_task(last_lag(p.bootstrap_servers, t0))
        await push(client, batches, clients=clients)
        await watermark(client, name)  # late stages wait for it (settlement hold)
        pushed = time.perf_counter() - t0
        first_alarm = all_alarms = None
        while True:
            await count_signals(consumer, signals, leases)
            alarms = sum(
                1
                for s in signals
                if s.endswith(
                    ("late_rent_detected", "personal_contact_needed", "forfeiture_possible")
                )
                and ":2026-03:" in s  # March's rent: not a month of `history`
            )
            if alarms and first_alarm is None:
                first_alarm = time.perf_counter() - t0
            if alarms >= expected and all_alarms is None:
                all_alarms = time.perf_counter() - t0
            if alarms >= expected and not await probe.lag():
                break
            if time.perf_counter() - t0 > 900:
                raise RuntimeError(f"pipeline did not finish: {len(signals)} signals")
        elapsed = time.perf_counter() - t0
        lagging.cancel()
        lagged = await asyncio.gather(lagging, return_exceptions=True)
        if meter is not None:
            await meter.stop()
    await consumer.stop()
    print(
        f"  {name}: started at {started:%H:%M:%S.%f} UTC, pushed {len(items)} events "
        f"in {pushed:.1f} s ({len(items) / pushed:,.0f}/s accepted)"
    )
    if first_alarm is not None and all_alarms is not None and isinstance(lagged[0], float):
        print(
            f"  {name}: rules' group last had a lag at {lagged[0]:.2f} s; late-rent alarms "
            f"first seen at {first_alarm:.2f} s, all at {all_alarms:.2f} s; "
            f"everything consumed by rules at {elapsed:.2f} s"
        )
    return len(items), elapsed, len(signals)


async def last_lag(bootstrap_servers: str, t0: float) -> float | None:
    """Poll the rules group's lag every 50 ms until cancelled; return the last moment
    (seconds after `t0`) it was above zero: with the stages a watermark releases swept
    in chunks, the first alarms may come before it."""
    last = None
    async with LagProbe(bootstrap_servers, "rules", RULES_TOPICS) as probe:
        try:
            while True:
                if await probe.lag():
                    last = time.perf_counter() - t0
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            return last


def month_before(period: str, k: int) -> str:
    """The period `k` months before `period` ("2026-03", 2 -> "2026-01")."""
    year, month = map(int, period.split("-"))
    t = year * 12 + month - 1 - k
    return f"{t // 12}-{t % 12 + 1:02d}"


async def history(p: Pipeline, key: str, n: int, months: int, chunk: int = 5000) -> None:
    """Register `n` leases and feed `months` months of rent before March 2026, each charge
    paid on the 20th of the month before it is due (on time: no signal); not measured.
    Then rules reads a ledger of 2 x `months` entries per lease at month-end, as it does in
    production, where the households feed's leases have one or two. The database is then
    vacuumed, as a month of autovacuum would have (`vacuum`)."""
    import random

    rng = random.Random(1)  # the personnummer `sustained` would give the same leases
    items = [lease(i, rng) for i in range(n)]
    for k in range(months, 0, -1):
        period = month_before("2026-03", k)
        year, month = map(int, month_before(period, 1).split("-"))
        paid = date(year, month, 20)
        for i in range(n):
            items += [charge(i, period), payment(i, paid, f"-{period}")]
    t0 = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=120
    ) as client:
        await push(client, bodies(items, chunk=chunk))
    await drained(p.bootstrap_servers, DRAINED)
    applied = time.perf_counter() - t0
    await vacuum(p.database_url)
    print(
        f"  history: {n} leases and {months} months of paid rent, {len(items)} events, "
        f"applied by every service in {applied:.1f} s, then VACUUM (ANALYZE) (not measured)"
    )


async def add_staff(p: Pipeline, n: int) -> None:
    """Put `n` members of the leases' team, on duty around the clock, into the notifier."""
    token = CommonSettings.model_fields["service_token"].default.get_secret_value()
    async with httpx.AsyncClient(
        base_url=p.url("notifier"), headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        for k in range(n):
            member = {
                "name": f"Staff {k}",
                "phone": f"+46709{k:06d}",
                "team": "team-a",
                "is_lead": k == 0,
                "work_start": "00:00",
                "work_end": "23:59",
                "work_days": "1234567",
            }
            (await client.put(f"/v1/staff/s{k:03d}", json=member)).raise_for_status()


async def latency(
    p: Pipeline, key: str, samples: int, offset: int, per_request: int = 1
) -> list[float]:
    import random

    rng = random.Random(2)
    ids = range(offset, offset + samples)
    consumer = AIOKafkaConsumer(
        NOTIFICATION_EVENTS,
        bootstrap_servers=p.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"l-{uuid.uuid4()}",
        enable_auto_commit=False,
        **FAST,
    )
    await consumer.start()
    deferred: set[str] = set()
    cancelled: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=p.url("ingest"), headers={"X-API-Key": key}, timeout=60
    ) as client:
        await push(client, bodies([lease(i, rng) for i in ids] + [charge(i) for i in ids]))
        await watermark(client, "latency")
        wanted = {f"B{i:07d}" for i in ids}
        while not wanted <= deferred:  # every late-rent SMS is waiting for 08:00
            await _collect(consumer, deferred, cancelled)
        accepted: dict[str, float] = {}
        for start in range(offset, offset + samples, per_request):
            part = range(start, min(start + per_request, offset + samples))
            body = [payment(i, date(2026, 3, 10)) for i in part]
            r = await client.post("/v1/events/batch", json=body)
            accepted |= dict.fromkeys((f"B{i:07d}" for i in part), time.perf_counter())
            assert r.status_code == 202, r.text
            await _collect(consumer, deferred, cancelled, timeout_ms=0)
    while not set(accepted) <= set(cancelled):
        await _collect(consumer, deferred, cancelled)
    await consumer.stop()
    return [cancelled[lid] - accepted[lid] for lid in accepted]


async def _collect(
    consumer: AIOKafkaConsumer,
    deferred: set[str],
    cancelled: dict[str, float],
    timeout_ms: int = 200,
) -> None:
    for msgs in (await consumer.getmany(timeout_ms=timeout_ms, max_records=5000)).values():
        now = time.perf_counter()
        for r in msgs:
            d = decode(r.value, r.headers).data
            if isinstance(d, NotificationStatusChanged) and d.signal == "late_rent_detected":
                if d.status == "deferred":
                    deferred.add(d.lease_id)
                elif d.status == "cancelled" and d.detail == "arrears_cleared":
                    # not "sent per tenant": an SMS queued before the notifier had read the
                    # lease (topics are not ordered among each other) is replaced per tenant
                    cancelled.setdefault(d.lease_id, now)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leases", type=int, default=5000)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument(
        "--latency-per-request",
        type=int,
        default=1,
        metavar="K",
        help="payments per ingest request in the latency part (a day's file: all at once)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=500,
        help="households fed through first, not measured (connections, prepared statements)",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="MONTHS",
        help="month-end feed: register the leases and feed MONTHS months of paid rent first"
        " (not measured), then measure March's charges and payments without registrations",
    )
    parser.add_argument(
        "--raw-runs", type=int, default=3, help="raw broker measurements (the first as before)"
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument(
        "--rules-instances",
        type=int,
        default=1,
        help="rules processes in its consumer group (the partitions are shared out)",
    )
    parser.add_argument("--rules-lanes", type=int, help="BOKVAR_RULES_LANES")
    parser.add_argument("--sweep-chunk", type=int, help="BOKVAR_RULES_SWEEP_CHUNK")
    parser.add_argument("--consumer-batch-size", type=int, help="BOKVAR_CONSUMER_BATCH_SIZE")
    parser.add_argument("--chunk", type=int, default=5000, help="events per ingest batch request")
    parser.add_argument(
        "--clients", type=int, default=1, help="ingest batch requests in flight at once"
    )
    parser.add_argument("--profile", type=Path, help="py-spy each service into this directory")
    parser.add_argument("--top", type=int, default=0, help="print the top N functions per service")
    parser.add_argument(
        "--table-writes",
        type=int,
        default=0,
        metavar="N",
        help="print the N PostgreSQL tables with the most rows written per event",
    )
    parser.add_argument(
        "--staff",
        type=int,
        default=0,
        metavar="N",
        help="N staff of the leases' team on duty all week (notifier's staff API): the "
        "alarms' call tasks are then assigned round-robin and each assignee alerted by SMS",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        help="the services' BOKVAR_LOG_LEVEL (info: rules' watermark and sweep lines);"
        " their log folder is printed",
    )
    args = parser.parse_args()
    broker = EmbeddedBroker()
    broker.start()
    tmp = Path(tempfile.mkdtemp())
    url, dbname = await fresh_database_url(args.database_url, tmp)
    # Tuesday 10 March 2026 at 22:00: March rent is overdue and tenant SMS wait for 08:00.
    p = Pipeline(
        bootstrap_servers=broker.bootstrap_servers,
        database_url=url,
        var_dir=tmp,
        clock_start=datetime(2026, 3, 10, 22, 0, tzinfo=STOCKHOLM),
        clock_speed=1.0,
        extra_env={
            "BOKVAR_RULES_SWEEP_INTERVAL_SECONDS": "0.2",
            "BOKVAR_NOTIFIER_SENDER_INTERVAL_SECONDS": "0.2",
            "BOKVAR_LOG_LEVEL": args.log_level,
        }
        | (
            {"BOKVAR_CONSUMER_BATCH_SIZE": str(args.consumer_batch_size)}
            if args.consumer_batch_size
            else {}
        )
        | ({"BOKVAR_RULES_LANES": str(args.rules_lanes)} if args.rules_lanes else {})
        | ({"BOKVAR_RULES_SWEEP_CHUNK": str(args.sweep_chunk)} if args.sweep_chunk else {}),
    )
    try:
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
        await create_topics(broker.bootstrap_servers, partitions=6)
        events = args.leases * (2 if args.history else 3) - args.leases // 10
        raws = await raw_rates(broker.bootstrap_servers, events, 600, max(1, args.raw_runs))
        raw, raw_median = raws[0], statistics.median(raws)
        await p.start()
        for k in range(2, args.rules_instances + 1):  # more members of the rules group
            extra = ServiceProcess(
                "rules",
                p.env() | {"BOKVAR_RULES_PORT": str(free_port())},
                log_dir=tmp / f"rules{k}",
            )
            extra.start()
            p.procs[f"rules{k}"] = extra
            await extra.wait_healthy(path="/readyz")
        key = await api_key(p, "bench")
        await add_staff(p, args.staff)
        pids = {name: proc.proc.pid for name, proc in p.procs.items() if proc.proc}
        if args.warmup:
            await sustained(p, key, args.warmup, offset=WARMUP_OFFSET, name="warm-up")
        if args.history:
            await history(p, key, args.leases, args.history, chunk=args.chunk)
        with MemorySampler(pids) as memory:
            metered = pids | ({"broker": broker.pid} if broker.pid else {})
            meter = CpuMeter(metered, url)
            whole = CpuMeter(metered, url)  # until notifier and cases are done too
            writes_before = await table_writes(url)
            batches_before = await consumer_batches(p)
            pressure_before = await server_pressure(url)
            with Profiler(pids, args.profile):
                n, elapsed, signals = await sustained(
                    p,
                    key,
                    args.leases,
                    chunk=args.chunk,
                    clients=args.clients,
                    meter=meter,
                    whole=whole,
                    month_end=bool(args.history),
                )
                ended = time.perf_counter()
                after = await server_pressure(url)  # both or neither: {} where unknown
                pressure = {k: v - pressure_before[k] for k, v in after.items() if pressure_before}
                lagged = await drained(p.bootstrap_servers, DRAINED)
                done = elapsed + time.perf_counter() - ended  # seconds after the start
                await whole.stop()
            batches = await consumer_batches(p)
            batches.subtract(batches_before)
            # the same raw measurement again, the services idle: the machine's speed drifts
            # (every process's CPU per event rose by half in some runs), so the ratio to a
            # raw run minutes before can reflect the machine as much as the pipeline
            raw_after = await raw_rate(broker.bootstrap_servers, events, 600, "bench.raw.after")
            if args.table_writes:
                await asyncio.sleep(2.0)  # notifier and cases finish; backends report
                writes = await table_writes(url)
                writes.subtract(writes_before)
            lat = await latency(
                p,
                key,
                args.latency_samples,
                offset=args.leases,
                per_request=args.latency_per_request,
            )
        rate = n / elapsed
        print(
            f"raw broker produce+consume: {raw:,.0f} events/s (first run); "
            + f"{len(raws)} runs: {', '.join(f'{r:,.0f}' for r in raws)}, "
            + f"median {raw_median:,.0f}; right after the sustained part: {raw_after:,.0f}"
        )
        print(
            f"pipeline: {n} events -> ledger applied and {signals} signals in {elapsed:.1f} s "
            f"= {rate:,.0f} events/s sustained (ratio to raw: {rate / raw:.3f}; "
            f"to the median of {len(raws)} raw runs: {rate / raw_median:.3f}; "
            f"to the run right after: {rate / raw_after:.3f})"
        )
        print(
            f"payment accepted -> pending SMS cancelled, {len(lat)} samples "
            f"({args.latency_per_request} per request): p50 {statistics.median(lat) * 1000:.0f}"
            f" ms, p99 {pct(lat, 0.99) * 1000:.0f} ms"
        )
        print(
            f"CPU per event during the sustained part (load average {os.getloadavg()[0]:.2f}): "
            + ", ".join(f"{name} {sec / n * 1e6:.0f} us" for name, sec in meter.used.items())
            + f"; all {sum(meter.used.values()) / n * 1e6:.0f} us"
        )
        print(
            f"every group (notifier and cases too) had consumed everything at {done:.1f} s "
            f"({n / done:,.0f} events/s); last seen with a lag after the measured part: "
            + ", ".join(
                f"{group} {'-' if t is None else f'{elapsed + t - ended:.2f} s'}"
                for group, t in lagged.items()
            )
        )
        print(
            "CPU per event until every group had consumed everything: "
            + ", ".join(f"{name} {sec / n * 1e6:.0f} us" for name, sec in whole.used.items())
            + f"; all {sum(whole.used.values()) / n * 1e6:.0f} us"
        )
        print(
            "PostgreSQL CPU per event by the service it serves (sustained part): "
            + ", ".join(
                f"{name} {sec / n * 1e6:.0f} us"
                for name, sec in sorted(meter.postgres_by_service.items())
            )
        )
        if pressure:
            print(
                "PostgreSQL server during the sustained part (whole cluster): "
                f"{pressure['buffers_backend']:,.0f} buffers written by backends to free one "
                f"({pressure['buffers_backend'] * 8 / 1024:,.0f} MiB of 8 KiB blocks), "
                f"checkpoints begun: {pressure['checkpoints']:.0f}, "
                f"{pressure['wal_bytes'] / 2**20:,.0f} MiB of WAL with "
                f"{pressure['wal_fpi']:,.0f} full-page images; " + await server_settings(url)
            )
        print(
            "consumer batches during the sustained part and after (events per batch): "
            + ", ".join(f"{name} {count:.0f}" for name, count in sorted(batches.items()))
            + f" (rules: {n / max(batches['rules'], 1):.0f} events per batch)"
        )
        if args.table_writes:
            total = sum(writes.values())
            print(f"PostgreSQL rows written per event (sustained part): {total / n:.1f}")
            for table, count in writes.most_common(args.table_writes):
                print(f"    {count / n:6.2f}  {table}")
        if args.profile and args.top:
            for name in pids:
                print(f"  {name}: own samples")
                for fn, share in top_functions(args.profile / f"{name}.txt", args.top):
                    print(f"    {share:6.1%}  {fn}")
        print(
            "peak RSS per service: "
            + ", ".join(f"{name} {rss / 2**20:.0f} MiB" for name, rss in memory.peak.items())
        )
    finally:
        p.stop()
        broker.stop()
        if args.log_level != "warning":
            print(f"services' logs: {tmp / 'logs'}")
        if dbname:
            await drop_database(args.database_url, dbname)


if __name__ == "__main__":
    asyncio.run(main())
