"""The consumer runner on the real embedded broker and a real database."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from sqlalchemy import Column, Integer, String, Table, func, select, text
from sqlalchemy.engine import make_url

from shared.bus import Batch, ConsumerRunner, Hooks, OutboxRelay, Producer, SimulatedCrash
from shared.bus import producer as producer_module
from shared.bus.broker import EmbeddedBroker
from shared.bus.outbox import add_to_outbox
from shared.bus.producer import murmur2, partition_for
from shared.clock import ManualClock
from shared.db import Database, inbox_table, new_metadata, outbox_table
from shared.events import PaymentReceived, decode, encode, new_event
from shared.topics import LEDGER_EVENTS
from tests.helpers import FAST_GROUP, header, read_topic, wait_for

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _tables() -> tuple[Table, Table, Table]:
    md = new_metadata()
    applied = Table(
        "applied",
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(100)),
        Column("amount_ore", Integer),
    )
    return inbox_table(md), outbox_table(md), applied


def _payment(i: int, lease: str = "L-1", amount: int = 100) -> object:
    data = PaymentReceived(
        lease_id=lease,
        org_id="org1",
        payment_id=f"p{i}",
        amount_ore=amount,
        booked_date=date(2026, 3, 2),
    )
    return new_event(data, id=f"evt-{i}", source="test", time=NOW)


async def _setup(db: Database) -> tuple[Table, Table, Table]:
    inbox, outbox, applied = _tables()
    async with db.engine.begin() as conn:
        await conn.run_sync(inbox.metadata.create_all)
    return inbox, outbox, applied


def _runner(
    broker: EmbeddedBroker,
    db: Database,
    producer: Producer,
    tables: tuple[Table, ...],
    *,
    fail_on: int | None = None,
    hooks: Hooks | None = None,
    first_batch: Any = None,
) -> ConsumerRunner:
    """A runner (batches of 7) applying payments; its handler fails on `fail_on` and, in
    its first batch, awaits `first_batch()` first."""
    inbox, _, applied = tables
    batches = 0

    async def handle(batch: Batch) -> None:
        nonlocal batches
        batches += 1
        if batches == 1 and first_batch is not None:
            await first_batch()
        for item in batch.events:
            assert isinstance(item.event.data, PaymentReceived)
            if item.event.data.amount_ore == fail_on:
                raise ValueError("amount the handler cannot process")
            await batch.session.execute(
                applied.insert().values(
                    event_id=item.event.id, amount_ore=item.event.data.amount_ore
                )
            )

    return _member(broker, db, producer, "test-group", inbox, handle, batch_size=7, hooks=hooks)


def _member(
    broker: EmbeddedBroker,
    db: Database,
    producer: Producer,
    group_id: str,
    inbox: Table,
    handler: Any,
    service: str = "test",
    **kwargs: Any,
) -> ConsumerRunner:
    """A member of `group_id` on LEDGER_EVENTS with the tests' fast group timings."""
    return ConsumerRunner(
        service=service,
        group_id=group_id,
        topics=[LEDGER_EVENTS],
        bootstrap_servers=broker.bootstrap_servers,
        database=db,
        inbox=inbox,
        handler=handler,
        producer=producer,
        clock=ManualClock(NOW),
        poll_ms=50,
        max_backoff=0.3,
        **FAST_GROUP,
        **kwargs,
    )


def _groupless_runner(
    service: str,
    broker: EmbeddedBroker,
    database: Database,
    producer: Producer,
    inbox: Table,
    handler: Any,
    **kwargs: Any,
) -> ConsumerRunner:
    """A runner on LEDGER_EVENTS fed by `_process` directly: no group joined, so no
    offsets to commit."""
    runner = _member(
        broker, database, producer, f"g-{service}", inbox, handler, service=service, **kwargs
    )

    async def no_offsets(records: object) -> None:
        return None

    runner._commit = no_offsets  # type: ignore[method-assign]
    return runner


def _ledger_records(
    events: list[object], first_offset: int = 0, partition: int = 0
) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    """`events` as one fetch of a partition of LEDGER_EVENTS, for `ConsumerRunner._process`."""
    records = []
    for offset, event in enumerate(events, start=first_offset):
        key, value, headers = encode(event)  # type: ignore[arg-type]
        records.append(
            ConsumerRecord(
                LEDGER_EVENTS, partition, offset, 0, 0, key, value, None, 0, 0, tuple(headers)
            )
        )
    return {TopicPartition(LEDGER_EVENTS, partition): records}


