"""Engine scenarios with an injected clock: whole timelines through the pure rules engine."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from rules.engine import (
    Complaint,
    LeaseState,
    LedgerEntry,
    LegalStep,
    Plan,
    Warning,
    Watermark,
    apply_entries,
    evaluate,
    quiet,
    recovery_window,
)
from rules.policy import PolicySet
from shared.calendar import rent_due_date
from shared.clock import local_date, local_midnight
from tests.rules.scenario import NO_LAG, POLICY, Scenario, at, charge, payment

MARCH_DUE = rent_due_date(2026, 3)  # Friday 2026-02-27


def _fired(sc: Scenario) -> dict[str, date]:
    """Map signal id suffix -> local day it occurred."""
    return {sid.split(":", 1)[1]: local_date(sc.emitted[sid].occurred_at) for sid in sc.order}


def test_paid_on_time_raises_nothing() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 2, 26)), payment("p1", 800_000, date(2026, 2, 26)))
    assert sc.run(date(2026, 2, 10), date(2026, 4, 15)) == []


def test_paid_one_day_late_over_a_weekend_raises_nothing_but_counts_as_late() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 2, 28)), payment("p1", 800_000, date(2026, 2, 28)))
    assert sc.run(date(2026, 2, 10), date(2026, 3, 31)) == []
    ledger = apply_entries(sc._state(at(date(2026, 3, 31))).entries, date(2026, 3, 31))
    assert ledger.charges[0].days_late(date(2026, 3, 31)) == 1
    assert ledger.late_payments(date(2026, 3, 31)) == 1


def test_paid_one_day_late_midweek_detects_then_clears() -> None:
    due = rent_due_date(2026, 10)  # Wednesday 2026-09-30
    sc = Scenario(policy=NO_LAG)
    sc.add(at(due - timedelta(days=14)), charge("2026-10", due))
    sc.add(at(date(2026, 10, 1), 11), payment("p1", 800_000, date(2026, 10, 1)))
    sc.run(due - timedelta(days=20), date(2026, 10, 31))
    assert sc.signals() == ["late_rent_detected", "arrears_cleared"]
    late = sc.emitted["L1:2026-10:late_rent_detected"]
    assert late.occurred_at == local_midnight(date(2026, 10, 1))
    assert late.days_late == 1 and late.arrears_ore == 800_000
    assert "L1:2026-10:arrears_cleared" in sc.emitted


def test_partial_payment_keeps_the_ladder_going_until_paid_in_full() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(MARCH_DUE), payment("p1", 500_000, MARCH_DUE))
    sc.add(at(date(2026, 3, 20)), payment("p2", 300_000, date(2026, 3, 20)))
    sc.run(date(2026, 2, 10), date(2026, 4, 10))
    assert sc.signals() == [
        "late_rent_detected",
        "personal_contact_needed",
        "forfeiture_possible",
        "arrears_cleared",
    ]
    fired = _fired(sc)
    assert fired["2026-03:late_rent_detected"] == date(2026, 3, 2)  # working day 1
    assert fired["2026-03:personal_contact_needed"] == date(2026, 3, 4)  # working day 3
    assert fired["2026-03:forfeiture_possible"] == date(2026, 3, 7)  # due + 8 calendar days
    assert sc.emitted["L1:2026-03:late_rent_detected"].arrears_ore == 300_000
    assert sc.emitted["L1:2026-03:forfeiture_possible"].inputs["legal_basis"] == "JB 12:42 p.1"


def test_payment_before_the_sweep_on_the_deadline_day_raises_nothing() -> None:
    deadline = date(2026, 3, 2)  # working day 1 after Friday 2026-02-27
    unpaid = LeaseState("L1", "org", 800_000, entries=(charge("2026-03", MARCH_DUE),))
    sweep = local_midnight(deadline) + timedelta(minutes=5)
    before = evaluate(unpaid, NO_LAG, sweep, frozenset())
    assert [s.signal for s in before.signals] == ["late_rent_detected"]
    paid = LeaseState(
        "L1", "org", 800_000, entries=(*unpaid.entries, payment("p1", 800_000, deadline))
    )
    assert evaluate(paid, NO_LAG, sweep, frozenset()).signals == []


def test_arrears_cleared_only_after_a_late_signal_and_only_once() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 3, 3)), payment("p1", 800_000, date(2026, 3, 3)))
    sc.add(at(date(2026, 3, 27)), charge("2026-04", rent_due_date(2026, 4)))
    sc.add(at(date(2026, 3, 30)), payment("p2", 800_000, date(2026, 3, 30)))
    sc.run(date(2026, 2, 10), date(2026, 4, 30))
    assert sc.order == [
        "L1:2026-03:late_rent_detected",
        "L1:2026-03:arrears_cleared",
        "L1:2026-04:pre_due_reminder",  # the March rent was paid late
    ]


def _ladder_days(due: date, period: str) -> dict[str, date]:
    sc = Scenario()
    sc.add(at(due - timedelta(days=14)), charge(period, due))
    sc.run(due - timedelta(days=20), due + timedelta(days=20))
    return {
        s.split(":")[2]: sc.emitted[s].occurred_at.astimezone(at(due).tzinfo).date()
        for s in sc.order
    }


def test_due_date_before_julafton_and_nyarsafton_counts_working_days() -> None:
    due = rent_due_date(2027, 1)
    assert due == date(2026, 12, 30)  # nyårsafton is not a working day
    days = _ladder_days(due, "2027-01")
    assert days["late_rent_detected"] == date(2027, 1, 4)
    assert days["personal_contact_needed"] == date(2027, 1, 7)  # trettondagen skipped
    # the week of JB 12:42 ends on trettondedag jul (01-06): by lag (1930:173) on 01-07
    assert days["forfeiture_possible"] == date(2027, 1, 8)
    days = _ladder_days(date(2026, 12, 23), "2026-12")
    assert days["late_rent_detected"] == date(
        2026, 12, 28
    )  # julafton, juldagen, annandagen, Sunday


def test_due_date_before_midsommarafton() -> None:
    days = _ladder_days(date(2026, 6, 18), "2026-07")
    assert days["late_rent_detected"] == date(2026, 6, 22)
    assert days["personal_contact_needed"] == date(2026, 6, 24)
    assert days["forfeiture_possible"] == date(2026, 6, 26)


def test_due_date_before_easter() -> None:
    days = _ladder_days(date(2026, 4, 2), "2026-04")
    assert days["late_rent_detected"] == date(2026, 4, 7)  # långfredag .. annandag påsk
    assert days["personal_contact_needed"] == date(2026, 4, 9)
    assert days["forfeiture_possible"] == date(2026, 4, 10)


def _terminated(sc: Scenario, *steps: tuple[str, date]) -> Scenario:
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    for n, (step, on) in enumerate(steps):
        sc.add(at(on, 12), LegalStep(f"s{n}", step, on))
    return sc


def test_recovery_period_runs_from_the_later_of_the_two_notice_dates() -> None:
    for served, notified in (
        (date(2026, 4, 14), date(2026, 4, 17)),
        (date(2026, 4, 17), date(2026, 4, 14)),
    ):
        sc = _terminated(
            Scenario(),
            ("termination_sent", date(2026, 4, 10)),
            ("recovery_notice_served", served),
            ("social_services_notice_sent", notified),
        )
        sc.run(date(2026, 2, 10), date(2026, 5, 20))
        fired = {s.split(":", 2)[2]: sc.emitted[s] for s in sc.order if ":s0:" in s}
        day = {k: v.occurred_at.astimezone(at(MARCH_DUE).tzinfo).date() for k, v in fired.items()}
        assert day == {
            "recovery_period_started": date(2026, 4, 17),
            "recovery_period_reminder_w1": date(2026, 4, 24),
            "recovery_period_reminder_w2": date(2026, 5, 1),
            "recovery_period_ending": date(2026, 5, 5),
            "recovery_period_ended": date(2026, 5, 9),
            "enforcement_possible": date(2026, 5, 9),
        }
        assert fired["recovery_period_started"].inputs["end"] == "2026-05-08"


def test_enforcement_gate_refused_without_both_notices() -> None:
    sc = _terminated(
        Scenario(),
        ("termination_sent", date(2026, 4, 10)),
        ("recovery_notice_served", date(2026, 4, 14)),
    )
    sc.run(date(2026, 2, 10), date(2026, 6, 30))
    assert "forfeiture_possible" in sc.signals()
    assert not [s for s in sc.signals() if s.startswith(("recovery", "enforcement"))]
    window = recovery_window(sc._state(at(date(2026, 6, 30))), POLICY)
    assert window is not None and window["start"] is None
    assert window["missing_notices"] == ["social_services_notice_sent"]
    # the missing notice arrives late: the period now runs from it, and the gate opens after
    sc.add(
        at(date(2026, 7, 1), 12), LegalStep("s9", "social_services_notice_sent", date(2026, 7, 1))
    )
    sc.run(date(2026, 7, 1), date(2026, 7, 31))
    assert sc.emitted["L1:s0:enforcement_possible"].occurred_at == local_midnight(date(2026, 7, 23))


def test_recovery_period_ending_on_a_saturday_ends_on_monday_by_lag_1930_173() -> None:
    # the later notice on Saturday 2027-01-09: 21 days end on Saturday 2027-01-30, which
    # lag (1930:173) 2 § moves to Monday 2027-02-01; the Kronofogden gate opens after that
    sc = Scenario()
    sc.add(at(date(2026, 12, 1)), charge("2027-01", rent_due_date(2027, 1)))
    for n, (step, on) in enumerate(
        (
            ("termination_sent", date(2027, 1, 5)),
            ("recovery_notice_served", date(2027, 1, 7)),
            ("social_services_notice_sent", date(2027, 1, 9)),
        )
    ):
        sc.add(at(on, 12), LegalStep(f"s{n}", step, on))
    sc.run(date(2026, 12, 1), date(2027, 2, 28))
    started = sc.emitted["L1:s0:recovery_period_started"]
    assert started.inputs["end"] == "2027-02-01"
    assert "1930:173" in started.inputs["end_rule"]
    fired = {s.split(":", 2)[2]: local_date(sc.emitted[s].occurred_at) for s in sc.order}
    assert fired["recovery_period_ending"] == date(2027, 1, 29)
    assert fired["recovery_period_ended"] == date(2027, 2, 2)
    assert fired["enforcement_possible"] == date(2027, 2, 2)
    window = recovery_window(sc._state(at(date(2027, 1, 31))), POLICY)
    assert window is not None and window["end"] == date(2027, 2, 1)


def test_recovery_period_silent_when_paid_within_it() -> None:
    sc = _terminated(
        Scenario(),
        ("termination_sent", date(2026, 4, 10)),
        ("recovery_notice_served", date(2026, 4, 14)),
        ("social_services_notice_sent", date(2026, 4, 14)),
    )
    sc.add(at(date(2026, 4, 20)), payment("p1", 800_000, date(2026, 4, 20)))
    sc.run(date(2026, 2, 10), date(2026, 6, 30))
    recovery = [s for s in sc.signals() if s.startswith(("recovery", "enforcement"))]
    assert recovery == ["recovery_period_started"]
    assert sc.signals()[-1] == "arrears_cleared"


def _plan_scenario(*payments: tuple[str, int, date]) -> Scenario:
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    plan = Plan(
        "plan1", date(2026, 3, 10), ((date(2026, 3, 25), 400_000), (date(2026, 4, 25), 400_000))
    )
    sc.add(at(date(2026, 3, 10)), plan)
    for pid, amount, on in payments:
        sc.add(at(on), payment(pid, amount, on))
    return sc


def test_payment_plan_kept() -> None:
    sc = _plan_scenario(("p1", 400_000, date(2026, 3, 24)), ("p2", 400_000, date(2026, 4, 25)))
    sc.run(date(2026, 3, 10), date(2026, 5, 31))
    assert "plan_breached" not in sc.signals()
    ev = evaluate(sc._state(at(date(2026, 5, 31))), POLICY, at(date(2026, 5, 31)), frozenset())
    assert ev.plans["plan1"]["status"] == "kept"


def test_payment_plan_breached_on_the_day_after_a_missed_installment() -> None:
    sc = _plan_scenario(("p1", 400_000, date(2026, 3, 24)), ("p2", 100_000, date(2026, 4, 25)))
    sc.run(date(2026, 3, 10), date(2026, 5, 31))
    breach = sc.emitted["L1:plan1:plan_breached"]
    assert breach.occurred_at == local_midnight(date(2026, 4, 26))
    assert breach.inputs["index"] == 1 and breach.inputs["required_ore"] == 800_000
    ev = evaluate(sc._state(at(date(2026, 5, 31))), POLICY, at(date(2026, 5, 31)), frozenset())
    broken = {f.name: f for f in ev.risk.factors}["broken_plans"]
    assert broken.value == 1 and broken.points == 10


def _complaints(*days: date) -> Scenario:
    sc = Scenario()
    for n, day in enumerate(days):
        sc.add(at(day), Complaint(f"c{n}", "disturbance", day))
    return sc


def test_complaint_pattern_inside_the_window() -> None:
    sc = _complaints(date(2026, 3, 1), date(2026, 3, 31))
    sc.run(date(2026, 3, 1), date(2026, 4, 5))
    assert sc.order == ["L1:c1:disturbance_pattern"]
    assert sc.emitted["L1:c1:disturbance_pattern"].inputs["complaint_ids"] == ["c0", "c1"]


def test_complaint_pattern_outside_the_window() -> None:
    sc = _complaints(date(2026, 3, 1), date(2026, 4, 1))
    assert sc.run(date(2026, 3, 1), date(2026, 4, 5)) == []


def test_unfounded_complaints_do_not_count_and_neglect_is_another_category() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 3, 1)), Complaint("c0", "disturbance", date(2026, 3, 1), "unfounded"))
    sc.add(at(date(2026, 3, 2)), Complaint("c1", "disturbance", date(2026, 3, 2)))
    sc.add(at(date(2026, 3, 3)), Complaint("c2", "neglect", date(2026, 3, 3)))
    assert sc.run(date(2026, 3, 1), date(2026, 3, 10)) == []


def test_a_disturbance_warning_makes_the_social_services_notice_due() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 3, 5)), Warning("w1", "disturbance", date(2026, 3, 5)))
    sc.add(at(date(2026, 3, 6)), Warning("w2", "late_payment", date(2026, 3, 6)))
    sc.run(date(2026, 3, 1), date(2026, 3, 10))
    assert sc.signals() == ["social_services_notice_due"]
    assert sc.emitted["L1:w1:social_services_notice"].inputs["legal_basis"] == "JB 12:25"


def test_pre_due_reminder_only_with_a_late_history() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 3, 3)), payment("p1", 800_000, date(2026, 3, 3)))
    april = rent_due_date(2026, 4)
    sc.add(at(date(2026, 3, 17)), charge("2026-04", april))
    sc.run(date(2026, 2, 10), april)
    assert "L1:2026-04:pre_due_reminder" in sc.order
    assert sc.emitted["L1:2026-04:pre_due_reminder"].occurred_at == local_midnight(
        april - timedelta(days=3)
    )
    assert "L1:2026-03:pre_due_reminder" not in sc.order


def test_ledger_allocates_oldest_first_reopens_on_reversal_and_applies_credits() -> None:
    entries = [
        charge("2026-03", MARCH_DUE, booked=date(2026, 2, 1)),
        charge("2026-04", rent_due_date(2026, 4), booked=date(2026, 3, 1)),
        payment("p1", 1_000_000, date(2026, 3, 31)),
        LedgerEntry("r1", "reversal", 1_000_000, date(2026, 4, 2), payment_id="p1"),
        LedgerEntry("cr1", "credit", 100_000, date(2026, 4, 3), invoice_id="inv-2026-04"),
    ]
    ledger = apply_entries(entries, date(2026, 3, 31))
    assert [c.open_ore for c in ledger.charges] == [0, 600_000]
    ledger = apply_entries(entries, date(2026, 4, 10))
    assert [c.open_ore for c in ledger.charges] == [800_000, 700_000]
    assert ledger.balance_ore == 1_500_000 and ledger.arrears_ore(date(2026, 4, 10)) == 1_500_000


def test_risk_score_lists_factors_and_crosses_the_high_risk_threshold() -> None:
    sc = Scenario()
    for month in (1, 2, 3):
        due = rent_due_date(2026, month)
        sc.add(at(due - timedelta(days=14)), charge(f"2026-{month:02d}", due))
    sc.add(at(date(2026, 2, 20)), Complaint("c1", "disturbance", date(2026, 2, 20)))
    sc.run(date(2025, 12, 1), date(2026, 3, 20))
    ev = evaluate(
        sc._state(at(date(2026, 3, 20))), POLICY, at(date(2026, 3, 20)), frozenset(sc.emitted)
    )
    factors = {f.name: f for f in ev.risk.factors}
    assert factors["arrears_months"].value == 3.0 and factors["arrears_months"].points == 30
    assert factors["days_late"].points == 30
    assert ev.risk.score >= 60
    assert any(s.endswith(":high_risk") for s in sc.order)
    assert sum(f.weight for f in ev.risk.factors) == 100


def test_no_escalation_after_the_lease_ended() -> None:
    state = LeaseState(
        "L1", "org", 800_000, entries=(charge("2026-03", MARCH_DUE),), ended_on=date(2026, 2, 28)
    )
    ev = evaluate(state, POLICY, at(date(2026, 3, 20)), frozenset())
    assert ev.signals == []
    ev = evaluate(replace(state, ended_on=None), POLICY, at(date(2026, 3, 20)), frozenset())
    assert [s.signal for s in ev.signals][:3] == [
        "late_rent_detected",
        "personal_contact_needed",
        "forfeiture_possible",
    ]


def test_reasons_name_categories_in_swedish_and_format_amounts_like_the_sms() -> None:
    sc = _complaints(date(2026, 3, 1), date(2026, 3, 31))
    sc.run(date(2026, 3, 1), date(2026, 4, 5))
    pattern = sc.emitted["L1:c1:disturbance_pattern"]
    assert pattern.reason_sv == "2 klagomål om störning inom 30 dagar."
    assert pattern.reason_en == "2 disturbance complaints within 30 days."
    sc = Scenario(rent=1_234_550)
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE, 1_234_550))
    sc.run(date(2026, 2, 10), date(2026, 3, 5))
    late = sc.emitted["L1:2026-03:late_rent_detected"]
    assert "(12 345,50 kr)" in late.reason_sv  # shared.format.format_sek, as in the SMS
    assert "(12 345,50 SEK)" in late.reason_en


def test_quiet_leases_are_those_evaluate_finds_nothing_for() -> None:
    # the consumer skips `evaluate` for a quiet lease (registered, not charged yet)
    policies = PolicySet.load()
    low = POLICY.model_copy(
        update={"risk": POLICY.risk.model_copy(update={"high_risk_threshold": 1})}
    )
    checked = 0
    for policy in [policies.default, *policies.per_org.values(), NO_LAG, low]:
        for rent, ended in [(0, None), (800_000, None), (800_000, date(2026, 3, 1))]:
            state = LeaseState("L1", "org1", monthly_rent_ore=rent, ended_on=ended)
            assert quiet(state, policy, frozenset())
            for day in (date(2026, 2, 20), date(2026, 3, 2), date(2026, 12, 31)):
                for mark in (None, Watermark(day, at(day))):
                    ev = evaluate(state, policy, at(day), frozenset(), mark)
                    assert (ev.signals, ev.retractions, ev.deadlines) == ([], [], [])
                    assert ev.risk.score == 0  # every factor 0: under any threshold
                    checked += 1
    assert checked == 18 * (len(policies.per_org) + 3)
    # any fact, or anything emitted, and the lease is evaluated
    empty = LeaseState("L1", "org1", monthly_rent_ore=800_000)
    facts = {
        "entries": (charge("2026-03", MARCH_DUE),),
        "complaints": (Complaint("c1", "disturbance", date(2026, 2, 1)),),
        "warnings": (Warning("w1", "disturbance", date(2026, 2, 1)),),
        "legal_steps": (LegalStep("s1", "eviction_notice", date(2026, 2, 1)),),
        "plans": (Plan("p1", date(2026, 2, 1), ((date(2026, 3, 1), 100),)),),
    }
    for name, value in facts.items():
        assert not quiet(replace(empty, **{name: value}), POLICY, frozenset()), name
    assert not quiet(empty, POLICY, frozenset({"L1:2026-03:late_rent_detected"}))


def test_the_memoised_risk_is_the_score_of_the_factor_values() -> None:
    # evaluate scores by `lease_risk` (memoised on the factor values as a tuple): the same
    # Risk as `score(factor_values(...))`, whatever the ledger, complaints and plans
    from rules.engine.risk import factor_values, lease_risk, score

    today = date(2026, 3, 10)
    complaints = (Complaint("c1", "disturbance", date(2026, 3, 1)),)
    for rent in (0, 800_000):
        for paid in (0, 300_000, 800_000):
            for broken in (0, 1):
                entries = [charge("2026-03", MARCH_DUE), charge("2026-02", date(2026, 1, 30))]
                if paid:
                    entries.append(payment("p1", paid, date(2026, 3, 2)))
                state = LeaseState(
                    "L1", "org1", rent, tuple(entries), complaints=complaints if broken else ()
                )
                ledger = apply_entries(state.entries, today)
                overdue = ledger.overdue(today)
                arrears, late = ledger.arrears_ore(today), ledger.late_payments(today)
                want = score(factor_values(state, ledger, today, broken), POLICY)
                got = lease_risk(state, POLICY, today, broken, arrears, late, overdue)
                assert got == want and got.score == want.score
                assert lease_risk(state, POLICY, today, broken, arrears, late, overdue) is got
