"""Prometheus metrics shared by every service. Labels never carry personal data."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

CONSUMER_EVENTS = Counter(
    "bokvar_consumer_events_total",
    "Events seen by a consumer, by outcome (applied, duplicate, dlq).",
    ["service", "topic", "outcome"],
)
CONSUMER_BATCH_SECONDS = Histogram(
    "bokvar_consumer_batch_seconds", "Time to apply one consumer batch.", ["service"]
)
CONSUMER_RETRIES = Counter(
    "bokvar_consumer_transient_retries_total",
    "Batches retried because the database or broker was unavailable.",
    ["service"],
)
HTTP_REQUESTS = Counter(
    "bokvar_http_requests_total",
    "HTTP requests by route and status.",
    ["service", "route", "status"],
)


def render_latest() -> tuple[bytes, str]:
    """Return the exposition text and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
