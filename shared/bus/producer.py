"""Publishing: a producer that returns only after the broker acknowledged (acks=all)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.events import CloudEvent, EventData, encode

_M = 0x5BD1E995
_WORD = struct.Struct("<I")


def murmur2(data: bytes) -> int:
    """Return Kafka's murmur2 hash of `data`, equal to aiokafka's (about twice as fast).

    aiokafka's pure-Python version cost ~3 µs per record in ingest's publish.
    """
    length = len(data)
    h = 0x9747B28C ^ length
    n4 = length & ~3
    for (k,) in _WORD.iter_unpack(data[:n4]):
        k = (k * _M) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[n4 + 2] << 16
        if extra >= 2:
            h ^= data[n4 + 1] << 8
        h = ((h ^ data[n4]) * _M) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


# key -> murmur2(key) & 0x7FFFFFFF: a batch repeats its leases' keys (ingest's bench: 5,000
# events over 2,000 leases), and murmur2 costs ~1.1 µs a key against ~0.06 for the lookup.
# Emptied when full, so it stays bounded (~10 MB) whatever the keys.
_HASHES: dict[bytes, int] = {}
_HASHES_MAX = 65_536


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """Return the partition aiokafka's DefaultPartitioner gives a (non-null) key."""
    hashed = _HASHES.get(key)
    if hashed is None:
        if len(_HASHES) >= _HASHES_MAX:
            _HASHES.clear()
        hashed = _HASHES[key] = murmur2(key) & 0x7FFFFFFF
    return partitions[hashed % len(partitions)]


# Record batches ready to send: (topic, partition, aiokafka BatchBuilder), in sending order.
Prepared = list[tuple[str, int, Any]]
# events `Producer.prepare` encodes between two chances for other tasks to run (~0.2 ms):
# ingest's write waits for the next one to read each answer of the database and go on
# (500: 23.8 µs of wall time per event in bench/ingest.py's batches, in process; 50-200:
# 20.8-22.5; the CPU is the same)
PREPARE_SLICE = 100


class Producer:
    """aiokafka producer, acks=all. No idempotent producer: the embedded broker lacks it."""

    def __init__(self, bootstrap_servers: str, *, client_id: str = "bokvar") -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=False,
            linger_ms=2,
            max_batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=15000,
        )

    async def start(self) -> None:
        """Connect to the broker."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def partitions(self, topic: str) -> int:
        """Return how many partitions `topic` has (from the broker's metadata)."""
        return len(await self._producer.partitions_for(topic))

    async def publish(self, event: CloudEvent[EventData]) -> None:
        """Publish one event and wait for the broker's acknowledgement."""
        await self.publish_many([event])

    async def publish_many(self, events: Sequence[CloudEvent[EventData]]) -> None:
        """Publish events (in order per key) and wait until the broker acknowledged all.

        Events are grouped per partition and handed to aiokafka as whole record batches:
        per-message `send` costs a future, a partition lookup and an accumulator append
        each, and batching roughly halves the produce cost (measured in bench/ingest.py).
        Partitions are chosen as aiokafka's default partitioner does (murmur2 of the key),
        so one lease's events stay on one partition and in order.
        """
        await self.send_prepared(await self.prepare(events))

    async def prepare(self, events: Sequence[CloudEvent[EventData]]) -> Prepared:
        """Encode `events` into record batches per partition, as `publish_many` sends
        them, and send nothing (`send_prepared` does).

        Every `PREPARE_SLICE` events it lets other tasks run: ingest encodes a batch while
        its database write runs, and sends only once the write succeeded.
        """
        batches = _Batches(self._producer)
        partitions: dict[str, list[int]] = {}
        for n, ev in enumerate(events, start=1):
            key, value, headers = encode(ev)
            topic = ev.data.topic
            of_topic = partitions.get(topic)
            if of_topic is None:
                of_topic = partitions[topic] = sorted(await self._producer.partitions_for(topic))
            batches.add(topic, partition_for(key, of_topic), key, value, headers)
            if not n % PREPARE_SLICE:
                await asyncio.sleep(0)
        return batches.close()

    async def send_prepared(self, prepared: Prepared) -> None:
        """Send what `prepare` returned, in order, and wait until the broker acknowledged
        all of it."""
        await asyncio.gather(*await self._send_batches(prepared))

    async def _send_batches(self, prepared: Prepared) -> list[asyncio.Future[Any]]:
        """Hand the record batches to aiokafka in order; return the futures of their acks."""
        return [
            await self._producer.send_batch(batch, topic, partition=partition)
            for topic, partition, batch in prepared
        ]

    async def send_raw(
        self,
        records: Iterable[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]],
    ) -> None:
        """Publish raw (topic, key, value, headers) records and wait for every ack.

        Keyed records go as whole record batches per partition (see `publish_many`; the
        outbox relay sends a batch's events this way: ~10 -> ~4 µs of CPU per record);
        a record without a key goes through aiokafka's partitioner.
        """
        batches = _Batches(self._producer)
        partitions: dict[str, list[int]] = {}
        futures: list[asyncio.Future[Any]] = []
        for topic, key, value, headers in records:
            if key is None:
                futures.append(
                    await self._producer.send(topic, value=value, key=key, headers=headers)
                )
                continue
            if topic not in partitions:
                partitions[topic] = sorted(await self._producer.partitions_for(topic))
            batches.add(topic, partition_for(key, partitions[topic]), key, value, headers)
        futures += await self._send_batches(batches.close())
        await asyncio.gather(*futures)

    async def reachable(self) -> bool:
        """Tell whether the broker answers a metadata request."""
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=3)
        except Exception:
            return False
        return True


class _Batches:
    """aiokafka record batches per (topic, partition), in sending order: a full batch is
    closed and the partition's next batch follows it."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._full: Prepared = []

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Append one record to its partition's open batch."""
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[topic, partition] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            self._full.append((topic, partition, batch))
            batch = self._open[topic, partition] = self._producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=headers)

    def close(self) -> Prepared:
        """Return every batch, the full ones first, each partition's in order."""
        return self._full + [(topic, p, batch) for (topic, p), batch in self._open.items()]
