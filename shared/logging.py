"""Structured logging with structlog: JSON in production, console on a TTY.

A last-line-of-defence processor masks fields whose names suggest personal data, so a
mistake in a log call does not leak a personnummer, phone number or name.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SENSITIVE_KEYS = frozenset(
    {
        "personnummer",
        "personal_number",
        "ssn",
        "phone",
        "phone_number",
        "to",
        "from_",
        "name",
        "first_name",
        "last_name",
        "description",
        "body",
        "text",
        "message_body",
    }
)
PERSONNUMMER_RE = re.compile(r"\b(19|20)?\d{6}[-+]?\d{4}\b")
PHONE_RE = re.compile(r"\+\d{8,15}\b")


def _redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in list(event_dict):
        if key in SENSITIVE_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(event_dict[key], str):
            value = PERSONNUMMER_RE.sub("[redacted]", event_dict[key])
            event_dict[key] = PHONE_RE.sub("[redacted]", value)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the stdlib root logger (uvicorn, httpx, ...) once per process.

    Library lines go through the same processors, so in JSON mode every line is JSON and
    the redaction applies to them too.

    A logger first used after this call assembles its bound logger (processors, level
    filter, output) once and keeps it: without that, every call rebuilt it, ~1.2 µs even
    for a line the level filters out. So call this once per process, before the services
    log (as `shared.serve.serve` does): such a logger keeps this configuration through a
    later `configure_logging` or `structlog.reset_defaults()`. (Tests that configure
    logging log through a fresh `structlog.get_logger()`.)
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    numeric = getattr(logging, level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # tracebacks are rendered first, so the redaction also covers their text
        processors=[*shared, structlog.processors.format_exc_info, _redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # Per-request lines of the HTTP client (a contact lookup per SMS) say nothing useful.
    for noisy in ("aiokafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
