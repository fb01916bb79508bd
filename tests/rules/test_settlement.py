"""Payments that reach Bokvar after they were booked: no false late-rent alarm, in any order.

A payment booked on or before the due date must never leave a late signal standing,
whether it arrives a day late (an ERP that books bank files the next day), after the
stage (a backfill of history), or in any order among the lease's other events.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from rules.engine import evaluate
from rules.policy import Settlement
from shared.calendar import rent_due_date
from shared.clock import local_date, local_midnight
from tests.rules.scenario import NO_LAG, Scenario, at, charge, payment

MARCH_DUE = rent_due_date(2026, 3)  # Friday 2026-02-27
APRIL_DUE = rent_due_date(2026, 4)  # Tuesday 2026-03-31
MAY_DUE = rent_due_date(2026, 5)  # Thursday 2026-04-30


def test_payment_booked_on_the_due_date_arriving_after_the_stage_is_retracted() -> None:
    # the ERP delivers the bank file of Friday's payments on Wednesday: the stage fired on
    # Tuesday; the payment proves it wrong, and the signal is withdrawn, not "cleared"
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 3, 4), 15), payment("p1", 800_000, MARCH_DUE))
    sc.run(date(2026, 2, 10), date(2026, 3, 31))
    assert sc.signals() == ["late_rent_detected", "retracted:late_rent_detected"]
    assert sc.standing() == []
    retraction = sc.retracted["L1:2026-03:late_rent_detected:retracted"]
    assert retraction.reason_code == "paid_on_time"
    assert retraction.signal_id == "L1:2026-03:late_rent_detected"
    assert retraction.occurred_at == at(date(2026, 3, 4), 15)
    assert "2026-02-27" in retraction.reason_sv and "förfallodagen" in retraction.reason_sv
    assert "withdrawn" in retraction.reason_en


def test_payment_booked_on_the_due_date_arriving_the_next_banking_day_raises_nothing() -> None:
    # the default settlement lag (1 banking day) waits for Monday's delivery of Friday
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 3, 2), 16), payment("p1", 800_000, MARCH_DUE))
    assert sc.run(date(2026, 2, 10), date(2026, 3, 31)) == []


def test_without_a_lag_the_same_delivery_is_retracted_and_never_cleared() -> None:
    # what the issue saw: late signals, then arrears_cleared dated before them
    sc = Scenario(policy=NO_LAG)
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 3, 5), 9), payment("p1", 800_000, date(2026, 2, 26)))
    sc.run(date(2026, 2, 10), date(2026, 3, 31))
    assert sc.signals() == [
        "late_rent_detected",
        "personal_contact_needed",
        "retracted:late_rent_detected",
        "retracted:personal_contact_needed",
    ]
    assert sc.standing() == []
    assert "arrears_cleared" not in sc.signals()


def test_payment_after_the_due_date_but_before_a_stage_retracts_only_that_stage() -> None:
    # paid Tuesday 03-03 (late), delivered Friday 03-06: late_rent_detected (Monday 03-02)
    # stands, personal_contact_needed (Wednesday 03-04) is withdrawn; cleared on 03-03
    sc = Scenario(policy=NO_LAG)
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 3, 6), 9), payment("p1", 800_000, date(2026, 3, 3)))
    sc.run(date(2026, 2, 10), date(2026, 3, 31))
    assert sc.standing() == ["late_rent_detected", "arrears_cleared"]
    withdrawn = sc.retracted["L1:2026-03:personal_contact_needed:retracted"]
    assert withdrawn.reason_code == "payment_booked_before_stage"
    late = sc.emitted["L1:2026-03:late_rent_detected"]
    cleared = sc.emitted["L1:2026-03:arrears_cleared"]
    assert cleared.occurred_at >= late.occurred_at  # never dated before the late signal


def test_a_watermark_holds_the_ladder_until_it_covers_the_day_before_the_stage() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    # the ERP says "payments booked through X are all sent" each night at 02:00
    for day in (date(2026, 2, 27), date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)):
        sc.watermark(day - timedelta(days=1), at(day, 2))
    sc.run(date(2026, 2, 10), date(2026, 3, 3))
    # the stage of Monday 03-02 needed payments through Sunday: released by Monday's 02:00
    assert sc.order == ["L1:2026-03:late_rent_detected"]
    late = sc.emitted["L1:2026-03:late_rent_detected"]
    assert late.inputs["settled_by"] == "watermark" and late.inputs["watermark"] == "2026-03-01"
    assert late.occurred_at == local_midnight(date(2026, 3, 2))


def test_a_stalled_watermark_holds_a_stage_two_banking_days_past_the_lag_at_most() -> None:
    # the ERP's nightly export stopped after 26 Feb: late rent must not go unnoticed
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.watermark(date(2026, 2, 25), at(date(2026, 2, 26), 2))
    assert sc.run(date(2026, 2, 10), date(2026, 3, 4)) == []
    now = at(date(2026, 3, 3))
    ev = evaluate(sc._state(now), sc.policy, now, frozenset(), sc.watermarks[0])
    held = {h["stage"]: h for h in ev.held}
    assert held["late_rent_detected"]["waiting_for"] == "watermark"
    # the lag alone would release Monday 03-02's stage on Tuesday 03-03; two banking days more
    assert held["late_rent_detected"]["release_on"] == date(2026, 3, 5)
    # still looked at daily, so a watermark arriving meanwhile releases it at once
    assert [d.due_on for d in ev.deadlines if d.stage == "late_rent_detected"] == [date(2026, 3, 4)]
    sc._check(local_midnight(date(2026, 3, 5)))
    assert sc.order == ["L1:2026-03:late_rent_detected"]
    late = sc.emitted["L1:2026-03:late_rent_detected"]
    assert late.inputs["settled_by"] == "settlement_lag"
    assert late.inputs["stale_watermark"] == "2026-02-25"
    assert late.occurred_at == local_midnight(date(2026, 3, 2))


def test_a_payment_in_time_still_arriving_while_the_watermark_stalls_raises_nothing() -> None:
    sc = Scenario()
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.watermark(date(2026, 2, 25), at(date(2026, 2, 26), 2))
    sc.add(at(date(2026, 3, 4), 15), payment("p1", 800_000, MARCH_DUE))
    assert sc.run(date(2026, 2, 10), date(2026, 3, 31)) == []


def test_without_a_staleness_limit_a_stalled_watermark_keeps_the_stage_waiting() -> None:
    sc = Scenario()
    sc.policy = sc.policy.model_copy(
        update={
            "settlement": Settlement(lag_banking_days=1, watermark_stale_after_banking_days=None)
        }
    )
    sc.add(at(date(2026, 2, 13)), charge("2026-03", MARCH_DUE))
    sc.watermark(date(2026, 2, 25), at(date(2026, 2, 26), 2))
    assert sc.run(date(2026, 2, 10), date(2026, 3, 10)) == []
    now = at(date(2026, 3, 10))
    ev = evaluate(sc._state(now), sc.policy, now, frozenset(), sc.watermarks[0])
    held = {h["stage"]: h for h in ev.held}
    assert held["late_rent_detected"]["waiting_for"] == "watermark"
    assert [d.due_on for d in ev.deadlines if d.stage == "late_rent_detected"] == [
        date(2026, 3, 11)
    ]


def test_a_watermark_sent_before_a_backfilled_charge_does_not_cover_it() -> None:
    # the ERP connects a new property: its history arrives after tonight's watermark
    sc = Scenario()
    sc.watermark(date(2026, 4, 5), at(date(2026, 4, 6), 2))
    sc.add(at(date(2026, 4, 6), 10), charge("2026-03", MARCH_DUE))
    sc.add(at(date(2026, 4, 6), 11), payment("p1", 800_000, MARCH_DUE))
    assert sc.run(date(2026, 4, 6), date(2026, 4, 10)) == []


def _backfill(rng: random.Random, paid: dict[str, date | None], arrive: date) -> Scenario:
    """A household's three months arriving in a shuffled order over one afternoon."""
    dues = {"2026-03": MARCH_DUE, "2026-04": APRIL_DUE, "2026-05": MAY_DUE}
    items = [charge(p, due) for p, due in dues.items()]
    items += [payment(f"p-{p}", 800_000, on) for p, on in paid.items() if on is not None]
    rng.shuffle(items)
    sc = Scenario()
    for n, item in enumerate(items):
        sc.add(datetime.combine(arrive, at(arrive).timetz()) + timedelta(minutes=7 * n), item)
    return sc


def test_backfilled_history_in_any_order_flags_only_those_who_paid_late() -> None:
    rng = random.Random(10)
    arrive = date(2026, 5, 20)
    on_time = {"2026-03": MARCH_DUE, "2026-04": APRIL_DUE - timedelta(days=1), "2026-05": MAY_DUE}
    never: dict[str, date | None] = {"2026-03": None, "2026-04": None, "2026-05": None}
    for _ in range(30):
        sc = _backfill(rng, dict(on_time), arrive)
        assert sc.run(arrive, arrive + timedelta(days=10)) == [], sc.order
        sc = _backfill(rng, never, arrive)
        sc.run(arrive, arrive + timedelta(days=10))
        assert {"late_rent_detected", "forfeiture_possible"} <= set(sc.standing())
        fired = [local_date(sc.emitted[i].occurred_at) for i in sc.order if i in sc.emitted]
        assert min(fired) >= MARCH_DUE  # each stage dated at its own day, not the backfill's
