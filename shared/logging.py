"""Structured logging with structlog: JSON in production, console on a TTY.

A last-line-of-defence processor masks fields whose names suggest personal data, so a
mistake in a log call does not leak a personnummer, phone number or name.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
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


# either pattern, to tell in one search whether a value needs the two substitutions
_EITHER_RE = re.compile(f"{PERSONNUMMER_RE.pattern}|{PHONE_RE.pattern}")


def _redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key, value in event_dict.items():
        if key in SENSITIVE_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(value, str) and _EITHER_RE.search(value):
            value = PERSONNUMMER_RE.sub("[redacted]", value)
            event_dict[key] = PHONE_RE.sub("[redacted]", value)
    return event_dict


def _dumps(event_dict: Any, **kw: Any) -> bytes:
    """orjson, or json for what orjson refuses (an integer over 64 bits): a log call
    never fails on its values."""
    try:
        return orjson.dumps(event_dict, option=orjson.OPT_NON_STR_KEYS, **kw)
    except TypeError:
        return json.dumps(event_dict, **kw).encode()


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
    stamp: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    shared: list[Any] = [structlog.contextvars.merge_contextvars, *stamp]
    # our own lines: tracebacks are rendered first, so the redaction also covers their
    # text, and the level and time are added after it (they hold nothing to redact)
    ours: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.format_exc_info,
        _redact,
        *stamp,
    ]
    binary = getattr(sys.stderr, "buffer", None)
    if use_json and binary is not None:  # orjson writes bytes, in half json.dumps' time
        ours.append(structlog.processors.JSONRenderer(serializer=_dumps))
        factory: Any = structlog.BytesLoggerFactory(file=binary)
    else:
        ours.append(renderer)
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    structlog.configure(
        processors=ours,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
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
