"""The simulator's synthetic ERP history."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date

from bokvar.simulate.generator import Shares, history, households, luhn_digit, periods, personnummer
from shared.calendar import rent_due_date

TODAY = date(2026, 11, 23)


def test_personnummer_has_a_valid_luhn_digit() -> None:
    assert luhn_digit("811218987") == 6  # Skatteverket's example 811218-9876
    rng = random.Random(7)
    for _ in range(200):
        p = personnummer(rng)
        digits = p[2:8] + p[9:12]
        assert int(p[-1]) == luhn_digit(digits)


def test_periods_are_the_most_recent_ones_already_due() -> None:
    assert periods(2, TODAY) == [(2026, 10), (2026, 11)]
    assert periods(3, date(2026, 11, 30)) == [(2026, 10), (2026, 11), (2026, 12)]


def test_history_is_in_time_order_and_follows_the_behaviours() -> None:
    homes = households(400, seed=3, shares=Shares(late=0.2, stops_paying=0.1), org="o", start=TODAY)
    events = history(homes, months=2, today=TODAY, seed=3)
    assert [e.at for e in events] == sorted(e.at for e in events)
    behaviour = {h.lease_id: h.behaviour for h in homes}
    payments = Counter(e.item["lease_id"] for e in events if e.item["type"] == "payment")
    charges = Counter(e.item["lease_id"] for e in events if e.item["type"] == "charge")
    assert all(charges[h.lease_id] == 2 for h in homes)
    assert all(payments[lid] == 0 for lid, b in behaviour.items() if b == "stops_paying")
    assert all(payments[lid] == 2 for lid, b in behaviour.items() if b in ("on_time", "late"))
    due = rent_due_date(2026, 11)
    for e in events:
        if e.item["type"] == "payment" and e.item["booked_date"] > due.isoformat():
            assert behaviour[e.item["lease_id"]] == "late"
    assert 40 <= sum(b == "late" for b in behaviour.values()) <= 120
    assert all(e.at.date() <= TODAY for e in events)