async def _count(db: Database, applied: Table) -> tuple[int, int]:
    async with db.sessionmaker() as s:
        total = (await s.execute(select(func.count()).select_from(applied))).scalar_one()
        distinct = (await s.execute(select(func.count(applied.c.event_id.distinct())))).scalar_one()
    return total, distinct


async def test_crash_between_db_commit_and_offset_commit_applies_each_event_once(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer
) -> None:
    tables = await _setup(raw_database)
    n = 50
    await producer.publish_many([_payment(i) for i in range(n)])  # type: ignore[misc]
    crashes = 0

    async def crash_once() -> None:
        nonlocal crashes
        if crashes < 3:
            crashes += 1
            raise SimulatedCrash

    for _ in range(3):  # three lives, each killed after its first database commit
        runner = _runner(broker, raw_database, producer, tables, hooks=Hooks(crash_once))
        await runner.start()
        with pytest.raises(SimulatedCrash):
            await runner.run()
        await runner.close()  # leaves the group without committing offsets
    runner = _runner(broker, raw_database, producer, tables)
    await runner.start()
    task = asyncio.create_task(runner.run())
    await wait_for(lambda: _all_applied(raw_database, tables[2], n), what=f"{n} applied")
    runner.stop()
    await task
    await runner.close()
    assert await _count(raw_database, tables[2]) == (n, n)
    assert crashes == 3


async def test_a_batch_with_ids_already_in_the_inbox_applies_only_the_new_events(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer
) -> None:
    # on PostgreSQL the inbox is claimed with a plain INSERT; a batch holding an id that
    # is there already fails at it and is claimed again skipping the known ids
    tables = await _setup(raw_database)
    inbox, _, applied = tables
    async with raw_database.sessionmaker.begin() as s:
        await s.execute(
            inbox.insert(),
            [{"event_id": f"evt-{i}", "topic": "t", "received_at": NOW} for i in (3, 8)],
        )
    await producer.publish_many([_payment(i) for i in range(10)])  # type: ignore[misc]
    runner = _runner(broker, raw_database, producer, tables)
    await runner.start()
    task = asyncio.create_task(runner.run())
    await wait_for(lambda: _all_applied(raw_database, applied, 8), what="8 applied")
    retries = runner.claim_retries
    await producer.publish_many([_payment(i) for i in range(10, 17)])  # type: ignore[misc]
    await wait_for(lambda: _all_applied(raw_database, applied, 15), what="15 applied")
    runner.stop()
    await task
    await runner.close()
    async with raw_database.sessionmaker() as s:
        ids = set((await s.execute(select(applied.c.event_id))).scalars())
        claimed = (await s.execute(select(func.count()).select_from(inbox))).scalar_one()
    assert ids == {f"evt-{i}" for i in range(17) if i not in (3, 8)}
    assert await _count(raw_database, applied) == (15, 15)
    assert claimed == 17
    # new ids never fail the plain insert (SQLite always claims skipping known ids)
    assert runner.claim_retries == retries
    assert 1 <= retries <= 2 if not raw_database.sqlite else retries == 0


async def _all_applied(db: Database, applied: Table, n: int) -> bool:
    total, _ = await _count(db, applied)
    return total >= n


