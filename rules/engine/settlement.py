"""Settlement: hold ladder stages until the ledger is complete; retract what it disproves.

A payment reaches Bokvar after it was booked: the ERP sends its bank file a day later,
or sends a whole history at once. A late-rent stage due on day S is about payments
booked before S, so it waits until those can all be known (`release_day`), and a stage
that a payment booked before S proves wrong after all is withdrawn (`retractions`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from rules.engine.common import Evaluation, sid, stage_date
from rules.engine.ledger import ChargeStatus, apply_entries
from rules.engine.reasons import reasons
from rules.engine.state import LeaseState, RetractionDraft, Watermark
from rules.policy import Policy, Stage
from shared.calendar import add_working_days
from shared.clock import local_date
from shared.events.signal import RetractionReason
from shared.format import format_date

RETRACTED = ":retracted"


def release_day(
    stage_day: date, known_at: datetime | None, policy: Policy, watermark: Watermark | None
) -> date | None:
    """Return the first day a stage due on `stage_day` may fire (None: when a watermark says).

    With a watermark the organisation's word decides: every payment booked before the
    stage day has been sent, and the watermark came after the charge (a history sent
    later is not covered by an earlier watermark). Without one, `lag_banking_days`
    banking days after the day before the stage, and after the day the charge arrived
    (`known_at`; None: long known). A watermark that does not cover the stage holds it at
    most `watermark_stale_after_banking_days` banking days past that lag day.
    """
    needed = stage_day - _DAY
    arrived = _arrival_day(known_at) if known_at is not None else needed
    by_lag = _working_days_after(max(needed, arrived), policy.settlement.lag_banking_days)
    if watermark is None:
        return by_lag + _DAY
    if covered(stage_day, known_at, watermark):
        return stage_day
    stale_after = policy.settlement.watermark_stale_after_banking_days
    if stale_after is None:
        return None
    return _working_days_after(by_lag, stale_after) + _DAY


_DAY = timedelta(days=1)


@lru_cache(maxsize=4096)
def _working_days_after(day: date, count: int) -> date:
    # memoised: every held stage asks, for few distinct days
    return add_working_days(day, count)


# (instant, its local date) of the last `_arrival_day` call: the stages of one charge ask
# for the same `known_at` object in turn (the reference kept makes `is` safe; one tuple,
# read once, so a concurrent caller never pairs an instant with another's date)
_LAST_ARRIVAL: list[tuple[datetime | None, date | None]] = [(None, None)]


def _arrival_day(known_at: datetime) -> date:
    instant, day = _LAST_ARRIVAL[0]
    if instant is not known_at or day is None:
        day = local_date(known_at)
        _LAST_ARRIVAL[0] = (known_at, day)
    return day


def covered(stage_day: date, known_at: datetime | None, watermark: Watermark) -> bool:
    """Tell whether `watermark` vouches for every payment booked before `stage_day`."""
    after_charge = known_at is None or watermark.received_at > known_at
    return after_charge and watermark.booked_through >= stage_day - timedelta(days=1)


def settlement_inputs(
    charge: ChargeStatus, stage_day: date, policy: Policy, watermark: Watermark | None
) -> dict[str, Any]:
    """Return what the release of a stage rested on (for the signal's inputs)."""
    if watermark is not None and covered(stage_day, charge.known_at, watermark):
        return {"settled_by": "watermark", "watermark": watermark.booked_through.isoformat()}
    out: dict[str, Any] = {
        "settled_by": "settlement_lag",
        "lag_banking_days": policy.settlement.lag_banking_days,
        "charge_known_on": local_date(charge.known_at).isoformat() if charge.known_at else None,
    }
    if watermark is not None:
        out["stale_watermark"] = watermark.booked_through.isoformat()
        out["stale_after_banking_days"] = policy.settlement.watermark_stale_after_banking_days
    return out


def retractions(
    state: LeaseState, policy: Policy, ev: Evaluation, emitted: frozenset[str], now: datetime
) -> list[RetractionDraft]:
    """Withdraw ladder signals of charges that payments booked before the stage day paid."""
    out: list[RetractionDraft] = []
    if not emitted:
        return out  # only an emitted signal can be withdrawn
    for charge in ev.ledger.charges:
        if charge.open_ore > 0 or charge.paid_on is None:
            continue
        for stage in policy.ladder:
            signal_id = sid(state, charge.period, stage.name)
            if signal_id not in emitted or signal_id + RETRACTED in emitted:
                continue
            on = stage_date(charge.due_date, stage)
            if charge.paid_on >= on:
                continue  # paid on or after the stage day: the signal was right
            before = apply_entries(state.entries, on - timedelta(days=1)).by_period(charge.period)
            if before is not None and before.open_ore == 0:
                out.append(_retraction(signal_id, stage, charge, before, on, now))
    return out


def _retraction(
    signal_id: str,
    stage: Stage,
    charge: ChargeStatus,
    before: ChargeStatus,
    on: date,
    now: datetime,
) -> RetractionDraft:
    paid_on = before.paid_on or charge.paid_on
    assert paid_on is not None
    code: RetractionReason = (
        "paid_on_time" if paid_on <= charge.due_date else "payment_booked_before_stage"
    )
    sv, en = reasons(
        f"retracted_{code}",
        period=charge.period,
        paid_on=format_date(paid_on),
        due_date=format_date(charge.due_date),
        stage_date=format_date(on),
    )
    return RetractionDraft(
        retraction_id=signal_id + RETRACTED,
        signal_id=signal_id,
        signal=stage.signal,
        rule=f"ladder.{stage.name}",
        occurred_at=now,
        reason_code=code,
        reason_sv=sv,
        reason_en=en,
        period=charge.period,
        due_date=charge.due_date,
        inputs={
            "invoice_id": charge.invoice_id,
            "paid_on": paid_on.isoformat(),
            "stage_date": on.isoformat(),
            "evaluated_on": local_date(now).isoformat(),
        },
    )


def retracted(emitted: frozenset[str], new: list[RetractionDraft]) -> set[str]:
    """Return the signal ids withdrawn so far, including the ones withdrawn now."""
    out = {i[: -len(RETRACTED)] for i in emitted if i.endswith(RETRACTED)}
    return out | {r.signal_id for r in new}
