"""What SMS say: the recovery period's last day, one formatter, welcome only for new leases."""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from notifier import variables
from notifier.policy import DEFAULT_POLICY, TEMPLATES_DIR, PolicyError, load_policy
from notifier.workflow import Context, on_lease, on_signal
from shared.clock import ManualClock
from shared.db import Database
from shared.events import RiskScore, SignalRaised
from shared.events.signal import SignalType
from shared.format import format_date, format_sek
from tests.notifier.conftest import SenderFactory, add_lease, in_tx, make_lease
from tests.notifier.ingest_stub import IngestStub
from tests.notifier.twilio_server import FakeTwilio


def recovery_signal(signal: str = "recovery_period_reminder") -> SignalRaised:
    """A recovery-period signal as the rules service emits it (no due date; `end` in inputs)."""
    return SignalRaised(
        lease_id="L-1",
        org_id="org1",
        signal_id=f"L-1:term-1:{signal}_w1",
        signal=signal,  # type: ignore[arg-type]
        rule=f"recovery.{signal}_w1",
        policy_version="test-1",
        occurred_at=datetime(2026, 3, 3, 5, 0, tzinfo=UTC),
        arrears_ore=1_000_000,
        inputs={
            "termination_step_id": "term-1",
            "termination_date": "2026-02-20",
            "start": "2026-02-24",
            "end": "2026-03-17",
            "missing_notices": [],
            "legal_basis": "JB 12:44",
        },
        risk=RiskScore(score=70),
        reason_sv="Vecka 1 av återvinningsfristen.",
        reason_en="Week 1 of the recovery period.",
    )


async def test_recovery_reminder_sms_names_the_last_day_of_the_period(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory, twilio: FakeTwilio
) -> None:
    await add_lease(db, clock)
    await in_tx(db, clock, lambda s: on_signal(s, ctx, recovery_signal(), clock.now()))
    assert await make_sender().run_once() == 1
    body = twilio.messages[0]["body"]
    assert "betala 10 000 kr senast 2026-03-17." in body
    assert " - " not in body and "senast -" not in body


def test_every_signal_type_declares_its_template_variables() -> None:
    assert set(variables.SIGNAL_VARIABLES) == set(typing.get_args(SignalType))
    for signal in ("recovery_period_started", "recovery_period_reminder", "recovery_period_ending"):
        got = variables.signal_variables(recovery_signal(signal))
        assert got == {"amount": "10 000 kr", "last_day": "2026-03-17"}


def _copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    target.mkdir()
    for path in TEMPLATES_DIR.glob("*.yaml"):
        (target / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return target


def test_a_template_naming_a_variable_its_signal_does_not_carry_fails_the_policy(
    tmp_path: Path,
) -> None:
    templates = _copy_templates(tmp_path)
    en = templates / "en.yaml"
    # The bug this check prevents: the recovery reminder asked for the rent's due date,
    # which recovery signals do not carry, and the SMS said "pay ... by -".
    en.write_text(
        en.read_text(encoding="utf-8").replace("by {last_day}.", "by {due_date}."),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as err:
        load_policy(templates_dir=templates)
    message = str(err.value)
    assert "en.yaml" in message and "'recovery_reminder'" in message
    assert "recovery_period_reminder" in message and "due_date" in message


def test_an_org_override_is_checked_against_its_own_signal(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        DEFAULT_POLICY.read_text(encoding="utf-8")
        + "  sms-org:\n    signals:\n"
        + "      recovery_period_ending: {actions: [sms_tenant], template: late_rent}\n",
        encoding="utf-8",
    )
    with pytest.raises(
        PolicyError, match=r"late_rent.* used for recovery_period_ending names due_date, period"
    ):
        load_policy(policy)


@pytest.mark.parametrize("language", ["sv", "en"])
async def test_sms_amounts_and_dates_use_the_shared_formatter(
    language: str,
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
    ingest: IngestStub,
) -> None:
    ingest.add_lease(
        "L-1", tenants=[{"tenant_id": "T1", "phone": "+46701234567", "language": language}]
    )
    await add_lease(db, clock)
    sig = SignalRaised.model_validate(
        {
            **recovery_signal().model_dump(),
            "signal": "late_rent_detected",
            "signal_id": "L-1:2026-03:late_rent_detected",
            "period": "2026-03",
            "due_date": date(2026, 2, 27),
            "days_late": 4,
            "arrears_ore": 1_234_550,
        }
    )
    await in_tx(db, clock, lambda s: on_signal(s, ctx, sig, clock.now()))
    await make_sender().run_once()
    body = twilio.messages[0]["body"]
    # One formatter for reasons and SMS, in every language: "12 345,50 kr", ISO dates.
    assert format_sek(1_234_550) in body and format_date(date(2026, 2, 27)) in body
    assert "SEK" not in body


@pytest.mark.parametrize(
    ("started_days_ago", "welcomed"),
    [(365 * 6, False), (31, False), (30, True), (0, True), (-20, True)],
)
async def test_welcome_sms_only_for_leases_starting_within_the_window(
    started_days_ago: int,
    welcomed: bool,
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
) -> None:
    event_time = clock.now() - timedelta(days=2)  # the ERP registered it two days ago
    start = event_time.date() - timedelta(days=started_days_ago)
    lease = make_lease(start)
    await in_tx(db, clock, lambda s: on_lease(s, ctx, lease, clock.now(), event_time=event_time))
    await make_sender().run_once()
    assert (len(twilio.messages) == 1) is welcomed
    if welcomed:
        assert twilio.messages[0]["body"].startswith("Välkommen")


def test_welcome_window_is_policy_data(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    policy.write_text(
        text.replace("max_days_since_start: 30", "max_days_since_start: 90"), encoding="utf-8"
    )
    assert load_policy().welcome("org1").max_days_since_start == 30
    assert load_policy(policy).welcome("org1").max_days_since_start == 90
