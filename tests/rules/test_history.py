"""Settled history (`rules.engine.history`): evaluating only the entries after a cut decides
exactly what evaluating the whole ledger decides, day after day, on random leases.

Each lease below lives two years: a charge a month, paid on time, late, in parts, twice in
one payment, in advance or not at all; payments reaching Bokvar days or months after they
were booked; now and then a second invoice for one month, a credit, a reversal, a payment
plan or a complaint. Every local midnight and every arrival it is evaluated twice, as the
consumer and the sweep do: over its whole ledger, and over the entries after the cut the
previous evaluation found (when `usable` allows; else the whole ledger again). Signals,
retractions, deadlines, holds, risk and arrears must be the same every time.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from rules.engine import Complaint, LedgerEntry, Plan, evaluate, quiet
from rules.engine.history import Cut, settled_cut, usable
from shared.calendar import rent_due_date
from shared.clock import local_date, local_midnight
from tests.rules.scenario import NO_LAG, POLICY, Scenario, at, charge, payment

RENT = 800_000
START = date(2024, 11, 1)


def _lease(rng: random.Random, months: int = 24) -> Scenario:
    """A random lease history (see the module docstring)."""
    sc = Scenario(policy=rng.choice((POLICY, NO_LAG)))
    year, month = START.year, START.month
    debt = 0
    on_time = rng.choice((0.62, 0.85, 0.95))  # how reliably this household pays
    for n in range(months):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        period = f"{year}-{month:02d}"
        due = rent_due_date(year, month)
        booked = due - timedelta(days=rng.randint(5, 20))
        late_charge = rng.random() < 0.04  # a charge sent months after it was booked
        known = booked + timedelta(days=rng.randint(40, 90) if late_charge else 0)
        sc.add(at(known), charge(period, due, RENT, booked=booked))
        if rng.random() < 0.04:  # a second invoice for the same month
            extra = replace(charge(period, due, 50_000, booked=booked), entry_id=f"x-{period}")
            sc.add(at(known), replace(extra, invoice_id=f"x-{period}"))
            debt += 50_000
        debt += RENT
        kind = rng.random()
        if kind < on_time:
            parts = [(due - timedelta(days=rng.randint(0, 6)), debt)]
        elif kind < on_time + 0.15:
            parts = [(due + timedelta(days=rng.randint(1, 45)), debt)]
        elif kind < on_time + 0.22:
            half = debt // 2
            parts = [(due - timedelta(days=1), half), (due + timedelta(days=10), debt - half)]
        elif kind < on_time + 0.28:
            parts = []  # paid with next month's rent
        elif kind < on_time + 0.33:
            parts = [(due - timedelta(days=rng.randint(1, 4)), debt + RENT // 4)]  # overpaid
        else:
            parts = [(due - timedelta(days=2), debt - rng.randint(1, 5_000))]  # a little short
        for k, (on, amount) in enumerate(parts):
            lag = rng.choice((0, 0, 1, 1, 2, 3)) if rng.random() > 0.03 else rng.randint(30, 70)
            sc.add(at(on + timedelta(days=lag), 11), payment(f"p-{period}-{k}", amount, on))
            debt -= amount
        if rng.random() < 0.02 and parts:  # a payment bounced later
            on, amount = parts[0]
            reversal = LedgerEntry(
                f"r-{period}",
                "reversal",
                amount,
                on + timedelta(days=15),
                payment_id=f"p-{period}-0",
            )
            sc.add(at(on + timedelta(days=16)), reversal)
            debt += amount
        if rng.random() < 0.02:
            credit = LedgerEntry(f"c-{period}", "credit", 20_000, due, invoice_id=f"inv-{period}")
            sc.add(at(due + timedelta(days=1)), credit)
            debt -= 20_000
        if rng.random() < 0.02:  # a plan agreed weeks before Bokvar hears of it
            agreed = due + timedelta(days=20)
            plan = Plan(f"plan-{period}", agreed, ((agreed + timedelta(days=30), RENT),))
            sc.add(at(agreed + timedelta(days=rng.randint(0, 40))), plan)
        if rng.random() < 0.03 and n > 2:  # a correction invoice for a month long settled
            old = f"{year}-{month - 2:02d}" if month > 2 else f"{year - 1}-{month + 10:02d}"
            fix = charge(old, due, 30_000, booked=booked + timedelta(days=3))
            fix = replace(fix, entry_id=f"f-{old}", invoice_id=f"f-{old}")
            sc.add(at(booked + timedelta(days=3)), fix)
            debt += 30_000
        if rng.random() < 0.02:
            sc.add(at(due), Complaint(f"cx-{period}", "disturbance", due))
    return sc


def _outcome(ev: Any) -> tuple[Any, ...]:
    """What the consumer keeps of an evaluation (its ledger is an input, not an outcome)."""
    return (
        ev.signals,
        ev.retractions,
        ev.deadlines,
        ev.risk,
        ev.held,
        ev.plans,
        ev.recovery,
        ev.arrears_ore,
        ev.late_payments_12m,
    )


def _twin(sc: Scenario, end: date) -> tuple[int, int]:
    """Run `sc` to `end`, comparing whole and cut evaluations; return (checks, checks that
    read only the entries after a cut)."""
    instants = {local_midnight(START + timedelta(days=n)) for n in range((end - START).days + 1)}
    instants |= {w for w, _ in sc.timeline}
    cut: Cut | None = None
    checks = shortened = 0
    for now in sorted(instants):
        if now.date() > end:
            break
        seen = frozenset(sc.emitted) | frozenset(sc.retracted)
        state = sc._state(now)
        today = local_date(now)
        full = evaluate(state, sc.policy, now, seen)
        short_state, base = state, None
        if cut is not None:
            before = sum(1 for e in state.entries if e.booked_on < cut.before)
            after = tuple(e for e in state.entries if e.booked_on >= cut.before)
            if usable(cut, before, after, bool(state.plans), today):
                short_state, base = replace(state, entries=after), cut
                shortened += 1
        checks += 1
        if quiet(short_state, sc.policy, seen):  # the consumer skips it: nothing changes
            assert not full.signals and not full.retractions and not full.deadlines, now
            continue
        short = evaluate(short_state, sc.policy, now, seen)
        assert _outcome(short) == _outcome(full), (now, cut)
        said = seen.union([s.signal_id for s in short.signals])
        said = said.union([r.retraction_id for r in short.retractions])
        cut = settled_cut(short_state, short.ledger, said, today, base)
        sc.record(full)
    return checks, shortened


def _run_seeds(seeds: range) -> None:
    total = short = 0
    for seed in seeds:
        checks, shortened = _twin(_lease(random.Random(seed)), date(2026, 11, 30))
        total, short = total + checks, short + shortened
    # the test proves something only if many evaluations did read a shortened ledger
    assert short > total // 3, (short, total)


def test_a_cut_ledger_decides_what_the_whole_ledger_decides() -> None:
    _run_seeds(range(12))


@pytest.mark.slow
def test_a_cut_ledger_decides_what_the_whole_ledger_decides_on_many_leases() -> None:
    _run_seeds(range(12, 160))


def test_a_month_paid_late_is_not_cut_away_while_it_counts_as_late() -> None:
    sc = Scenario(policy=NO_LAG)
    due = rent_due_date(2026, 3)
    sc.add(at(due - timedelta(days=14)), charge("2026-03", due))
    sc.add(at(due + timedelta(days=3)), payment("p1", RENT, due + timedelta(days=3)))
    now = at(due + timedelta(days=40))
    state = sc._state(now)
    seen = frozenset({"L1:2026-03:late_rent_detected"})
    ev = evaluate(state, sc.policy, now, seen)
    assert ev.late_payments_12m == 1
    assert settled_cut(state, ev.ledger, seen, local_date(now), None) is None


def test_a_ledger_paid_on_time_is_cut_after_its_last_entry() -> None:
    sc = Scenario(policy=NO_LAG)
    for month in (1, 2, 3):
        due = rent_due_date(2026, month)
        sc.add(at(due - timedelta(days=14)), charge(f"2026-{month:02d}", due))
        sc.add(at(due - timedelta(days=2)), payment(f"p{month}", RENT, due - timedelta(days=2)))
    now = at(date(2026, 3, 10))
    state = sc._state(now)
    ev = evaluate(state, sc.policy, now, frozenset())
    cut = settled_cut(state, ev.ledger, frozenset(), local_date(now), None)
    last = max(e.booked_on for e in state.entries)
    assert cut == Cut(last + timedelta(days=1), 6, "2026-03")
    # a payment booked into the settled past makes the cut unusable: the whole ledger is read
    assert not usable(cut, 7, (), False, local_date(now))
    # so does a second invoice for a settled month, a reversal, or a payment plan
    april = charge("2026-03", rent_due_date(2026, 4))
    assert not usable(cut, 6, (april,), False, local_date(now))
    bounced = LedgerEntry("r1", "reversal", RENT, date(2026, 3, 10), payment_id="p3")
    assert not usable(cut, 6, (bounced,), False, local_date(now))
    assert not usable(cut, 6, (), True, local_date(now))
    assert usable(cut, 6, (charge("2026-04", rent_due_date(2026, 4)),), False, local_date(now))


def test_a_lease_with_a_signalled_month_is_not_cut_past_it() -> None:
    sc = Scenario(policy=NO_LAG)
    due = rent_due_date(2026, 2)
    sc.add(at(due - timedelta(days=14)), charge("2026-02", due))
    sc.add(at(due - timedelta(days=2)), payment("p1", RENT, due - timedelta(days=2)))
    now = at(date(2026, 2, 20))
    state = sc._state(now)
    seen = frozenset({"L1:2026-02:rent_reminder"})
    ev = evaluate(state, sc.policy, now, seen)
    assert settled_cut(state, ev.ledger, seen, local_date(now), None) is None
    assert settled_cut(state, ev.ledger, frozenset(), local_date(now), None) is not None


def test_two_charges_of_one_invoice_id_are_not_cut() -> None:
    sc = Scenario(policy=NO_LAG)
    due = rent_due_date(2026, 2)
    sc.add(at(due - timedelta(days=14)), charge("2026-02", due))
    sc.add(at(due - timedelta(days=14)), replace(charge("2026-02", due), entry_id="again"))
    sc.add(at(due - timedelta(days=2)), payment("p1", 2 * RENT, due - timedelta(days=2)))
    now = at(date(2026, 2, 20))
    state = sc._state(now)
    ev = evaluate(state, sc.policy, now, frozenset())
    assert ev.arrears_ore == 0
    assert settled_cut(state, ev.ledger, frozenset(), local_date(now), None) is None
