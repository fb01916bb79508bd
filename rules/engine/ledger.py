"""Ledger application: charges with open amounts, payments to the oldest open charge first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from rules.engine.state import LedgerEntry

_KIND_ORDER = {"charge": 0, "credit": 1, "payment": 2, "reversal": 3}


@dataclass(slots=True)
class ChargeStatus:
    """A rent charge and how much of it is still open."""

    invoice_id: str
    period: str
    due_date: date
    amount_ore: int
    open_ore: int
    paid_on: date | None = None
    known_at: datetime | None = None

    def days_late(self, today: date) -> int:
        """Days after the due date it was paid, or is still unpaid (0 when on time)."""
        end = self.paid_on if self.open_ore == 0 and self.paid_on else today
        return max(0, (end - self.due_date).days)


@dataclass(slots=True)
class Ledger:
    """The result of applying a lease's ledger entries up to a date."""

    charges: list[ChargeStatus] = field(default_factory=list)
    unallocated_ore: int = 0
    charged_ore: int = 0
    paid_ore: int = 0
    credited_ore: int = 0
    reversed_ore: int = 0
    allocations: list[tuple[ChargeStatus, int]] = field(default_factory=list)

    @property
    def balance_ore(self) -> int:
        """What the household owes in total (negative: paid in advance)."""
        return self.charged_ore - self.paid_ore - self.credited_ore + self.reversed_ore

    def overdue(self, today: date) -> list[ChargeStatus]:
        """Open charges whose due date has passed, oldest first."""
        return [c for c in self.charges if c.open_ore > 0 and c.due_date < today]

    def arrears_ore(self, today: date) -> int:
        """Sum of the open amounts of overdue charges."""
        return sum(c.open_ore for c in self.overdue(today))

    def by_period(self, period: str) -> ChargeStatus | None:
        """Return the charge of `period`, if any."""
        return next((c for c in self.charges if c.period == period), None)

    def late_payments(self, today: date, *, days: int = 365) -> int:
        """Charges due in the last `days` days that were paid late or are still overdue."""
        since = today - timedelta(days=days)
        late = 0
        for c in self.charges:
            # c.days_late(today) > 0, inlined (hot: every evaluation asks)
            if since < c.due_date < today:
                end = c.paid_on if c.open_ore == 0 and c.paid_on else today
                late += end > c.due_date
        return late


def apply_entries(entries: Iterable[LedgerEntry], today: date) -> Ledger:
    """Apply every entry booked on or before `today`, in booking order."""
    ledger = Ledger()
    known = [e for e in entries if e.booked_on <= today]
    if len(known) > 1:
        known.sort(key=_entry_order)
    payments: dict[str, LedgerEntry] | None = None  # for reversals: built at the first one
    for entry in known:
        if entry.kind == "charge":
            _add_charge(ledger, entry)
        elif entry.kind == "payment":
            ledger.paid_ore += entry.amount_ore
            ledger.unallocated_ore += entry.amount_ore
        elif entry.kind == "credit":
            ledger.credited_ore += entry.amount_ore
            _credit_invoice(ledger, entry)
        else:
            if payments is None:
                payments = {e.entry_id: e for e in known if e.kind == "payment"}
            original = payments.get(entry.payment_id or "")
            amount = min(entry.amount_ore, original.amount_ore) if original else entry.amount_ore
            ledger.reversed_ore += amount
            _take_back(ledger, amount)
        if ledger.unallocated_ore > 0:  # else `_allocate` would return at once
            _allocate(ledger, entry.booked_on)
    return ledger


def _entry_order(e: LedgerEntry) -> tuple[date, int, int, str]:
    return (e.booked_on, _KIND_ORDER[e.kind], e.seq, e.entry_id)


def _add_charge(ledger: Ledger, entry: LedgerEntry) -> None:
    due, period = entry.due_date, entry.period
    assert due is not None and period is not None
    amount = entry.amount_ore
    ledger.charged_ore += amount
    invoice = entry.invoice_id or entry.entry_id
    # positional: invoice_id, period, due_date, amount_ore, open_ore, paid_on, known_at
    charge = ChargeStatus(invoice, period, due, amount, amount, None, entry.known_at)
    charges = ledger.charges
    # charges mostly arrive in due order: sort (stable) only when this one is not the last
    if charges:
        last = charges[-1]
        charges.append(charge)
        if (last.due_date, last.period, last.invoice_id) > (due, period, invoice):
            charges.sort(key=_charge_order)
    else:
        charges.append(charge)


def _charge_order(c: ChargeStatus) -> tuple[date, str, str]:
    return (c.due_date, c.period, c.invoice_id)


def _credit_invoice(ledger: Ledger, entry: LedgerEntry) -> None:
    target = next(
        (c for c in ledger.charges if entry.invoice_id and c.invoice_id == entry.invoice_id), None
    )
    amount = entry.amount_ore
    if target is not None and target.open_ore > 0:
        used = min(amount, target.open_ore)
        _pay(ledger, target, used, entry.booked_on)
        amount -= used
    ledger.unallocated_ore += amount


def _pay(ledger: Ledger, charge: ChargeStatus, amount: int, on: date) -> None:
    charge.open_ore -= amount
    if charge.open_ore == 0:
        charge.paid_on = on
    ledger.allocations.append((charge, amount))


def _allocate(ledger: Ledger, on: date) -> None:
    for charge in ledger.charges:
        if ledger.unallocated_ore <= 0:
            return
        if charge.open_ore > 0:
            used = min(charge.open_ore, ledger.unallocated_ore)
            ledger.unallocated_ore -= used
            _pay(ledger, charge, used, on)


def _take_back(ledger: Ledger, amount: int) -> None:
    """Undo `amount` of money: first unallocated, then the newest allocations (re-open)."""
    from_pool = min(amount, ledger.unallocated_ore)
    ledger.unallocated_ore -= from_pool
    amount -= from_pool
    refs = ledger.allocations
    while amount > 0 and refs:
        charge, allocated = refs.pop()
        back = min(allocated, amount)
        charge.open_ore += back
        charge.paid_on = None
        amount -= back
        if allocated > back:
            refs.append((charge, allocated - back))
    ledger.unallocated_ore -= amount  # more reversed than was ever paid: owed in advance
