"""Report figures, pure: rows in, figures out (no I/O, no clock)."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel

from shared.clock import local_date

RAISED_IN_ERROR = "raised_in_error"
DIMENSIONS = ("age_band", "gender", "household_group")
_WITH_CHILDREN = frozenset({"single_with_children", "couple_with_children"})


@dataclass(frozen=True, slots=True)
class Attrs:
    """Anonymous household attributes used for breakdowns."""

    age_band: str | None = None
    gender: str | None = None
    household_type: str | None = None

    def value(self, dimension: str) -> str:
        """Return this household's value in `dimension` ('unknown' when not known)."""
        if dimension == "household_group":
            return household_group(self.household_type)
        raw = getattr(self, dimension)
        return str(raw) if raw else "unknown"


@dataclass(frozen=True, slots=True)
class CaseFact:
    """What a report needs of one case."""

    case_id: str
    lease_id: str
    status: str
    resolution: str | None
    opened_at: datetime
    closed_at: datetime | None
    attrs: Attrs
    has_plan: bool = False


@dataclass(frozen=True, slots=True)
class Activity:
    """A timestamped thing that happened to a lease (late signal, SMS, reached call)."""

    lease_id: str
    at: datetime
    due_date: date | None = None


@dataclass(slots=True)
class ReportInput:
    """Everything one report is computed from."""

    org_id: str
    start: date
    end: date
    cases: Sequence[CaseFact]
    households: Mapping[str, Attrs]
    late_signals: Sequence[Activity]
    sms: Sequence[Activity]
    reached_calls: Sequence[Activity]
    referrals: Sequence[tuple[str, str | None, date]] = ()
    home_count: int | None = None
    baseline_year: int | None = None
    baseline_evictions: int | None = None


class Targets(BaseModel):
    """Evictions against the baseline and the targets (halve, then zero)."""

    baseline_year: int | None
    baseline_evictions: int | None
    baseline_per_1000: float | None
    halve_target_per_1000: float | None
    zero_target_per_1000: float
    annualised_per_1000: float | None
    halved: bool | None
    zero: bool


class Report(BaseModel):
    """Figures for one organisation and period."""

    org_id: str
    start: date
    end: date
    home_count: int | None
    evictions: int
    evictions_per_1000_homes: float | None
    targets: Targets
    households_flagged_late: int
    median_days_due_to_first_sms: float | None
    median_days_due_to_first_reached_call: float | None
    cases_active: int
    share_with_payment_plan: float | None
    referrals: dict[str, dict[str, int]]
    outcomes: dict[str, int]
    breakdown: dict[str, dict[str, dict[str, int]]]


def household_group(household_type: str | None) -> str:
    """Map a household type onto the report groups: single adult, with children, other."""
    if household_type == "single_adult":
        return "single_adult"
    if household_type in _WITH_CHILDREN:
        return "with_children"
    if household_type in ("couple", "other"):
        return "other"
    return "unknown"


def _in(day: date, start: date, end: date) -> bool:
    return start <= day <= end


def _per_1000(count: int | None, homes: int | None) -> float | None:
    if count is None or not homes:
        return None
    return round(count * 1000 / homes, 3)


def median_days_to_first(late: Iterable[Activity], followups: Iterable[Activity]) -> float | None:
    """Median days from each late due date to the lease's first follow-up on or after it."""
    by_lease: dict[str, list[date]] = defaultdict(list)
    for f in followups:
        by_lease[f.lease_id].append(local_date(f.at))
    days: list[int] = []
    for lease_id, due in sorted({(a.lease_id, a.due_date) for a in late if a.due_date}):
        after = [d for d in by_lease.get(lease_id, []) if d >= due]
        if after:
            days.append((min(after) - due).days)
    return float(statistics.median(days)) if days else None


