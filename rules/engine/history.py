"""Settled history: the start of a lease's ledger that can no longer change an evaluation.

`evaluate` folds a lease's whole ledger, which grows by a charge and a payment a month.
Reading and folding it was most of rules' work at month-end (bench/RESULTS.md, pass 7).
A `Cut` names a day C such that evaluating only the entries booked on or after C gives
what evaluating all of them gives (the same signals, retractions, deadlines and risk), on
C - 1 and every later day, for as long as `usable` says so at load time:

- before C the ledger balances: every charge booked before C is paid, nothing is left
  over. With charges and payments only (no credit, no reversal anywhere in what was
  read), a charge once paid stays paid and money is allocated oldest charge first, so
  later entries are allocated exactly as if the ledger started at C;
- each of those charges was paid on or before its due date, or was due more than 400 days
  before C: none of them can count among the late payments of the last 12 months;
- no signal was ever emitted for the period of any of those charges (no ladder stage,
  retraction or arrears_cleared refers to them, nor can one later: they are paid);
- the lease has no payment plan (a plan counts payments from the day it was agreed).

At load time (`usable`), the entries booked before C must still be the `entries` that were
counted (none booked into the past since), no credit or reversal may have come, no charge
read may be for `period` or earlier (a second charge of a settled month), the lease still
has no plan, and the evaluation day must not be before C - 1. Otherwise the caller reads
the whole ledger, as it would without a cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from rules.engine.ledger import Ledger, _entry_order
from rules.engine.state import LeaseState, LedgerEntry

# a charge paid late counts among the late payments for 365 days after its due date
LATE_MEMORY = timedelta(days=400)
_SIMPLE = frozenset({"charge", "payment"})


@dataclass(frozen=True, slots=True)
class Cut:
    """Entries booked before `before` are settled history (`entries` of them, the latest
    charge of period `period`)."""

    before: date
    entries: int
    period: str


def usable(
    cut: Cut, counted: int, entries: Sequence[LedgerEntry], has_plans: bool, today: date
) -> bool:
    """Tell whether `entries` (those booked on or after `cut.before`) may stand for the
    whole ledger at `today`; `counted`: the entries booked before it now."""
    if counted != cut.entries or has_plans or today < cut.before - timedelta(days=1):
        return False
    for e in entries:
        if e.kind not in _SIMPLE or (e.kind == "charge" and (e.period or "") <= cut.period):
            return False
    return True


def settled_cut(
    state: LeaseState,
    ledger: Ledger,
    emitted: frozenset[str],
    today: date,
    base: Cut | None,
) -> Cut | None:
    """The latest cut of the lease at `today`, or None.

    `state.entries`: the whole ledger (`base` None) or those booked on or after `base.before`
    (`base` usable); `ledger`: `evaluate`'s fold of them at `today`. A cut moves forward only:
    with no later one, `base` stands.
    """
    entries = state.entries
    if state.plans or not entries or any(e.kind not in _SIMPLE for e in entries):
        return None if base is None else base  # base: checked usable on these entries
    invoices = {c.invoice_id: c for c in ledger.charges}
    if len(invoices) != len(ledger.charges):  # two charges of one invoice id: not matched
        return base
    paid = {k: c for k, c in invoices.items() if c.open_ore == 0 and c.paid_on}
    ordered = sorted(entries, key=_entry_order)
    # the smallest charge period from each position on (a settled period must precede it)
    later_min: list[str | None] = [None] * (len(ordered) + 1)
    for i in range(len(ordered) - 1, -1, -1):
        e, after = ordered[i], later_min[i + 1]
        p = e.period if e.kind == "charge" else None
        later_min[i] = p if p is not None and (after is None or p < after) else after
    prefix = f"{state.lease_id}:"
    signalled = {s[len(prefix) :].split(":", 1)[0] for s in emitted if s.startswith(prefix)}
    best: Cut | None = None
    balance = 0
    period = base.period if base is not None else ""
    counted = base.entries if base is not None else 0
    last_day = today + timedelta(days=1)  # a cut after the entries booked by today, at most
    for i, e in enumerate(ordered):
        if i and e.booked_on != ordered[i - 1].booked_on and balance == 0:
            after = later_min[i]  # the charges booked from here on
            if after is None or period < after:
                best = Cut(min(e.booked_on, last_day), counted + i, period)
        if e.booked_on > today:
            break
        if e.kind == "payment":
            balance -= e.amount_ore
            continue
        balance += e.amount_ore
        charge = paid.get(e.invoice_id or e.entry_id)
        # the earliest cut that would hold this charge
        cut_at = ordered[i + 1].booked_on if i + 1 < len(ordered) else e.booked_on
        if (
            charge is None  # still open at `today`: no cut after it
            or e.period is None
            or e.period in signalled
            or charge.paid_on is None
            or (charge.paid_on > charge.due_date and charge.due_date + LATE_MEMORY >= cut_at)
        ):
            break
        period = max(period, e.period)
    else:
        if balance == 0:  # every entry is booked by today: a cut may follow the last one
            best = Cut(ordered[-1].booked_on + timedelta(days=1), counted + len(ordered), period)
    return best if best is not None else base
