"""What-if: replay lease histories day by day under two policies and compare who is flagged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from rules.engine.evaluate import evaluate
from rules.engine.state import LeaseState
from rules.policy import Policy
from shared.clock import local_midnight


@dataclass(frozen=True, slots=True)
class Flag:
    """A signal a policy would have raised on a day."""

    lease_id: str
    signal_id: str
    signal: str
    rule: str
    on: date


def as_of(state: LeaseState, day: date) -> LeaseState:
    """Return what was known about a lease on `day` (facts dated later are dropped)."""
    return replace(
        state,
        entries=tuple(e for e in state.entries if e.booked_on <= day),
        complaints=tuple(c for c in state.complaints if c.occurred_on <= day),
        warnings=tuple(w for w in state.warnings if w.issued_on <= day),
        legal_steps=tuple(s for s in state.legal_steps if s.step_date <= day),
        plans=tuple(p for p in state.plans if p.agreed_on <= day),
    )


def replay(state: LeaseState, policy: Policy, start: date, end: date) -> list[Flag]:
    """Return the signals `policy` raises for `state` on each day of [start, end].

    Whatever the policy would already have raised before `start` counts as history.
    """
    before = local_midnight(start - timedelta(days=1)) + timedelta(hours=23)
    emitted = {
        s.signal_id
        for s in evaluate(
            as_of(state, start - timedelta(days=1)), policy, before, frozenset()
        ).signals
    }
    flags: list[Flag] = []
    day = start
    while day <= end:
        now = local_midnight(day) + timedelta(hours=23, minutes=59)
        for s in evaluate(as_of(state, day), policy, now, frozenset(emitted)).signals:
            emitted.add(s.signal_id)
            flags.append(Flag(state.lease_id, s.signal_id, s.signal, s.rule, day))
        day += timedelta(days=1)
    return flags


def compare(
    states: Iterable[LeaseState], active: Policy, candidate: Policy, start: date, end: date
) -> dict[str, list[Flag]]:
    """Replay every lease under both policies; return flags under each and the differences."""
    out: dict[str, list[Flag]] = {"active": [], "candidate": []}
    for state in states:
        out["active"] += replay(state, active, start, end)
        out["candidate"] += replay(state, candidate, start, end)
    keys_a = {(f.lease_id, f.signal_id) for f in out["active"]}
    keys_c = {(f.lease_id, f.signal_id) for f in out["candidate"]}
    out["only_active"] = [f for f in out["active"] if (f.lease_id, f.signal_id) not in keys_c]
    out["only_candidate"] = [f for f in out["candidate"] if (f.lease_id, f.signal_id) not in keys_a]
    return out