async def test_malformed_and_poison_messages_go_to_dlq_and_later_events_still_apply(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer
) -> None:
    tables = await _setup(raw_database)
    await producer.publish_many([_payment(1), _payment(2)])  # type: ignore[list-item]
    await producer.send_raw(
        [
            (LEDGER_EVENTS, b"L-1", b"{not json", [("ce_id", b"bad-1")]),
            (
                LEDGER_EVENTS,
                b"L-1",
                b"{}",
                [
                    ("ce_specversion", b"1.0"),
                    ("ce_id", b"bad-2"),
                    ("ce_source", b"t"),
                    ("ce_type", b"se.bokvar.ledger.payment_received.v1"),
                    ("ce_time", b"2026-03-02T09:00:00+00:00"),
                ],
            ),
        ]
    )
    await producer.publish_many([_payment(3, amount=666), _payment(4), _payment(5)])  # type: ignore[list-item]
    runner = _runner(broker, raw_database, producer, tables, fail_on=666)
    await runner.start()
    task = asyncio.create_task(runner.run())
    await wait_for(lambda: _all_applied(raw_database, tables[2], 4), what="4 good events")
    dlq = await read_topic(broker.bootstrap_servers, f"{LEDGER_EVENTS}.dlq", count=3)
    runner.stop()
    await task
    await runner.close()
    async with raw_database.sessionmaker() as s:
        ids = set((await s.execute(select(tables[2].c.event_id))).scalars())
    assert ids == {"evt-1", "evt-2", "evt-4", "evt-5"}
    reasons = {header(r, "ce_id"): header(r, "dlq_reason") for r in dlq}
    assert reasons["bad-1"] == "missing header ce_source"
    assert "lease_id" in (reasons["bad-2"] or "") and "Field required" in (reasons["bad-2"] or "")
    assert reasons["evt-3"] == "amount the handler cannot process"
    assert all(header(r, "dlq_source_topic") == LEDGER_EVENTS for r in dlq)
    assert header(dlq[-1], "dlq_error_type") == "ValueError"


async def test_outbox_events_are_published_after_the_batch_commits(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer
) -> None:
    inbox, outbox, _ = await _setup(raw_database)
    relay = OutboxRelay(raw_database, outbox, producer)

    async def handle(batch: Batch) -> None:
        for item in batch.events:
            data = item.event.data
            assert isinstance(data, PaymentReceived)
            if data.lease_id == "L-echo":
                continue
            echo = data.model_copy(update={"lease_id": "L-echo"})
            await batch.emit(new_event(echo, id=f"echo-{item.event.id}", source="t", time=NOW))

    runner = _member(
        broker, raw_database, producer, "g-outbox", inbox, handle, outbox=outbox, relay=relay
    )
    await producer.publish_many([_payment(i) for i in range(5)])  # type: ignore[misc]
    await runner.start()
    task = asyncio.create_task(runner.run())
    records = await read_topic(
        broker.bootstrap_servers,
        LEDGER_EVENTS,
        until=lambda rs: sum(r.key == b"L-echo" for r in rs) >= 5,
    )
    runner.stop()
    await task
    await runner.close()
    echoes = [header(r, "ce_id") for r in records if r.key == b"L-echo"]
    assert sorted(echoes) == [f"echo-evt-{i}" for i in range(5)]
    async with raw_database.sessionmaker() as s:
        assert (await s.execute(select(func.count()).select_from(outbox))).scalar_one() == 0


class _CountingRelay(OutboxRelay):
    """A relay that counts its flushes and can be told to fail the next one."""

    flushes = 0
    fail_next = False

    async def flush(self) -> int:
        self.flushes += 1
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("broker away")
        return await super().flush()


async def test_the_runner_flushes_the_outbox_after_a_batch_that_emitted_or_a_failed_flush(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer
) -> None:
    inbox, outbox, _ = await _setup(raw_database)
    relay = _CountingRelay(raw_database, outbox, producer)

    async def handle(batch: Batch) -> None:
        for item in batch.events:
            data = item.event.data
            assert isinstance(data, PaymentReceived)
            echo = new_event(
                data.model_copy(update={"lease_id": "L-echo"}),
                id=f"echo-{item.event.id}",
                source="t",
                time=NOW,
            )
            if data.amount_ore == 200:  # echoed through the batch
                await batch.emit(echo)
            elif data.amount_ore == 300:  # staged by the handler's own store
                await add_to_outbox(batch.session, outbox, [echo], clock=ManualClock(NOW))

    runner = _groupless_runner(
        "test", broker, raw_database, producer, inbox, handle, outbox=outbox, relay=relay
    )
    offset = 0

    async def process(*amounts: int) -> None:
        nonlocal offset
        events = [_payment(offset + i, amount=amount) for i, amount in enumerate(amounts)]
        await runner._process(_ledger_records(events, first_offset=offset))
        offset += len(amounts)

    async def pending() -> int:
        async with raw_database.sessionmaker() as s:
            return int((await s.execute(select(func.count()).select_from(outbox))).scalar_one())

    await process(100, 100)  # emits nothing: no flush
    assert relay.flushes == 0
    await process(100, 200)  # emits one: flushed, published
    assert (relay.flushes, await pending()) == (1, 0)
    relay.fail_next = True
    await process(200)  # emits, the flush fails: the row stays
    assert (relay.flushes, await pending()) == (2, 1)
    await process(100)  # emits nothing, but the last flush failed: flushed again
    assert (relay.flushes, await pending()) == (3, 0)
    await process(100)  # nothing emitted, nothing left over
    assert relay.flushes == 3
    await process(300)  # staged with add_to_outbox, not Batch.emit: flushed too
    assert (relay.flushes, await pending()) == (4, 0)
    records = await read_topic(
        broker.bootstrap_servers,
        LEDGER_EVENTS,
        until=lambda rs: sum(r.key == b"L-echo" for r in rs) >= 3,
    )
    await runner.close()
    echoes = sorted(header(r, "ce_id") for r in records if r.key == b"L-echo")
    assert echoes == ["echo-evt-3", "echo-evt-4", "echo-evt-7"]


