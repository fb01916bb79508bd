"""Helpers for tests: read topics back, await conditions (with a deadline, never a bare sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import event

# The embedded broker delays a group join by about the rebalance timeout: keep it short.
FAST_GROUP = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 300, "rebalance_timeout_ms": 500}


async def wait_for(
    condition: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Await until `condition()` returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    count: int | None = None,
    until: Callable[[list[ConsumerRecord]], bool] | None = None,
    timeout: float = 15.0,
    idle_ms: int = 300,
) -> list[ConsumerRecord]:
    """Read `topic` from the beginning until `count` records (or `until`) or, with neither, idle."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or {0}
    consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
    await consumer.seek_to_beginning()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=idle_ms)
            for msgs in batch.values():
                records.extend(msgs)
            if count is not None and len(records) >= count:
                return records
            if until is not None and until(records):
                return records
            if count is None and until is None and not batch:
                return records
        if count is not None or until is not None:
            raise AssertionError(
                f"timed out reading {topic}: got {len(records)} records, wanted {count or until}"
            )
        return records
    finally:
        await consumer.stop()


def header(record: ConsumerRecord, name: str) -> str | None:
    """Return a record header as text."""
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


@contextlib.contextmanager
def recorded_statements(db: Any) -> Iterator[list[str]]:
    """The SQL statements `db` (a shared.db.Database) sends while the block runs."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
