"""What every part of the evaluation shares: the result type and small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from rules.engine.ledger import Ledger
from rules.engine.risk import Risk
from rules.engine.state import Deadline, LeaseState, RetractionDraft, SignalDraft
from rules.policy import Policy, Stage
from shared.calendar import add_working_days, is_working_day, statutory_period_end
from shared.clock import local_midnight


@dataclass(slots=True)
class Evaluation:
    """What the engine concluded about a lease at one instant."""

    today: date
    ledger: Ledger
    risk: Risk
    arrears_ore: int = 0  # ledger.arrears_ore(today), which most tracks ask for
    late_payments_12m: int = 0  # ledger.late_payments(today)
    signals: list[SignalDraft] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    recovery: dict[str, Any] | None = None
    retractions: list[RetractionDraft] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)


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


def stage_date(due: date, stage: Stage) -> date:
    """Return the day a stage is reached for a charge due on `due`.

    A statutory stage fires the day after its period (offset_days - 1 days) ends, and
    that period ends on a working day by lag (1930:173).
    """
    return _stage_date(due, stage.offset_days, stage.unit, stage.statutory_period)


# (policy, due date) -> per ladder stage: (stage, stage day, local midnight of that day)
Schedule = tuple[tuple[Stage, date, datetime], ...]
_SCHEDULES: dict[tuple[int, date], tuple[Policy, Schedule]] = {}


def ladder_schedule(policy: Policy, due: date) -> Schedule:
    """Return each ladder stage of `policy` with its day for a charge due on `due`.

    Memoised per policy object and due date: a batch or sweep chunk evaluates many charges
    of the same few due dates, and the stage days depend on nothing else.
    """
    hit = _SCHEDULES.get((id(policy), due))
    if hit is not None and hit[0] is policy:
        return hit[1]
    if len(_SCHEDULES) >= 4096:
        _SCHEDULES.clear()
    days = [(stage, stage_date(due, stage)) for stage in policy.ladder]
    schedule = tuple((stage, on, midnight(on)) for stage, on in days)
    _SCHEDULES[(id(policy), due)] = (policy, schedule)
    return schedule


@lru_cache(maxsize=8192)
def _stage_date(due: date, offset: int, unit: str, statutory: bool) -> date:
    # memoised on the stage's plain fields: hashing the (pydantic) Stage costs more than this
    if statutory:
        return statutory_period_end(_offset(due, offset - 1, unit)) + timedelta(days=1)
    return _offset(due, offset, unit)


@lru_cache(maxsize=4096)
def _offset(due: date, offset: int, unit: str) -> date:
    if unit == "calendar":
        return due + timedelta(days=offset)
    if offset >= 0:
        return add_working_days(due, offset)
    day, left = due, -offset
    while left:
        day -= timedelta(days=1)
        left -= is_working_day(day)
    return day
