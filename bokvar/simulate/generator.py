"""Synthetic households and their rent-ledger and complaint history. Pure and seeded.

Behaviour shares (defaults) follow Swedish practice figures loosely: most households pay
on time, some pay a few days late, a few pay part, a few stop paying; a small share has
disturbance complaints.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from shared.calendar import rent_due_date
from shared.clock import STOCKHOLM

Behaviour = Literal["on_time", "late", "partial", "stops_paying"]
MUNICIPALITIES = ("0180", "1480", "1280", "0380", "2480")
HOUSEHOLDS = (
    "single_adult",
    "single_adult",
    "single_with_children",
    "couple",
    "couple_with_children",
)
FIRST = ("Anna", "Erik", "Sara", "Ali", "Maria", "Johan", "Fatima", "Lars", "Elin", "Omar")
LAST = ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson")


@dataclass(frozen=True)
class Shares:
    """How households behave."""

    late: float = 0.08
    partial: float = 0.03
    stops_paying: float = 0.03
    disturbance: float = 0.01


@dataclass
class Household:
    """One lease and how it pays."""

    lease_id: str
    rent_ore: int
    behaviour: Behaviour
    disturbs: bool
    lease: dict[str, Any]
    late_days: int = 0


@dataclass(order=True)
class SimEvent:
    """One ERP event at the simulated instant it happens."""

    at: datetime
    seq: int
    item: dict[str, Any] = field(compare=False)


def luhn_digit(nine: str) -> int:
    """Return the Luhn check digit of the nine digits YYMMDDNNN."""
    total = 0
    for i, ch in enumerate(nine):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


def personnummer(rng: random.Random) -> str:
    """Return a valid synthetic personnummer YYYYMMDD-NNNC of an adult."""
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
    serial = f"{rng.randrange(0, 1000):03d}"
    nine = born.strftime("%y%m%d") + serial
    return f"{born:%Y%m%d}-{serial}{luhn_digit(nine)}"


def households(n: int, *, seed: int, shares: Shares, org: str, start: date) -> list[Household]:
    """Return `n` seeded households with leases that started before `start`."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        behaviour: Behaviour = (
            "late"
            if r < shares.late
            else "partial"
            if r < shares.late + shares.partial
            else "stops_paying"
            if r < shares.late + shares.partial + shares.stops_paying
            else "on_time"
        )
        lease_id = f"{org}-L{i:06d}"
        rent = rng.randrange(5_500, 14_500) * 100
        lease = {
            "type": "lease",
            "event_id": f"lease-{lease_id}",
            "lease_id": lease_id,
            "property_id": f"P{i // 40:04d}",
            "area": f"Område {i % 7}",
            "municipality_code": rng.choice(MUNICIPALITIES),
            "monthly_rent_ore": rent,
            "start_date": (start - timedelta(days=rng.randrange(60, 3000))).isoformat(),
            "end_date": None,
            "team": f"team-{i % 3}",
            "household_type": rng.choice(HOUSEHOLDS),
            "due_day": None,
            "tenants": [
                {
                    "tenant_id": f"T{i:06d}",
                    "personnummer": personnummer(rng),
                    "phone": f"+4670{rng.randrange(0, 10**7):07d}",
                    "language": "sv" if rng.random() < 0.85 else "en",
                    "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                }
            ],
        }
        out.append(
            Household(
                lease_id,
                rent,
                behaviour,
                rng.random() < shares.disturbance,
                lease,
                late_days=rng.randrange(2, 13),
            )
        )
    return out


def _at(day: date, hour: int, rng: random.Random) -> datetime:
    local = datetime.combine(day, time(hour, rng.randrange(0, 60)), tzinfo=STOCKHOLM)
    return local.astimezone(UTC)


def periods(months: int, today: date) -> list[tuple[int, int]]:
    """Return the `months` most recent rent periods whose due date is on or before `today`."""
    year, month = today.year, today.month + 1
    if month == 13:
        year, month = year + 1, 1
    out: list[tuple[int, int]] = []
    while len(out) < months:
        if rent_due_date(year, month) <= today:
            out.append((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return sorted(out)


def periods_ahead(months: int, start: date) -> list[tuple[int, int]]:
    """Return the next `months` rent periods whose invoice (25 days before due) is after `start`."""
    year, month = start.year, start.month
    out: list[tuple[int, int]] = []
    while len(out) < months:
        if rent_due_date(year, month) - timedelta(days=25) > start:
            out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def history(homes: list[Household], *, months: int, today: date, seed: int) -> list[SimEvent]:
    """Return every event of the `months` rent periods up to `today`, in time order."""
    events = plan(homes, periods(months, today), seed=seed)
    return [e for e in events if e.at.astimezone(STOCKHOLM).date() <= today]


def plan(homes: list[Household], ps: list[tuple[int, int]], *, seed: int) -> list[SimEvent]:
    """Return every event of the rent periods `ps`, in time order."""
    rng = random.Random(seed + 1)
    events: list[SimEvent] = []
    seq = iter(range(10**9))
    first_due = rent_due_date(*ps[0])
    for h in homes:
        events.append(SimEvent(_at(first_due - timedelta(days=40), 9, rng), next(seq), h.lease))
        for year, month in ps:
            events.extend(_period_events(h, year, month, rng, seq))
        if h.disturbs:
            events.extend(_complaints(h, first_due, rng, seq))
    return sorted(events)


def _period_events(
    h: Household, year: int, month: int, rng: random.Random, seq: Iterator[int]
) -> list[SimEvent]:
    due = rent_due_date(year, month)
    period = f"{year:04d}-{month:02d}"
    invoice = f"INV-{h.lease_id}-{period}"
    out = [
        SimEvent(
            _at(due - timedelta(days=25), 7, rng),
            next(seq),
            {
                "type": "charge",
                "event_id": f"charge-{invoice}",
                "lease_id": h.lease_id,
                "invoice_id": invoice,
                "ocr": None,
                "period": period,
                "amount_ore": h.rent_ore,
            },
        )
    ]
    if h.behaviour == "stops_paying":
        return out
    paid_on = {
        "on_time": due - timedelta(days=rng.randrange(0, 6)),
        "late": due + timedelta(days=h.late_days),
        "partial": due - timedelta(days=rng.randrange(0, 3)),
    }[h.behaviour]
    amount = h.rent_ore if h.behaviour != "partial" else h.rent_ore // 2
    out.append(
        SimEvent(
            _at(paid_on, 10, rng),
            next(seq),
            {
                "type": "payment",
                "event_id": f"pay-{invoice}",
                "lease_id": h.lease_id,
                "payment_id": f"PAY-{invoice}",
                "amount_ore": amount,
                "booked_date": paid_on.isoformat(),
                "reference": h.lease_id,
            },
        )
    )
    return out


def _complaints(
    h: Household, start: date, rng: random.Random, seq: Iterator[int]
) -> list[SimEvent]:
    out = []
    day = start + timedelta(days=rng.randrange(0, 20))
    for k in range(2):
        when = _at(day + timedelta(days=7 * k), 22, rng)
        out.append(
            SimEvent(
                when,
                next(seq),
                {
                    "type": "complaint",
                    "event_id": f"cmp-{h.lease_id}-{k}",
                    "lease_id": h.lease_id,
                    "complaint_id": f"C-{h.lease_id}-{k}",
                    "category": "disturbance",
                    "occurred_at": when.isoformat(),
                    "description": "Hög musik efter klockan 22 enligt grannar.",
                },
            )
        )
    return out


def watermarks(org: str, first: date, last: date) -> list[SimEvent]:
    """Return the ERP's nightly word, at 23:30 each day, that the day's payments are all sent.

    A real ERP sends it after its last payment file of the day was accepted; the rules
    hold late-rent stages until it covers the day before the stage.
    """
    out, day = [], first
    while day <= last:
        at = datetime.combine(day, time(23, 30), tzinfo=STOCKHOLM).astimezone(UTC)
        item = {"type": "watermark", "event_id": f"wm-{org}-{day}", "booked_through": str(day)}
        out.append(SimEvent(at, -1, item))
        day += timedelta(days=1)
    return out
