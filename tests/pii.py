"""The PII guard: no personnummer, phone number or registered name in any Kafka message.

Tests register the names (and personnummer, phones) they send; the shared `broker`
fixture scans every record of every topic (key, value, headers) when a test ends.
"""

from __future__ import annotations

import re
from datetime import date

from aiokafka import AIOKafkaConsumer, TopicPartition

from ingest.engine import InvalidPersonnummer, parse_personnummer

_NAMES: set[str] = set()
_LITERALS: set[str] = set()

# 10 or 12 digits, optional - or + before the last four, not inside a longer token
PNR_SHAPE = re.compile(r"(?<![0-9A-Za-z])(\d{6}|\d{8})[-+]?(\d{4})(?![0-9A-Za-z])")
E164 = re.compile(r"\+[1-9]\d{6,14}(?!\d)")


def register_name(name: str) -> str:
    """Remember a tenant name a test sends; it must never appear in a message."""
    _NAMES.add(name)
    return name


def register_literal(value: str) -> str:
    """Remember any other personal value (a personnummer, a phone as sent)."""
    _LITERALS.add(value)
    return value


def find_pii(data: bytes) -> list[str]:
    """Return descriptions of personal data found in `data` (empty when clean)."""
    text = data.decode("utf-8", "replace")
    found = [f"name {n!r}" for n in _NAMES if n in text]
    found += [f"value {v!r}" for v in _LITERALS if v in text]
    found += [f"phone {m.group()!r}" for m in E164.finditer(text)]
    for m in PNR_SHAPE.finditer(text):
        # OCR numbers share the shape; a real personnummer also has a date and a check digit
        try:
            parse_personnummer(m.group(), today=date(2100, 1, 1))
        except InvalidPersonnummer:
            continue
        found.append(f"personnummer {m.group()!r}")
    return found


async def scan_broker(bootstrap_servers: str) -> list[str]:
    """Read every record of every topic from the start; return the personal data found."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    findings: list[str] = []
    try:
        topics = await consumer.topics()
        partitions = [
            TopicPartition(t, p)
            for t in sorted(topics)
            for p in consumer.partitions_for_topic(t) or ()
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            if not batch:
                break
            for tp, records in batch.items():
                for r in records:
                    parts = [r.key or b"", r.value or b""] + [bytes(v) for _, v in r.headers]
                    for part in parts:
                        findings += [f"{tp.topic}@{r.offset}: {f}" for f in find_pii(part)]
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return findings
