"""docs/topics.md documents every topic of the catalog (shared/topics.py) and the DLQ headers."""

from __future__ import annotations

import re

import pytest

from shared.topics import CATALOG, DAY_MS, DLQ_RETENTION_MS, Topic
from tests.deploy.support import ROOT

DOC = ROOT / "docs" / "topics.md"
DLQ_HEADERS = (
    "dlq_reason",
    "dlq_error_type",
    "dlq_source_topic",
    "dlq_source_partition",
    "dlq_source_offset",
    "dlq_consumer_group",
    "dlq_failed_at",
)


def _row(name: str) -> list[str]:
    """Return the cells of the table row whose first cell is `name`."""
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] == f"`{name}`":
            return cells
    raise AssertionError(f"docs/topics.md has no table row for {name}")


@pytest.mark.parametrize("topic", CATALOG, ids=lambda t: t.name)
def test_topic_row_matches_the_catalog(topic: Topic) -> None:
    _name, key, producer, consumers, retention, *_rest = _row(topic.name)
    assert key == f"`{topic.key}`"
    assert producer == topic.producer
    assert {c.strip() for c in consumers.split(",")} == set(topic.consumers)
    assert retention == f"{topic.retention_ms // DAY_MS} days"


@pytest.mark.parametrize("topic", CATALOG, ids=lambda t: t.dlq)
def test_dlq_row_matches_the_catalog(topic: Topic) -> None:
    _name, source, _partitions, retention = _row(topic.dlq)
    assert source == f"`{topic.name}`"
    assert retention == f"{DLQ_RETENTION_MS // DAY_MS} days"


def test_every_dlq_header_is_documented() -> None:
    text = DOC.read_text()
    for header in DLQ_HEADERS:
        assert f"| `{header}` |" in text, header


def test_dlq_headers_are_the_ones_the_consumer_writes() -> None:
    source = (ROOT / "shared" / "bus" / "consumer.py").read_text()
    written = set(re.findall(r'"(dlq_[a-z_]+)"', source))
    assert written == set(DLQ_HEADERS)


def test_no_documented_topic_outside_the_catalog() -> None:
    names = {t.name for t in CATALOG} | {t.dlq for t in CATALOG}
    documented = set(re.findall(r"^\| `([a-z]+\.[a-z.]+)` \|", DOC.read_text(), re.MULTILINE))
    assert documented == names
