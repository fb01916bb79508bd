"""Unit tests of the pure cases engine: transitions, referral gates, consent, access, audit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.cases import engine
from services.cases.audit import GENESIS, AuditRow, digest, first_broken, row_hash
from services.cases.engine import ConsentView, Principal, RuleViolation, StepView

NOW = datetime(2026, 4, 20, 10, 0, tzinfo=UTC)
TODAY = date(2026, 4, 20)
SS_CONSENT = ConsentView(("social_services",), date(2026, 3, 1), None, None)
ALL_STEPS = [
    StepView("termination_sent", date(2026, 3, 10)),
    StepView("recovery_notice_served", date(2026, 3, 12)),
    StepView("social_services_notice_sent", date(2026, 3, 16)),
]


def refer(recipient: str, notice: str | None = None, **kw: object) -> engine.ReferralDecision:
    args: dict[str, object] = {
        "amount_owed_ore": None,
        "consents": [],
        "steps": [],
        "arrears_cleared_on": None,
        "today": TODAY,
        "now": NOW,
    }
    args.update(kw)
    return engine.check_referral(recipient, notice, **args)  # type: ignore[arg-type]


# --- status transitions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"),
    [("new", "in_contact"), ("in_contact", "payment_plan"), ("payment_plan", "referred")],
)
def test_allowed_transitions(current: str, target: str) -> None:
    engine.check_transition(current, target, resolution=None)


@pytest.mark.parametrize("closed", ["resolved", "evicted"])
def test_closed_case_cannot_change(closed: str) -> None:
    with pytest.raises(RuleViolation, match="closed"):
        engine.check_transition(closed, "in_contact", resolution=None)


def test_resolved_needs_resolution_and_only_resolved_has_one() -> None:
    with pytest.raises(RuleViolation, match="resolution"):
        engine.check_transition("new", "resolved", resolution=None)
    with pytest.raises(RuleViolation, match="only a resolved"):
        engine.check_transition("new", "in_contact", resolution="paid")
    engine.check_transition("new", "resolved", resolution="paid")


def test_same_status_is_not_a_transition() -> None:
    with pytest.raises(RuleViolation, match="cannot move"):
        engine.check_transition("new", "new", resolution=None)


def test_evicted_needs_the_executed_step() -> None:
    with pytest.raises(RuleViolation, match="eviction_executed"):
        engine.check_transition("referred", "evicted", resolution=None, steps=["termination_sent"])
    engine.check_transition("referred", "evicted", resolution=None, steps=["eviction_executed"])


@pytest.mark.parametrize("reason", ["", "   ", "two\nlines"])
def test_reason_must_be_one_line(reason: str) -> None:
    with pytest.raises(RuleViolation):
        engine.check_reason(reason)


def test_signal_priority_and_opening() -> None:
    assert engine.opens_case("forfeiture_possible")
    assert engine.opens_case("plan_breached")
    assert not engine.opens_case("late_rent_detected")
    assert engine.signal_priority("complaint_pattern", 10) == "normal"
    assert engine.signal_priority("complaint_pattern", 85) == "urgent"
    assert engine.raise_priority("high", "normal") == "high"
    assert engine.raise_priority("normal", "urgent") == "urgent"


# --- referral gate: social services ---------------------------------------------------------


def test_termination_notice_is_always_allowed_with_the_amount() -> None:
    decision = refer("social_services", "termination_notice", amount_owed_ore=1_250_00)
    assert decision.statutory and "12:44" in decision.legal_basis


def test_termination_notice_must_state_the_amount_owed() -> None:
    with pytest.raises(RuleViolation, match="amount owed") as err:
        refer("social_services", "termination_notice")
    assert err.value.status == 422


def test_disturbance_warning_is_always_allowed() -> None:
    decision = refer("social_services", "disturbance_warning")
    assert decision.statutory and "12:25" in decision.legal_basis


def test_notices_only_go_to_social_services() -> None:
    with pytest.raises(RuleViolation, match="social_services"):
        refer("budget_debt_advice", "disturbance_warning")


def test_other_referral_to_social_services_needs_consent() -> None:
    with pytest.raises(RuleViolation, match="consent") as err:
        refer("social_services")
    assert err.value.status == 403
    assert not refer("social_services", consents=[SS_CONSENT]).statutory


def test_consent_for_another_recipient_does_not_cover() -> None:
    other = ConsentView(("budget_debt_advice",), date(2026, 3, 1), None, None)
    with pytest.raises(RuleViolation, match="consent"):
        refer("social_services", consents=[other])


def test_withdrawn_consent_stops_covering_at_once() -> None:
    withdrawn = replace(SS_CONSENT, withdrawn_at=NOW)
    with pytest.raises(RuleViolation, match="consent"):
        refer("social_services", consents=[withdrawn])
    later = replace(SS_CONSENT, withdrawn_at=NOW + timedelta(seconds=1))
    assert refer("social_services", consents=[later])


def test_expired_and_future_consents_do_not_cover() -> None:
    expired = replace(SS_CONSENT, expires_on=TODAY - timedelta(days=1))
    future = replace(SS_CONSENT, given_on=TODAY + timedelta(days=1))
    for consent in (expired, future):
        with pytest.raises(RuleViolation):
            refer("social_services", consents=[consent])
    assert refer("social_services", consents=[replace(SS_CONSENT, expires_on=TODAY)])


def test_budget_debt_advice_needs_consent() -> None:
    with pytest.raises(RuleViolation, match="budget_debt_advice"):
        refer("budget_debt_advice")
    ok = ConsentView(("budget_debt_advice", "social_services"), date(2026, 1, 1), None, None)
    assert refer("budget_debt_advice", consents=[ok])


# --- referral gate: Kronofogden --------------------------------------------------------------


def missing(**kw: object) -> list[str]:
    with pytest.raises(RuleViolation) as err:
        refer("kronofogden", **kw)
    detail = err.value.detail
    assert isinstance(detail, dict)
    return list(detail["missing"])


def test_kronofogden_allowed_after_every_step_and_the_period_ended_unpaid() -> None:
    # Recovery starts at the later of service (03-12) and notice (03-16): ends 04-06.
    decision = refer("kronofogden", steps=ALL_STEPS, today=date(2026, 4, 7))
    assert not decision.statutory


@pytest.mark.parametrize("step", engine.KRONOFOGDEN_STEPS)
def test_kronofogden_lists_each_missing_step(step: str) -> None:
    steps = [s for s in ALL_STEPS if s.step != step]
    assert step in missing(steps=steps)


def test_kronofogden_with_nothing_recorded_lists_everything() -> None:
    got = missing()
    assert got[:3] == list(engine.KRONOFOGDEN_STEPS)
    assert "recovery_period_ended" in got


def test_kronofogden_refused_while_the_recovery_period_runs() -> None:
    got = missing(steps=ALL_STEPS, today=date(2026, 4, 6))
    assert got == ["recovery_period_ended (runs until 2026-04-06)"]


def test_kronofogden_refused_when_paid_within_the_period() -> None:
    got = missing(steps=ALL_STEPS, today=date(2026, 4, 10), arrears_cleared_on=date(2026, 4, 1))
    assert got == ["recovery_period_ended_unpaid (arrears were cleared in time)"]


def test_recovery_start_is_the_later_date() -> None:
    assert engine.recovery_start(ALL_STEPS) == date(2026, 3, 16)
    assert engine.recovery_start(ALL_STEPS[:2]) is None


# --- access ----------------------------------------------------------------------------------


def sections(role: str, **kw: object) -> frozenset[str]:
    p = Principal("u", role, kw.pop("org", "org1"), kw.pop("municipality", "0180"))  # type: ignore[arg-type]
    args: dict[str, object] = {
        "org_id": "org1",
        "municipality_code": "0180",
        "consents": [],
        "has_statutory_notice": False,
        "today": TODAY,
        "now": NOW,
    }
    args.update(kw)
    return engine.case_sections(p, **args)  # type: ignore[arg-type]


def test_landlord_roles_see_their_own_organisation_only() -> None:
    for role in ("landlord_staff", "bosocial"):
        assert sections(role) == engine.ALL_SECTIONS
        assert sections(role, org="org2") == frozenset()
    assert sections("admin", org="other") == engine.ALL_SECTIONS


def test_social_services_needs_its_municipality_and_consent_or_notice() -> None:
    assert sections("social_services") == frozenset()
    assert sections("social_services", has_statutory_notice=True) == engine.STATUTORY_SECTIONS
    assert sections("social_services", consents=[SS_CONSENT]) == engine.ALL_SECTIONS
    assert sections("social_services", municipality="1480", consents=[SS_CONSENT]) == frozenset()
    assert sections("social_services", municipality_code=None, has_statutory_notice=True) == (
        frozenset()
    )


def test_statutory_access_excludes_notes_and_payment_details() -> None:
    got = sections("social_services", has_statutory_notice=True)
    assert "notes" not in got and "payment_plans" not in got and "meetings" not in got
    assert not engine.timeline_visible("note", None, got)
    assert not engine.timeline_visible("referral", False, got)
    assert engine.timeline_visible("referral", True, got)


def test_budget_debt_advice_sees_consented_cases() -> None:
    assert sections("budget_debt_advice") == frozenset()
    bda = ConsentView(("budget_debt_advice",), date(2026, 1, 1), None, None)
    assert sections("budget_debt_advice", consents=[bda]) == engine.ALL_SECTIONS
    assert sections("budget_debt_advice", consents=[SS_CONSENT]) == frozenset()


def test_purge_due() -> None:
    assert engine.purge_due(NOW - timedelta(days=30), NOW, 30)
    assert not engine.purge_due(NOW - timedelta(days=29), NOW, 30)
    assert not engine.purge_due(None, NOW, 30)


# --- audit chain -----------------------------------------------------------------------------


def chain(n: int) -> list[AuditRow]:
    rows: list[AuditRow] = []
    prev = GENESIS
    for i in range(1, n + 1):
        row = AuditRow(
            i, NOW, "u", "admin", None, "case.read", "allowed", "C", "why", digest("why"), prev
        )
        row = replace(row, hash=row_hash(prev, row))
        rows.append(row)
        prev = row.hash
    return rows


def test_chain_verifies_and_names_the_first_tampered_row() -> None:
    rows = chain(5)
    assert first_broken(rows) is None
    rows[2] = replace(rows[2], action="case.delete")
    assert first_broken(rows) == 3


def test_redacted_reason_keeps_the_chain_but_a_changed_one_breaks_it() -> None:
    rows = chain(3)
    rows[1] = replace(rows[1], reason=None)
    assert first_broken(rows) is None
    rows[1] = replace(rows[1], reason="another why")
    assert first_broken(rows) == 2


def test_deleted_row_breaks_the_chain() -> None:
    rows = chain(4)
    del rows[1]
    assert first_broken(rows) == 3


def _views(*items: tuple[str, str] | tuple[str, str, bool]) -> list[engine.SignalView]:
    return [engine.SignalView(*item) for item in items]  # type: ignore[arg-type]


def test_standing_signals_drop_retracted_ones_and_arrears_paid_since() -> None:
    views = _views(
        ("s1", "late_rent_detected"),
        ("s2", "complaint_pattern"),
        ("s3", "forfeiture_possible", True),
        ("s4", "arrears_cleared"),
        ("s5", "pre_due_reminder"),
    )
    assert [v.signal_id for v in engine.standing_signals(views)] == ["s2"]
    again = [*views, engine.SignalView("s6", "late_rent_detected")]
    assert [v.signal_id for v in engine.standing_signals(again)] == ["s2", "s6"]


def test_a_case_is_raised_in_error_only_when_its_trigger_alone_is_withdrawn() -> None:
    alone = _views(("f", "forfeiture_possible", True), ("l", "late_rent_detected", True))
    assert engine.raised_in_error("in_contact", "f", "f", alone)
    assert not engine.raised_in_error("resolved", "f", "f", alone)  # closed stays closed
    assert not engine.raised_in_error("new", "other", "f", alone)  # not what opened it
    standing = _views(("f", "forfeiture_possible", True), ("c", "complaint_pattern"))
    assert not engine.raised_in_error("new", "f", "f", standing)


def test_only_an_arrears_case_with_nothing_else_standing_awaits_review() -> None:
    paid = _views(("f", "forfeiture_possible"), ("a", "arrears_cleared"))
    assert engine.review_after_payment("new", "f", paid)
    assert not engine.review_after_payment("pending_review", "f", paid)
    complaints = _views(("c", "complaint_pattern"), ("a", "arrears_cleared"))
    assert not engine.review_after_payment("new", "c", complaints)
    engine.check_transition("pending_review", "resolved", resolution="paid")
    engine.check_transition("new", "resolved", resolution="raised_in_error")
    with pytest.raises(RuleViolation):
        engine.check_transition("pending_review", "resolved", resolution=None)


def test_arrears_before_payment_is_the_latest_standing_amount() -> None:
    views = [
        engine.SignalView("l", "late_rent_detected", arrears_ore=500_000),
        engine.SignalView("f", "forfeiture_possible", arrears_ore=812_300),
        engine.SignalView("c", "complaint_pattern"),
    ]
    assert engine.arrears_before_payment(views) == 812_300
    assert engine.arrears_before_payment(views[2:]) is None
