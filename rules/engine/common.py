"""What every part of the evaluation shares: the result type and small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from rules.engine.ledger import Ledger
from rules.engine.risk import Risk
from rules.engine.state import Deadline, LeaseState, SignalDraft
from shared.clock import local_midnight


@dataclass(slots=True)
class Evaluation:
    """What the engine concluded about a lease at one instant."""

    today: date
    ledger: Ledger
    risk: Risk
    signals: list[SignalDraft] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    recovery: dict[str, Any] | None = None


def sid(state: LeaseState, ref: str, stage: str) -> str:
    """Return the deterministic signal id `{lease}:{ref}:{stage}`."""
    return f"{state.lease_id}:{ref}:{stage}"


@lru_cache(maxsize=4096)
def midnight(day: date) -> datetime:
    """Return local midnight of `day` (memoised: the engine asks for few distinct days)."""
    return local_midnight(day)


def add_deadline(ev: Evaluation, kind: str, ref: str, stage: str, due_on: date) -> None:
    """Record a future instant at which `stage` may fire."""
    ev.deadlines.append(Deadline(kind, ref, stage, due_on, midnight(due_on)))
