"""Prometheus metrics of the notifier (served at /metrics). Labels never carry personal data."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SMS_OUTCOMES = Counter(
    "bokvar_notifier_sms_total",
    "SMS send outcomes: sent, retry, failed, cancelled, deferred, reconciled, unknown.",
    ["channel", "outcome"],
)
PROVIDER_SECONDS = Histogram(
    "bokvar_notifier_provider_seconds", "Time of one provider send call.", ["channel"]
)
TASKS_CREATED = Counter(
    "bokvar_notifier_tasks_created_total", "Staff tasks created, by kind.", ["kind"]
)
TASKS_ESCALATED = Counter(
    "bokvar_notifier_tasks_escalated_total", "Tasks escalated to a team lead."
)
