"""The consumer runner: Kafka batch -> one database transaction -> offsets.

For each batch from `getmany` it:
1. decodes every record (while the batch before is applied); one that is not a valid
   CloudEvent goes to `<topic>.dlq`;
2. in ONE transaction, records the event ids in the inbox (ids already there are
   redeliveries and are skipped) and hands the new events to the handler;
3. if the handler fails for a reason that is the message's fault, re-runs the batch one
   event per transaction so only the poison event goes to the DLQ, with the reason in
   its headers;
4. on a transient failure (database or broker down) backs off and retries the same batch,
   committing nothing;
5. once the transaction has committed, runs what the handler asked to run then
   (`Batch.after_commit`), then commits the offsets, then flushes the outbox if the
   batch's transaction staged events (`add_to_outbox`) or the last flush failed; the
   relay's own loop publishes the rows other writers stage.

With `lanes` above 1, the member's partitions are shared out by partition number among
that many loops, each doing the above with batches of its own partitions: while one waits
for the database (its statements, its commit), another decodes and applies. One member of
the consumer group all the same (each member more costs every restart a longer
rebalance); each partition is still applied in order by one loop, and a lease's events,
keyed by lease, share a partition number in every topic.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from sqlalchemy import Table, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.errors import is_transient
from shared.bus.outbox import STAGED, OutboxRelay, add_to_outbox
from shared.bus.producer import Producer
from shared.clock import Clock
from shared.db import Database
from shared.db.bulk import quoted_table
from shared.db.errors import is_unique_violation
from shared.events import CloudEvent, EnvelopeError, EventData, decode
from shared.metrics import CONSUMER_BATCH_SECONDS, CONSUMER_EVENTS, CONSUMER_RETRIES

log = structlog.get_logger(__name__)
T = TypeVar("T")
# How long the broker may hold a fetch that finds no new records. The embedded broker
# (tansu) answers only when this runs out, even when records arrive meanwhile, so it bounds
# each hop's latency: at aiokafka's default of 500 ms, a payment waited ~200 ms on average
# at each of rules and the notifier before it was fetched. Kafka answers as soon as
# records arrive; there a lower value only costs a few more empty fetches while idle.
FETCH_MAX_WAIT_MS = 100


@dataclass(slots=True)
class Received:
    """A decoded event and where it came from (read-only: not frozen only because a frozen
    dataclass sets each field through object.__setattr__, 0.61 against 0.15 µs, and one is
    made per consumed record)."""

    event: CloudEvent[EventData]
    topic: str
    partition: int
    offset: int
    record: ConsumerRecord | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class Batch:
    """What a handler gets: the new events of one batch, and a way to emit events."""

    session: AsyncSession
    events: list[Received]
    _outbox: Table | None
    _clock: Clock
    emitted: list[CloudEvent[EventData]] = field(default_factory=list)
    _after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` (once, however often asked) when the batch's transaction has
        committed, before its offsets are: for work that must find this batch's rows
        committed (rules: wake the sweep, which reads them in transactions of its own).

        A failure is logged, not retried, and the batch stays applied: use it only for
        work that something else also does later (rules: the sweep).
        """
        if callback not in self._after_commit:
            self._after_commit.append(callback)

    async def committed(self) -> None:
        """Run the `after_commit` callbacks (the runner calls this after the commit)."""
        for callback in self._after_commit:
            try:
                await callback()
            except Exception as exc:
                log.warning("consumer.after_commit_failed", error=type(exc).__name__)

    async def emit(self, *events: CloudEvent[EventData]) -> None:
        """Stage events for the outbox; they are published after the transaction commits.

        The batch's events are written to the outbox in one statement when the handler
        returns, in the same transaction (see `write_outbox`).
        """
        if self._outbox is None:
            raise RuntimeError("this consumer has no outbox table")
        self.emitted.extend(events)

    async def write_outbox(self) -> None:
        """Write every event emitted during the batch to the outbox (one statement)."""
        if self._outbox is not None and self.emitted:
            await add_to_outbox(self.session, self._outbox, self.emitted, clock=self._clock)


Handler = Callable[[Batch], Awaitable[None]]


def _inbox_json(topics: dict[str, str]) -> str:
    """The ids of {event id: topic} as one JSON text {topic: [event id, ...]}."""
    by_topic: dict[str, list[str]] = {}
    for event_id, topic in topics.items():
        ids = by_topic.get(topic)
        if ids is None:
            by_topic[topic] = [event_id]
        else:
            ids.append(event_id)
    return orjson.dumps(by_topic).decode()


