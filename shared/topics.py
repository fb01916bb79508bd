"""The topic catalog: every topic Bokvar uses, its key, partitions, retention and DLQ."""

from __future__ import annotations

from dataclasses import dataclass

LEASE_EVENTS = "lease.events"
LEDGER_EVENTS = "ledger.events"
COMPLAINT_EVENTS = "complaint.events"
RISK_SIGNALS = "risk.signals"
NOTIFICATION_EVENTS = "notification.events"
CASE_EVENTS = "case.events"

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic of the catalog."""

    name: str
    key: str
    producer: str
    consumers: tuple[str, ...]
    retention_ms: int
    description: str

    @property
    def dlq(self) -> str:
        """Return the name of the topic's dead-letter queue."""
        return f"{self.name}.dlq"


CATALOG: tuple[Topic, ...] = (
    Topic(
        LEASE_EVENTS,
        "lease_id",
        "ingest",
        ("rules", "notifier", "cases"),
        30 * DAY_MS,
        "Leases registered, updated, ended (tenant pseudonyms only).",
    ),
    Topic(
        LEDGER_EVENTS,
        "lease_id",
        "ingest",
        ("rules",),
        30 * DAY_MS,
        "Rent charged, payments received and reversed, credits issued.",
    ),
    Topic(
        COMPLAINT_EVENTS,
        "lease_id",
        "ingest",
        ("rules",),
        30 * DAY_MS,
        "Complaints received and resolved, warnings issued (no descriptions).",
    ),
    Topic(
        RISK_SIGNALS,
        "lease_id",
        "rules",
        ("notifier", "cases"),
        30 * DAY_MS,
        "Explained signals: late rent, legal milestones, complaint patterns, risk.",
    ),
    Topic(
        NOTIFICATION_EVENTS,
        "lease_id",
        "notifier",
        ("cases",),
        30 * DAY_MS,
        "SMS and staff-task state changes, for the case timeline.",
    ),
    Topic(
        CASE_EVENTS,
        "lease_id",
        "cases",
        ("rules",),
        30 * DAY_MS,
        "Cases, referrals, legal steps and payment plans.",
    ),
)

DLQ_RETENTION_MS = 90 * DAY_MS


def all_topic_names() -> list[str]:
    """Return every topic name including the DLQs."""
    names: list[str] = []
    for topic in CATALOG:
        names += [topic.name, topic.dlq]
    return names


def by_name(name: str) -> Topic:
    """Return the catalog entry for `name`."""
    for topic in CATALOG:
        if topic.name == name:
            return topic
    raise KeyError(name)
