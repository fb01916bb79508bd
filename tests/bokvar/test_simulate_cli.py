"""`bokvar simulate` as a newcomer meets it: defaults, errors, runs apart, a readable summary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bokvar.cli import build_parser
from bokvar.simulate.run import Observed, sms_lines
from shared.bus.broker import free_port
from shared.events import NotificationStatusChanged
from tests.bokvar.test_dev_up import Output, up_setup

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def test_default_urls_follow_the_port_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOKVAR_INGEST_PORT", "18125")
    monkeypatch.setenv("BOKVAR_CASES_PORT", "18126")
    args = build_parser().parse_args(["simulate"])
    assert args.ingest_url == "http://127.0.0.1:18125"
    assert args.cases_url == "http://127.0.0.1:18126"
    assert args.org is None  # a fresh organisation per run
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: http://127.0.0.1:18125)" in shown and "(default: 1000)" in shown


def test_unreachable_ingest_is_one_line_without_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOKVAR_")}
    port = free_port()  # nothing listens there
    env.update({"BOKVAR_INGEST_PORT": str(port), "BOKVAR_VAR_DIR": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-m", "bokvar.cli_main", "simulate", "--leases", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"bokvar simulate: no answer from http://127.0.0.1:{port}/healthz (ConnectError). Is "
        "the pipeline running? Start it with `python3 dev.py up`, or pass --ingest-url."
    ]


def _sms(nid: str, template: str, signal: str | None, *statuses: str) -> list[Any]:
    return [
        NotificationStatusChanged(
            lease_id="sim-L000001",
            org_id="sim",
            notification_id=nid,
            signal=signal,
            channel="log" if status == "sent" else "sms",
            status=status,  # type: ignore[arg-type]
            template=template,
            at=AT + timedelta(minutes=i),
        )
        for i, status in enumerate(statuses)
    ]


def test_summary_separates_welcome_from_rent_and_explains_deferred() -> None:
    seen = Observed()
    seen.sms["w1"] = _sms("w1", "welcome", None, "queued", "sent")
    seen.sms["w2"] = _sms("w2", "welcome", None, "deferred")
    seen.sms["r1"] = _sms("r1", "late_rent", "late_rent_detected", "deferred")
    seen.sms["s1"] = _sms("s1", "staff_alert", "personal_contact_needed", "queued", "sent")
    text = "\n".join(sms_lines(seen))
    assert "SMS: 4, sent through channel log (2)" in text  # the channel the README names
    assert "welcome SMS to new tenants: 2 (deferred 1, sent 1)" in text
    assert "about rent and arrears: 1 (deferred 1); by signal: late_rent_detected 1" in text
    assert "alerts to staff: 1 (sent 1)" in text
    assert "2 deferred: not failed but held until the quiet hours end" in text


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_runs_against_bokvar_up_do_not_mix(tmp_path: Path) -> None:
    args, env = up_setup(tmp_path)
    up = subprocess.Popen(
        [sys.executable, "-m", "bokvar.cli_main", "up", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Output(up)
    try:
        out.wait_for("Bokvar is up.", timeout=180)
        runs = [_simulate(env) for _ in range(2)]
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=120)
    orgs = [next(line for line in run if line.startswith("organisation ")) for run in runs]
    assert orgs[0] != orgs[1]
    for run in runs:
        text = "\n".join(run)
        assert "ingest: " in text and " 0 duplicates, 0 rejected" in text, text
        assert "welcome SMS to new tenants: " in text and "about rent and arrears: " in text
        assert "on-time payers flagged: 0" in text, text


def _simulate(env: dict[str, str]) -> list[str]:
    small = ["--leases", "40", "--months", "1", "--settle", "3", "--timeout", "150"]
    done = subprocess.run(
        [sys.executable, "-m", "bokvar.cli_main", "simulate", *small],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()