@pytest.mark.postgres
@pytest.mark.slow
async def test_database_outage_commits_no_offset_and_resumes(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL (BOKVAR_TEST_DATABASE_URL) to take a server away")
    tables = await _setup(raw_database)
    dbname = make_url(str(raw_database.url)).database
    admin = Database(str(raw_database.url.set(database="postgres")), "public")
    runner = _runner(broker, raw_database, producer, tables)
    await runner.start()
    task = asyncio.create_task(runner.run())
    await producer.publish_many([_payment(i) for i in range(5)])  # type: ignore[misc]
    await wait_for(lambda: _all_applied(raw_database, tables[2], 5), what="first 5")
    # the offsets are committed after the database commit: wait for that too, or a batch's
    # offset commit still in flight would count as one made during the outage
    await wait_for(lambda: _offsets_committed(runner), what="offsets of the first 5")
    committed_before = runner.batches_committed
    async with admin.engine.connect() as conn:
        conn2 = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn2.execute(text(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false'))
        await conn2.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": dbname},
        )
    try:
        await producer.publish_many([_payment(i) for i in range(5, 10)])  # type: ignore[misc]
        from shared.metrics import CONSUMER_RETRIES

        retries = CONSUMER_RETRIES.labels("test")
        start = retries._value.get()
        await wait_for(lambda: _gt(retries._value.get(), start + 2), what="retries during outage")
        assert runner.batches_committed == committed_before  # nothing committed while down
    finally:
        async with admin.engine.connect() as conn:
            conn2 = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn2.execute(text(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true'))
        await admin.dispose()
    await wait_for(lambda: _all_applied(raw_database, tables[2], 10), what="all 10 after outage")
    runner.stop()
    await task
    await runner.close()
    assert await _count(raw_database, tables[2]) == (10, 10)
    assert runner.batches_committed > committed_before


async def _offsets_committed(runner: ConsumerRunner) -> bool:
    """Whether the runner has committed the offsets of every record it was handed (its
    position on each assigned partition; None: nothing committed there yet)."""
    consumer = runner._consumer
    partitions = list(consumer.assignment())
    return bool(partitions) and all(
        [(await consumer.committed(tp) or 0) == await consumer.position(tp) for tp in partitions]
    )


async def _gt(a: float, b: float) -> bool:
    return a > b


def test_partition_for_is_aiokafkas_default_partitioner() -> None:
    rng = random.Random(14)
    keys = [rng.randbytes(rng.randrange(0, 40)) for _ in range(20_000)]
    keys += [f"L-{i}".encode() for i in range(2_000)] + ["Åsa-lägenhet-7".encode()]
    default = DefaultPartitioner()
    for n in (1, 3, 6, 12):
        partitions = list(range(n))
        assert [partition_for(k, partitions) for k in keys] == [
            default(k, partitions, partitions) for k in keys
        ]
    assert all(murmur2(k) == aiokafka_murmur2(k) for k in keys)


def test_partition_for_keeps_a_bounded_cache_of_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_module, "_HASHES", {})
    monkeypatch.setattr(producer_module, "_HASHES_MAX", 100)
    default = DefaultPartitioner()
    keys = [f"L-{i}".encode() for i in range(250)] * 2
    assert [partition_for(k, [0, 1, 2]) for k in keys] == [
        default(k, [0, 1, 2], [0, 1, 2]) for k in keys
    ]
    assert len(producer_module._HASHES) <= 100


class _FailingProducer(Producer):
    """The real producer, but the `fail_at`-th `send_raw` fails before anything is sent;
    records what each send carried."""

    def __init__(self, bootstrap_servers: str, fail_at: int) -> None:
        super().__init__(bootstrap_servers)
        self.fail_at = fail_at
        self.sends: list[list[str]] = []

    async def send_raw(self, records: Any) -> None:
        records = list(records)
        if len(self.sends) + 1 == self.fail_at:
            self.sends.append([])
            raise ConnectionError("broker away")
        self.sends.append([dict(r[3])["ce_id"].decode() for r in records])
        await super().send_raw(records)


async def test_the_relay_publishes_batch_after_batch_in_order_and_stops_at_a_failed_send(
    broker: EmbeddedBroker, raw_database: Database
) -> None:
    # batches of 10: the next batch is read while one is at the broker, and sent only
    # once that one is acknowledged; the third send fails: the first two batches are
    # published and deleted, nothing after the failure goes out, the rest stays
    _, outbox, _ = await _setup(raw_database)
    producer = _FailingProducer(broker.bootstrap_servers, fail_at=3)
    await producer.start()
    try:
        relay = OutboxRelay(raw_database, outbox, producer, batch_size=10)
        ids = [f"evt-{i}" for i in range(35)]
        async with raw_database.sessionmaker.begin() as session:
            events = [_payment(i, lease=f"L-{i % 4}") for i in range(35)]
            await add_to_outbox(session, outbox, events, clock=ManualClock(NOW))  # type: ignore[arg-type]

        async def pending() -> list[str]:
            async with raw_database.sessionmaker() as s:
                query = select(outbox.c.event_id).order_by(outbox.c.id)
                return list((await s.execute(query)).scalars())

        with pytest.raises(ConnectionError):
            await relay.flush()
        assert producer.sends == [ids[:10], ids[10:20], []]
        assert await pending() == ids[20:]
        assert await relay.flush() == 15
        assert producer.sends[3:] == [ids[20:30], ids[30:]]
        assert await pending() == []
        records = await read_topic(broker.bootstrap_servers, LEDGER_EVENTS, count=35)
        by_lease: dict[bytes, list[str]] = {}
        for r in records:
            by_lease.setdefault(r.key, []).append(header(r, "ce_id") or "")
        # each lease's events in the order they were staged
        assert by_lease == {f"L-{k}".encode(): ids[k::4] for k in range(4)}
    finally:
        await producer.stop()


async def test_a_wake_during_a_relay_flush_is_not_lost() -> None:
    # rows staged while a flush runs (after its SELECT): their writer's wake() must make
    # the loop flush again at once, not after `interval` (an hour here)
    stop = asyncio.Event()

    class Relay(OutboxRelay):
        calls = 0

        async def flush(self) -> int:
            self.calls += 1
            if self.calls == 1:
                self.wake()  # a writer staged rows during this flush
            elif self.calls == 2:
                stop.set()
            return 0

    outbox = outbox_table(new_metadata())
    relay = Relay(None, outbox, None)  # type: ignore[arg-type]  # flush() uses neither
    await asyncio.wait_for(relay.run(stop, interval=3600), timeout=60)
    assert relay.calls == 3  # the first, the one the wake asked for, the final one


async def test_a_batch_counts_new_and_redelivered_events_and_hands_each_new_one_over_once(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer
) -> None:
    from shared.metrics import CONSUMER_EVENTS

    inbox, _, _ = await _setup(raw_database)
    handled: list[list[str]] = []

    async def handle(batch: Batch) -> None:
        handled.append([item.event.id for item in batch.events])

    runner = _groupless_runner("test-counts", broker, raw_database, producer, inbox, handle)

    def count(outcome: str) -> float:
        value: float = CONSUMER_EVENTS.labels("test-counts", LEDGER_EVENTS, outcome)._value.get()
        return value

    async def process(*ids: int) -> tuple[float, float]:
        before = count("applied"), count("duplicate")
        await runner._process(_ledger_records([_payment(i) for i in ids]))
        return count("applied") - before[0], count("duplicate") - before[1]

    assert await process(1, 2) == (2, 0)  # all new
    assert await process(3, 3, 1) == (2, 1)  # one new twice, one seen before
    await runner.close()
    assert handled == [["evt-1", "evt-2"], ["evt-3"]]


async def test_after_commit_callbacks_run_once_the_batch_has_committed_before_its_offsets(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer
) -> None:
    inbox, _, applied = await _setup(raw_database)
    order: list[str] = []

    async def fails() -> None:
        order.append("fails")
        raise RuntimeError("boom")

    async def reads() -> None:  # a session of its own: it sees committed rows only
        total, _ = await _count(raw_database, applied)
        order.append(f"reads {total}")

    async def handle(batch: Batch) -> None:
        for item in batch.events:
            await batch.session.execute(applied.insert().values(event_id=item.event.id))
        batch.after_commit(fails)
        batch.after_commit(reads)
        batch.after_commit(reads)  # asked twice: runs once

    runner = _groupless_runner("test-after-commit", broker, raw_database, producer, inbox, handle)

    async def offsets(records: object) -> None:
        order.append("offsets")

    runner._commit = offsets  # type: ignore[method-assign]
    await runner._process(_ledger_records([_payment(i) for i in range(3)]))
    await runner.close()
    # the failing callback neither undid the batch nor kept the next callback or the
    # offsets from their turn
    assert order == ["fails", "reads 3", "offsets"]
    assert await _count(raw_database, applied) == (3, 3)


def _decode_counter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the id of every event the runner decodes, in order."""
    decoded: list[str] = []

    def counting(value: Any, headers: Any) -> Any:
        event = decode(value, headers)
        decoded.append(event.id)
        return event

    monkeypatch.setattr("shared.bus.consumer.decode", counting)
    return decoded


async def _two_batches(
    db: Database, producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[Table, Table, Table], list[str]]:
    """The runner's tables and 14 payments published (two batches of 7 for `_runner`);
    the ids the runner decodes are recorded in the list returned, in order."""
    tables = await _setup(db)
    decoded = _decode_counter(monkeypatch)
    await producer.publish_many([_payment(i) for i in range(14)])  # type: ignore[misc]
    return tables, decoded


async def _second_batch_decoded(decoded: list[str]) -> None:
    await wait_for(lambda: _true(len(decoded) == 14), timeout=5, what="batch 2 decoded")


async def _run_until_applied(runner: ConsumerRunner, db: Database, applied: Table, n: int) -> None:
    """Start `runner`, run it until `n` rows are applied, stop it and leave the group."""
    await runner.start()
    task = asyncio.create_task(runner.run())
    await wait_for(lambda: _all_applied(db, applied, n), what=f"{n} applied")
    runner.stop()
    await task
    await runner.close()


async def test_the_next_batch_is_decoded_while_the_current_one_is_applied(
    broker: EmbeddedBroker,
    raw_database: Database,
    producer: Producer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # decoding (CPU) fills the runner's waits on the database: the first batch's handler
    # waits until the second batch is decoded, which never happens if decoding waits
    # for the batch before it to be applied
    tables, decoded = await _two_batches(raw_database, producer, monkeypatch)
    waited: list[int] = []

    async def second_batch_decoded() -> None:
        await _second_batch_decoded(decoded)
        waited.append(len(decoded))

    runner = _runner(broker, raw_database, producer, tables, first_batch=second_batch_decoded)
    await _run_until_applied(runner, raw_database, tables[2], 14)
    assert await _count(raw_database, tables[2]) == (14, 14)
    assert waited == [14]  # the first batch's handler saw the second batch decoded
    assert decoded == [f"evt-{i}" for i in range(14)]  # each once, in order


async def test_a_batch_fetched_ahead_when_the_runner_stops_is_delivered_again(
    broker: EmbeddedBroker,
    raw_database: Database,
    producer: Producer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the runner stops after its first batch, with the second fetched and decoded ahead:
    # that one is not committed, and the group's next member applies it
    tables, decoded = await _two_batches(raw_database, producer, monkeypatch)
    first: ConsumerRunner | None = None

    async def stop_with_the_second_batch_ahead() -> None:
        await _second_batch_decoded(decoded)
        assert first is not None
        first.stop()

    first = _runner(
        broker, raw_database, producer, tables, first_batch=stop_with_the_second_batch_ahead
    )
    await first.start()
    await asyncio.wait_for(first.run(), timeout=30)
    await first.close()
    assert await _count(raw_database, tables[2]) == (7, 7)
    second = _runner(broker, raw_database, producer, tables)
    await _run_until_applied(second, raw_database, tables[2], 14)
    assert await _count(raw_database, tables[2]) == (14, 14)


async def _true(value: bool) -> bool:
    return value


def _payment_in(partition: int, i: int, amount: int = 100) -> object:
    """A payment whose lease (its key) falls in `partition` of the 3 of LEDGER_EVENTS."""
    lease = next(
        f"L-{n}" for n in range(100) if partition_for(f"L-{n}".encode(), [0, 1, 2]) == partition
    )
    return _payment(i, lease=lease, amount=amount)


@pytest.mark.postgres
async def test_lanes_apply_their_partitions_at_once_each_in_order(
    broker: EmbeddedBroker, raw_database: Database, producer: Producer, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL (BOKVAR_TEST_DATABASE_URL): lanes are 1 on SQLite")
    # two lanes: partitions 0 and 2 in one loop, 1 in the other, a transaction of each
    # open at once (the first handler call waits until a second has begun: with one loop
    # the wait runs out); the poison event in partition 1 goes to the DLQ alone, and the
    # offsets of all three partitions are committed
    inbox, _, applied = await _setup(raw_database)
    calls: list[list[tuple[int, str]]] = []
    begun = asyncio.Event()

    async def handle(batch: Batch) -> None:
        calls.append([(item.partition, item.event.id) for item in batch.events])
        if len(calls) >= 2:
            begun.set()
        await asyncio.wait_for(begun.wait(), timeout=5)
        for item in batch.events:
            assert isinstance(item.event.data, PaymentReceived)
            if item.event.data.amount_ore == 666:
                raise ValueError("amount the handler cannot process")
            await batch.session.execute(applied.insert().values(event_id=item.event.id))

    events = [_payment_in(0, i) for i in (1, 2, 3)] + [_payment_in(2, i) for i in (6, 7)]
    events += [_payment_in(1, 4), _payment_in(1, 5, amount=666), _payment_in(1, 8)]
    await producer.publish_many(events)  # type: ignore[arg-type]
    runner = _member(broker, raw_database, producer, "g-lanes", inbox, handle, lanes=2)
    await runner.start()
    task = asyncio.create_task(runner.run())
    await wait_for(lambda: _all_applied(raw_database, applied, 7), what="7 good events")
    await wait_for(lambda: _offsets_committed(runner), what="offsets of 3 partitions")
    runner.stop()
    await task
    await runner.close()

    for call in calls:  # each transaction holds one lane's partitions
        assert {p for p, _ in call} <= {0, 2} or {p for p, _ in call} == {1}, call
    by_partition = {p: [i for c in calls for q, i in c if q == p] for p in (0, 1, 2)}
    assert by_partition[0][:3] == ["evt-1", "evt-2", "evt-3"]
    assert by_partition[2][:2] == ["evt-6", "evt-7"]
    assert by_partition[1][:3] == ["evt-4", "evt-5", "evt-8"]  # then one at a time
    async with raw_database.sessionmaker() as s:
        ids = set((await s.execute(select(applied.c.event_id))).scalars())
    assert ids == {"evt-1", "evt-2", "evt-3", "evt-4", "evt-6", "evt-7", "evt-8"}
    dlq = await read_topic(broker.bootstrap_servers, f"{LEDGER_EVENTS}.dlq", count=1)
    assert [header(r, "ce_id") for r in dlq] == ["evt-5"]
    assert header(dlq[0], "dlq_reason") == "amount the handler cannot process"


async def test_lanes_are_one_on_sqlite_and_never_fewer(tmp_path: Any) -> None:
    sqlite = Database(f"sqlite+aiosqlite:///{tmp_path}/lanes.db", "lanes")
    kwargs: dict[str, Any] = {
        "service": "t",
        "group_id": "g",
        "topics": [LEDGER_EVENTS],
        "bootstrap_servers": "127.0.0.1:9",
        "inbox": _tables()[0],
        "handler": None,
        "producer": None,
        "clock": ManualClock(NOW),
    }
    assert ConsumerRunner(database=sqlite, lanes=4, **kwargs)._lanes == 1
    with pytest.raises(ValueError, match="lanes must be at least 1"):
        ConsumerRunner(database=sqlite, lanes=0, **kwargs)
