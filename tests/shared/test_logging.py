"""Logs: JSON lines in production, for our events and library lines alike, without personal data."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from shared.logging import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_json_mode_renders_our_and_library_lines_as_json_without_personal_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    structlog.get_logger("t").info("ingest.lease_registered", lease_id="L-1", phone="+46701234567")
    # (uvicorn's own loggers are left unconfigured by shared.serve and propagate here too;
    # a test server elsewhere in the suite may have configured them, so a neutral name)
    logging.getLogger("some.library").info("request from %s", "+46709876543")
    logging.getLogger("httpx").warning("tenant 19811218-9876 looked up")  # info is off
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[0]["event"] == "ingest.lease_registered"
    assert lines[0]["lease_id"] == "L-1" and lines[0]["phone"] == "[redacted]"
    assert lines[1]["logger"] == "some.library" and lines[1]["level"] == "info"
    assert lines[2]["logger"] == "httpx"
    text = json.dumps(lines)
    assert "+46701234567" not in text and "+46709876543" not in text
    assert "19811218-9876" not in text


@pytest.mark.usefixtures("restore_logging")
def test_a_logger_is_assembled_once_and_keeps_filtering_and_redacting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("warning", "json")
    log = structlog.get_logger("cached")
    for n in range(3):
        log.info("filtered.out", n=n)
        log.warning("kept", n=n, phone="+46701234567")
    assert structlog.get_config()["cache_logger_on_first_use"] is True
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [(line["event"], line["n"], line["phone"]) for line in lines] == [
        ("kept", n, "[redacted]") for n in range(3)
    ]