class _KnownIds(Exception):
    """The plain inbox insert met an id already there: claim the batch the other way."""


@dataclass(slots=True)
class Fetched:
    """A batch from `getmany`, decoded: the events, and the records that are not events
    (with the error type and reason they go to the DLQ with)."""

    records: dict[TopicPartition, list[ConsumerRecord]]
    received: list[Received]
    dead: list[tuple[ConsumerRecord, str, str]]


def _retrieved(task: asyncio.Task[Fetched]) -> None:
    if not task.cancelled():
        task.exception()  # looked at, so asyncio does not log it as never retrieved


def _decoded(records: dict[TopicPartition, list[ConsumerRecord]]) -> Fetched:
    received: list[Received] = []
    dead: list[tuple[ConsumerRecord, str, str]] = []
    for msgs in records.values():
        for record in msgs:
            try:
                event = decode(record.value, record.headers)
            except EnvelopeError as exc:
                dead.append((record, "EnvelopeError", str(exc)))
                continue
            received.append(Received(event, record.topic, record.partition, record.offset, record))
    return Fetched(records, received, dead)


class SimulatedCrash(BaseException):
    """Raised by test hooks to stop a runner the way a killed process would."""


@dataclass(slots=True)
class Hooks:
    """Fault-injection points for tests."""

    after_db_commit: Callable[[], Awaitable[None]] | None = None


