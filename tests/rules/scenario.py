"""Drive the pure engine through a timeline the way the consumer and the sweep would."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from rules.engine import (
    Complaint,
    Evaluation,
    LeaseState,
    LedgerEntry,
    LegalStep,
    Plan,
    RetractionDraft,
    SignalDraft,
    Warning,
    Watermark,
    evaluate,
)
from rules.policy import Policy, Settlement, load_policy
from shared.clock import STOCKHOLM, local_midnight

POLICY = load_policy()
# the ladder's own timing, as if every payment reached Bokvar the day it was booked
NO_LAG = POLICY.model_copy(update={"settlement": Settlement(lag_banking_days=0)})
Item = LedgerEntry | Complaint | Warning | LegalStep | Plan


def at(day: date, hour: int = 10) -> datetime:
    """Return `hour`:00 Stockholm time on `day`."""
    return datetime.combine(day, time(hour), tzinfo=STOCKHOLM)


def charge(
    period: str, due: date, amount: int = 800_000, *, booked: date | None = None
) -> LedgerEntry:
    """A rent charge, booked 14 days before the due date unless told otherwise."""
    return LedgerEntry(
        f"inv-{period}",
        "charge",
        amount,
        booked or due - timedelta(days=14),
        period=period,
        due_date=due,
        invoice_id=f"inv-{period}",
    )


def payment(pid: str, amount: int, on: date) -> LedgerEntry:
    """A payment booked on `on`."""
    return LedgerEntry(pid, "payment", amount, on)


@dataclass
class Scenario:
    """A lease whose events arrive at given instants; sweeps run at every local midnight."""

    policy: Policy = POLICY
    rent: int = 800_000
    timeline: list[tuple[datetime, Item]] = field(default_factory=list)
    emitted: dict[str, SignalDraft] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    retracted: dict[str, RetractionDraft] = field(default_factory=dict)
    watermarks: list[Watermark] = field(default_factory=list)

    def add(self, when: datetime, item: Item) -> Scenario:
        """Let `item` arrive at `when`."""
        self.timeline.append((when, item))
        return self

    def _state(self, upto: datetime) -> LeaseState:
        arrived = [(w, i) for w, i in sorted(self.timeline, key=lambda x: x[0]) if w <= upto]
        items = [i for _, i in arrived]
        return LeaseState(
            lease_id="L1",
            org_id="org",
            monthly_rent_ore=self.rent,
            entries=tuple(
                replace(i, seq=n, known_at=w)
                for n, (w, i) in enumerate(arrived)
                if isinstance(i, LedgerEntry)
            ),
            complaints=tuple(i for i in items if isinstance(i, Complaint)),
            warnings=tuple(i for i in items if isinstance(i, Warning)),
            legal_steps=tuple(i for i in items if isinstance(i, LegalStep)),
            plans=tuple(i for i in items if isinstance(i, Plan)),
        )

    def watermark(self, booked_through: date, received_at: datetime) -> Scenario:
        """Let the organisation's ledger watermark `booked_through` arrive at `received_at`."""
        self.watermarks.append(Watermark(booked_through, received_at))
        return self

    def _check(self, now: datetime) -> None:
        known = [w for w in self.watermarks if w.received_at <= now]
        watermark = max(known, key=lambda w: w.booked_through) if known else None
        seen = frozenset(self.emitted) | frozenset(self.retracted)
        self.record(evaluate(self._state(now), self.policy, now, seen, watermark))

    def record(self, ev: Evaluation) -> None:
        """Note what an evaluation emitted and retracted, in order, as the consumer does."""
        for s in ev.signals:
            self.emitted[s.signal_id] = s
            self.order.append(s.signal_id)
        for r in ev.retractions:
            self.retracted[r.retraction_id] = r
            self.order.append(r.retraction_id)

    def run(self, start: date, end: date) -> list[str]:
        """Run from `start` to `end` (inclusive); return the signal ids in emission order."""
        instants = [
            local_midnight(start + timedelta(days=n)) for n in range((end - start).days + 1)
        ]
        instants += [w for w, _ in self.timeline] + [w.received_at for w in self.watermarks]
        for now in sorted(set(instants)):
            if now.date() <= end + timedelta(days=1):
                self._check(now)
        return self.order

    def signals(self) -> list[str]:
        """Return the signal names emitted, in order (a retraction as `retracted:<signal>`)."""
        return [
            self.emitted[i].signal if i in self.emitted else f"retracted:{self.retracted[i].signal}"
            for i in self.order
        ]

    def standing(self) -> list[str]:
        """Return the signals emitted and not retracted, in order."""
        return [
            self.emitted[i].signal
            for i in self.order
            if i in self.emitted and f"{i}:retracted" not in self.retracted
        ]