def build_report(data: ReportInput) -> Report:
    """Compute every figure of the report."""
    start, end = data.start, data.end
    evicted = [
        c
        for c in data.cases
        if c.status == "evicted" and c.closed_at and _in(local_date(c.closed_at), start, end)
    ]
    late = [a for a in data.late_signals if _in(local_date(a.at), start, end)]
    flagged = sorted({a.lease_id for a in late})
    # a case closed as raised in error (its signal was retracted) was never a household at
    # risk: it is listed under outcomes only, not counted as opened or active
    real = [c for c in data.cases if c.resolution != RAISED_IN_ERROR]
    active = [
        c
        for c in real
        if local_date(c.opened_at) <= end
        and (c.closed_at is None or local_date(c.closed_at) >= start)
    ]
    closed = [c for c in data.cases if c.closed_at and _in(local_date(c.closed_at), start, end)]
    opened = [c for c in real if _in(local_date(c.opened_at), start, end)]
    referrals: dict[str, Counter[str]] = defaultdict(Counter)
    for recipient, outcome, on in data.referrals:
        if _in(on, start, end):
            referrals[recipient][outcome or "pending"] += 1
    per_1000 = _per_1000(len(evicted), data.home_count)
    return Report(
        org_id=data.org_id,
        start=start,
        end=end,
        home_count=data.home_count,
        evictions=len(evicted),
        evictions_per_1000_homes=per_1000,
        targets=_targets(data, per_1000, len(evicted)),
        households_flagged_late=len(flagged),
        median_days_due_to_first_sms=median_days_to_first(late, data.sms),
        median_days_due_to_first_reached_call=median_days_to_first(late, data.reached_calls),
        cases_active=len(active),
        share_with_payment_plan=(
            round(sum(c.has_plan for c in active) / len(active), 4) if active else None
        ),
        referrals={k: dict(sorted(v.items())) for k, v in sorted(referrals.items())},
        outcomes=dict(sorted(Counter(_outcome(c) for c in closed).items())),
        breakdown=_breakdown(data, flagged, opened, evicted),
    )


def _outcome(case: CaseFact) -> str:
    return f"resolved:{case.resolution}" if case.status == "resolved" else case.status


def _targets(data: ReportInput, per_1000: float | None, evictions: int) -> Targets:
    days = (data.end - data.start).days + 1
    annual = round(per_1000 * 365 / days, 3) if per_1000 is not None else None
    baseline = _per_1000(data.baseline_evictions, data.home_count)
    halve = round(baseline / 2, 3) if baseline is not None else None
    return Targets(
        baseline_year=data.baseline_year,
        baseline_evictions=data.baseline_evictions,
        baseline_per_1000=baseline,
        halve_target_per_1000=halve,
        zero_target_per_1000=0.0,
        annualised_per_1000=annual,
        halved=(annual <= halve) if annual is not None and halve is not None else None,
        zero=evictions == 0,
    )


def _breakdown(
    data: ReportInput,
    flagged: Sequence[str],
    opened: Sequence[CaseFact],
    evicted: Sequence[CaseFact],
) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {}
    for dim in DIMENSIONS:
        table: dict[str, Counter[str]] = defaultdict(Counter)
        for lease_id in flagged:
            table[data.households.get(lease_id, Attrs()).value(dim)]["flagged_late"] += 1
        for c in opened:
            table[c.attrs.value(dim)]["cases_opened"] += 1
        for c in evicted:
            table[c.attrs.value(dim)]["evictions"] += 1
        out[dim] = {
            value: {m: counts[m] for m in ("flagged_late", "cases_opened", "evictions")}
            for value, counts in sorted(table.items())
        }
    return out


def to_csv(report: Report) -> str:
    """Render a report as CSV rows: section, key, subkey, value."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "subkey", "value"])
    scalars = report.model_dump(
        mode="json", exclude={"targets", "referrals", "outcomes", "breakdown"}
    )
    for key, value in scalars.items():
        w.writerow(["summary", key, "", "" if value is None else value])
    for key, value in report.targets.model_dump(mode="json").items():
        w.writerow(["targets", key, "", "" if value is None else value])
    for recipient, outcomes in report.referrals.items():
        for outcome, n in outcomes.items():
            w.writerow(["referrals", recipient, outcome, n])
    for outcome, n in report.outcomes.items():
        w.writerow(["outcomes", outcome, "", n])
    for dim, values in report.breakdown.items():
        for value, metrics in values.items():
            for metric, n in metrics.items():
                w.writerow([f"breakdown.{dim}", value, metric, n])
    return buf.getvalue()