class ConsumerRunner:
    """Runs one consumer group member until stopped."""

    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        topics: Sequence[str],
        bootstrap_servers: str,
        database: Database,
        inbox: Table,
        handler: Handler,
        producer: Producer,
        clock: Clock,
        outbox: Table | None = None,
        relay: OutboxRelay | None = None,
        batch_size: int = 500,
        poll_ms: int = 200,
        hooks: Hooks | None = None,
        max_backoff: float = 5.0,
        session_timeout_ms: int = 6000,
        heartbeat_interval_ms: int = 1000,
        rebalance_timeout_ms: int = 3000,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
        lanes: int = 1,
    ) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self.service = service
        self._topics = list(topics)
        self._database = database
        self._inbox = inbox
        self._outbox = outbox
        self._relay = relay
        self._handler = handler
        self._producer = producer
        self._clock = clock
        self._batch_size = batch_size
        self._poll_ms = poll_ms
        self._hooks = hooks or Hooks()
        self._max_backoff = max_backoff
        # SQLite takes one writer at a time: loops applying at once would only wait for
        # each other's lock
        self._lanes = 1 if database.sqlite else lanes
        self._stop = asyncio.Event()
        self._group_id = group_id
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=f"{service}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=600_000,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            rebalance_timeout_ms=rebalance_timeout_ms,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self.batches_committed = 0
        self.claim_retries = 0  # batches whose plain inbox insert met an id already there
        # the outbox may hold rows this runner should publish after its batch while
        # `_staged > _flushed`: counted up after a batch that staged rows has committed; a
        # flush that succeeds covers what was counted before it began (lanes flush at the
        # same time: a flag a flush clears could forget rows committed while it ran)
        self._staged = 0
        self._flushed = 0
        self._plain_claim = True
        # PostgreSQL: the ids travel as one JSON text, {topic: [id, ...]} (`_inbox_json`), and
        # the instant as one value; asyncpg encodes arrays element by element (~1.5 us of
        # CPU per id more), and a list of {"event_id", "topic"} objects (json_to_recordset)
        # cost the client ~0.25 us an id more to write
        insert = (
            f"INSERT INTO {quoted_table(inbox)} (event_id, topic, received_at)"
            " SELECT e.event_id, t.key, CAST(:now AS TIMESTAMPTZ)"
            " FROM json_each(CAST(:rows AS JSON)) AS t,"
            " json_array_elements_text(t.value) AS e(event_id)"
        )
        self._claim_sql = text(f"{insert} ON CONFLICT DO NOTHING RETURNING event_id")
        # A plain INSERT of ids that are all new (nearly every batch) costs the server less
        # than ON CONFLICT's speculative insertion (2.0-3.1 against 3.6-6.0 us per id) and
        # returns nothing; a batch with an id already there fails at it and is claimed
        # again with the statement above, in a new transaction (`_apply_in_tx`).
        self._plain_claim_sql = text(insert)

    async def start(self) -> None:
        """Join the consumer group."""
        await self._consumer.start()

    def stop(self) -> None:
        """Ask the loop to finish the current batch and return."""
        self._stop.set()

    async def close(self) -> None:
        """Leave the group. Offsets not committed stay uncommitted."""
        await self._consumer.stop()

    async def run(self) -> None:
        """Consume until `stop()` is called (in `lanes` loops at once, see the module).

        The next batch is fetched and decoded while the current one is applied: the
        decoding (CPU) runs while the process waits for the database (the handler's
        statements, the commit), instead of after it. A loop's batches are still applied
        and committed one after the other, in order. A batch fetched ahead when the runner
        stops is dropped uncommitted and delivered again. An error that stops one loop
        cancels the others.
        """
        log.info("consumer.started", service=self.service, topics=self._topics)
        if self._lanes == 1:
            await self._loop(None)
        else:
            try:
                async with asyncio.TaskGroup() as group:
                    for lane in range(self._lanes):
                        group.create_task(self._loop(lane))
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None  # as one loop would have raised it
        log.info("consumer.stopped", service=self.service)

    async def _loop(self, lane: int | None) -> None:
        ahead: asyncio.Task[Fetched] | None = None
        try:
            while not self._stop.is_set():
                fetched = await (ahead or self._fetch(lane))
                ahead = None
                if fetched.records:
                    ahead = asyncio.ensure_future(self._fetch(lane))
                    await self._process(fetched.records, fetched)
        finally:
            if ahead is not None:
                # dropped, uncommitted, and not awaited: what stopped the runner (a stop,
                # an error, a cancellation) goes on as it was; a fetch error there would
                # come again on the next fetch
                ahead.cancel()
                ahead.add_done_callback(_retrieved)

    async def _fetch(self, lane: int | None = None) -> Fetched:
        """The next batch: of every assigned partition, or of the lane's (`lane`)."""
        if lane is None:
            records = await self._consumer.getmany(
                timeout_ms=self._poll_ms, max_records=self._batch_size
            )
        else:
            mine = [tp for tp in self._consumer.assignment() if tp.partition % self._lanes == lane]
            if not mine:  # none (yet): getmany() with no partition named would fetch them all
                await asyncio.sleep(self._poll_ms / 1000)
                return Fetched({}, [], [])
            records = await self._consumer.getmany(
                *mine, timeout_ms=self._poll_ms, max_records=self._batch_size
            )
        return _decoded(records)

    async def _process(
        self,
        records: dict[TopicPartition, list[ConsumerRecord]],
        fetched: Fetched | None = None,
    ) -> None:
        with CONSUMER_BATCH_SECONDS.labels(self.service).time():
            fetched = fetched or _decoded(records)
            received, dead = fetched.received, list(fetched.dead)
            failed = await self._retrying(lambda: self._apply(received))
            dead += failed
            if dead:
                await self._retrying(lambda: self._send_dlq(dead))
            if self._hooks.after_db_commit is not None:
                await self._hooks.after_db_commit()
            await self._commit(records)
        # Only after a batch whose transaction staged events (`add_to_outbox`, through
        # `Batch.emit` or a store) or a flush that failed: the relay's own loop publishes
        # the rows other writers stage (they wake it), and a flush that finds nothing
        # still cost a session, a SELECT and a rollback (~1 ms of CPU) per batch.
        if self._relay is not None and self._staged > self._flushed:
            counted = self._staged
            try:
                await self._relay.flush()
                self._flushed = max(self._flushed, counted)
            except Exception as exc:  # `_flushed` stays behind: the next batch flushes again
                log.warning("consumer.outbox_flush_failed", error=type(exc).__name__)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        delay = 0.1
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not is_transient(exc) or self._stop.is_set():
                    raise
                CONSUMER_RETRIES.labels(self.service).inc()
                log.warning(
                    "consumer.transient_failure",
                    service=self.service,
                    error=type(exc).__name__,
                    retry_in=round(delay, 2),
                )
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self._max_backoff)

    async def _apply(self, received: list[Received]) -> list[tuple[ConsumerRecord, str, str]]:
        """Apply the batch in one transaction; isolate poison events if it fails."""
        if not received:
            return []
        try:
            await self._apply_in_tx(received)
            return []
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning(
                "consumer.batch_failed_isolating",
                service=self.service,
                error=type(exc).__name__,
                size=len(received),
            )
        dead: list[tuple[ConsumerRecord, str, str]] = []
        for item in received:
            try:
                await self._apply_in_tx([item])
            except Exception as exc:
                if is_transient(exc):
                    raise
                assert item.record is not None
                dead.append((item.record, type(exc).__name__, str(exc)[:500]))
        return dead

    async def _apply_in_tx(self, received: list[Received]) -> None:
        """Claim and apply `received` in one transaction.

        On PostgreSQL the inbox is first claimed with a plain INSERT (`_plain_claim_sql`):
        when an id is already there (a redelivery) it fails before the handler ran, the
        transaction is rolled back, and the batch is applied again with the claim that
        skips known ids; the next batch does the same (redeliveries come in runs), then
        the plain insert is tried again.
        """
        plain = self._plain_claim and not self._database.sqlite
        self._plain_claim = True
        if plain:
            try:
                await self._apply_claimed(received, plain=True)
                return
            except _KnownIds:
                self.claim_retries += 1
                self._plain_claim = False
        await self._apply_claimed(received, plain=False)

    async def _apply_claimed(self, received: list[Received], *, plain: bool) -> None:
        staged = False
        batch: Batch | None = None
        async with self._database.sessionmaker() as session, session.begin():
            new_ids = await (
                self._claim_new(session, received) if plain else self._claim(session, received)
            )
            counts: Counter[tuple[str, str]] = Counter()
            if len(new_ids) == len(received):  # every id new and none twice: nearly every batch
                unique = list(received)
                for topic, n in Counter(r.topic for r in received).items():
                    counts[topic, "applied"] = n
            else:
                seen: set[str] = set()
                unique = []
                for r in received:  # one pass: new ids once each (the same id twice in a batch)
                    event_id = r.event.id
                    if event_id in new_ids:
                        counts[r.topic, "applied"] += 1
                        if event_id not in seen:
                            seen.add(event_id)
                            unique.append(r)
                    else:
                        counts[r.topic, "duplicate"] += 1
            if unique:
                batch = Batch(session, unique, self._outbox, self._clock)
                await self._handler(batch)
                await batch.write_outbox()
                staged = bool(session.info.get(STAGED))  # `add_to_outbox`: emitted or staged
        if staged:  # counted once committed, so a flush that began after sees the rows
            self._staged += 1
        if batch is not None:
            await batch.committed()
        for (topic, outcome), n in counts.items():  # one metric update per label, not per event
            CONSUMER_EVENTS.labels(self.service, topic, outcome).inc(n)

    async def _claim_new(self, session: AsyncSession, received: list[Received]) -> set[str]:
        """PostgreSQL: insert the ids, every one new, or raise `_KnownIds` (nothing applied)."""
        topics = {r.event.id: r.topic for r in received}
        try:
            await session.execute(
                self._plain_claim_sql, {"rows": _inbox_json(topics), "now": self._clock.now()}
            )
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise _KnownIds from exc
            raise
        return set(topics)

    async def _claim(self, session: AsyncSession, received: list[Received]) -> set[str]:
        """Insert the event ids into the inbox; return the ids that were new."""
        now = self._clock.now()
        topics = {r.event.id: r.topic for r in received}
        if not self._database.sqlite:  # one statement, the ids as one JSON text parameter
            params = {"rows": _inbox_json(topics), "now": now}
            return set((await session.execute(self._claim_sql, params)).scalars().all())
        rows_ = [{"event_id": i, "topic": t, "received_at": now} for i, t in topics.items()]
        insert = sqlite_insert(self._inbox).on_conflict_do_nothing()
        result = await session.execute(insert.returning(self._inbox.c.event_id), rows_)
        return set(result.scalars().all())

    async def _send_dlq(self, dead: list[tuple[ConsumerRecord, str, str]]) -> None:
        now = self._clock.now().isoformat()
        out = []
        for record, error_type, reason in dead:
            headers = [
                *(record.headers or ()),
                ("dlq_reason", reason.encode()),
                ("dlq_error_type", error_type.encode()),
                ("dlq_source_topic", record.topic.encode()),
                ("dlq_source_partition", str(record.partition).encode()),
                ("dlq_source_offset", str(record.offset).encode()),
                ("dlq_consumer_group", self._group_id.encode()),
                ("dlq_failed_at", now.encode()),
            ]
            out.append((f"{record.topic}.dlq", record.key, record.value, headers))
            CONSUMER_EVENTS.labels(self.service, record.topic, "dlq").inc()
            log.error(
                "consumer.dead_lettered",
                service=self.service,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error=error_type,
                reason=reason,
            )
        await self._producer.send_raw(out)

    async def _commit(self, records: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in records.items() if msgs}
        try:
            await self._retrying(lambda: self._consumer.commit(offsets))
            self.batches_committed += 1
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: another member re-reads these; the inbox absorbs them.
            log.warning(
                "consumer.commit_failed_rebalance", service=self.service, error=type(exc).__name__
            )
