"""Watch topics from the beginning and await events (no sleeps: each wait reads the broker)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import CloudEvent, EnvelopeError, EventData, decode


class Watcher:
    """Reads topics from the beginning and keeps every decoded event."""

    def __init__(self, bootstrap_servers: str, topics: Sequence[str]) -> None:
        self._servers = bootstrap_servers
        self._topics = list(topics)
        self._consumer: AIOKafkaConsumer | None = None
        self.events: list[CloudEvent[EventData]] = []

    async def __aenter__(self) -> Watcher:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._servers, enable_auto_commit=False)
        await self._consumer.start()
        tps = [
            TopicPartition(t, p)
            for t in self._topics
            for p in (self._consumer.partitions_for_topic(t) or {0})
        ]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning()
        return self

    async def __aexit__(self, *_: Any) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> None:
        """Read what has arrived."""
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        for msgs in batch.values():
            for record in msgs:
                with contextlib.suppress(EnvelopeError):
                    self.events.append(decode(record.value, record.headers))

    def matching(self, predicate: Callable[[Any], bool]) -> list[Any]:
        """Return the bodies of the events seen so far that match."""
        return [e.data for e in self.events if predicate(e.data)]

    async def wait(
        self,
        predicate: Callable[[Any], bool],
        *,
        timeout: float = 60.0,
        what: str = "event",
        count: int = 1,
    ) -> list[Any]:
        """Await until `count` events match `predicate`; return the matches."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = "\n".join(_describe(e.data) for e in self.events[-30:])
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; "
                    f"saw {len(self.events)} events, the last:\n{seen}"
                )
            await self.poll()


def _describe(data: EventData) -> str:
    fields = ("signal", "status", "kind", "channel", "detail", "case_id", "at", "occurred_at")
    shown = {f: getattr(data, f) for f in fields if getattr(data, f, None) is not None}
    return f"  {type(data).__name__} {data.lease_id} {shown}"
