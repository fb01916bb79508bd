"""Transactional outbox: events are written with the state change, then relayed to Kafka.

A service that emits events while it changes its tables (a signal from a sweep, a case
event from an API call) adds them to its `outbox` table in the same transaction. The
relay publishes pending rows with acks=all and deletes them. A crash between the two
republishes the same event id later, which consumers absorb through their inbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.producer import Producer
from shared.clock import Clock
from shared.db import Database
from shared.db.bulk import bulk_insert, in_values, quoted_table, unnest_upsert
from shared.events import CloudEvent, EventData, encode

log = structlog.get_logger(__name__)
# `AsyncSession.info` key: set once the session's transaction staged outbox rows
STAGED = "bokvar.outbox_staged"


async def add_to_outbox(
    session: AsyncSession, table: Table, events: Sequence[CloudEvent[EventData]], *, clock: Clock
) -> None:
    """Stage `events` for publishing when the session's transaction commits.

    Marks the session (`STAGED` in its `info`): a consumer runner flushes the relay after
    a batch whose transaction staged events, whether through `Batch.emit` or here.
    """
    if not events:
        return
    session.info[STAGED] = True
    now = clock.now()
    if session.get_bind().dialect.name == "sqlite":
        await bulk_insert(session, table, [outbox_row(ev, now) for ev in events])
        return
    # one unnest statement; the instant and the attempts bound once, not as arrays of
    # copies (asyncpg encodes an array element by element, ~1.5 µs per timestamp)
    columns: dict[str, list[Any]] = {c: [] for c in _VARYING}
    for ev in events:
        for name, value in zip(_VARYING, _record_columns(ev), strict=True):
            columns[name].append(value)
    params: dict[str, Any] = {f"u_{c}": v for c, v in columns.items()}
    params |= {"c_created_at": now, "c_attempts": 0}
    await session.execute(unnest_upsert(table, _VARYING, update=(), consts=_CONSTS), params)


_VARYING = ("event_id", "topic", "key", "value", "headers")
_CONSTS = ("created_at", "attempts")


def _record_columns(ev: CloudEvent[EventData]) -> tuple[str, str, str, bytes, bytes]:
    key, value, headers = encode(ev)
    return (
        ev.id,
        ev.topic,
        key.decode(),
        value,
        orjson.dumps([[k, v.decode()] for k, v in headers]),
    )


def outbox_row(ev: CloudEvent[EventData], now: datetime) -> dict[str, Any]:
    """Return the outbox row of `ev`: the Kafka record `encode` makes, ready to relay."""
    return dict(zip(_VARYING, _record_columns(ev), strict=True)) | {
        "created_at": now,
        "attempts": 0,
    }


class OutboxRelay:
    """Publishes a service's pending outbox rows in id order, then deletes them."""

    def __init__(
        self, database: Database, table: Table, producer: Producer, *, batch_size: int = 1000
    ) -> None:
        self._database = database
        self._table = table
        self._producer = producer
        self._batch_size = batch_size
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        name = quoted_table(table)
        columns = f"SELECT id, topic, key, value, headers FROM {name}"
        self._select_sql = f"{columns} ORDER BY id LIMIT $1"
        self._select_after_sql = f"{columns} WHERE id > $1 ORDER BY id LIMIT $2"
        self._delete_sql = f"DELETE FROM {name} WHERE id = ANY($1::BIGINT[])"

    def wake(self) -> None:
        """Ask the background loop to flush now."""
        self._wake.set()

    async def flush(self) -> int:
        """Publish every pending row; return how many were published."""
        total = 0
        async with self._lock:
            if not self._database.sqlite:
                return await self._flush_pg()
            while True:
                published = await self._flush_batch()
                total += published
                if published < self._batch_size:
                    return total

    async def _flush_batch(self) -> int:
        """SQLite: one batch, selected, sent and deleted in turn."""
        t = self._table
        async with self._database.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(t.c.id, t.c.topic, t.c.key, t.c.value, t.c.headers)
                    .order_by(t.c.id)
                    .limit(self._batch_size)
                )
            ).all()
        if not rows:
            return 0
        await self._producer.send_raw(_records(rows))
        async with self._database.sessionmaker.begin() as session:
            ids = [row.id for row in rows]
            await session.execute(
                delete(t).where(in_values(t.c.id, ids, sqlite=self._database.sqlite))
            )
        return len(rows)

    async def _flush_pg(self) -> int:
        """`flush` on PostgreSQL: the database work of one batch overlaps the sending of
        the next, on the driver connection of one checkout.

        While batch k is at the broker, the rows of batch k-1 (acknowledged) are deleted
        and those of batch k+1 selected (ids after batch k's: its rows are still there).
        Batch k+1 is sent only once every record of batch k is acknowledged, so a send
        that fails stops the flush before anything after it went out, as one batch at a
        time did; its rows stay and the next flush publishes them again (the consumers'
        inboxes absorb what had gone out). Each statement is its own implicit
        transaction: through a session each was wrapped in BEGIN and ROLLBACK or COMMIT,
        on a connection checked out (and pinged) for each, and the rows went through
        SQLAlchemy's result processing.
        """
        total = 0
        async with self._database.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            batch = await driver.fetch(self._select_sql, self._batch_size)
            acked: list[int] = []
            while batch:
                sending = asyncio.ensure_future(self._producer.send_raw(_records(batch)))
                try:
                    if acked:
                        await driver.execute(self._delete_sql, acked)
                        total += len(acked)
                    following = []
                    if len(batch) == self._batch_size:
                        following = await driver.fetch(
                            self._select_after_sql, batch[-1][0], self._batch_size
                        )
                finally:
                    # a statement that failed lets the send in flight finish (or fail)
                    sent = await asyncio.gather(sending, return_exceptions=True)
                if isinstance(sent[0], BaseException):
                    raise sent[0]
                acked = [row[0] for row in batch]
                batch = following
            if acked:
                await driver.execute(self._delete_sql, acked)
                total += len(acked)
        return total

    async def run(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        """Flush whenever woken or every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            # cleared before the flush, not after: a wake() while it runs (rows staged
            # after its SELECT) makes the wait below return at once, not after `interval`
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # broker or database down: keep rows, try again
                log.warning("outbox.flush_failed", error=type(exc).__name__, detail=str(exc))
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        try:
            await self.flush()
        except Exception as exc:
            log.warning("outbox.final_flush_failed", error=type(exc).__name__)


def _records(rows: Sequence[Any]) -> Iterator[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]:
    """The Kafka records of outbox rows (id, topic, key, value, headers)."""
    for _, topic, key, value, headers in rows:
        yield topic, key.encode(), value, [(k, v.encode()) for k, v in orjson.loads(headers)]
