"""The explainable 0–100 risk score: factors, weights and points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from rules.engine.ledger import ChargeStatus, Ledger
from rules.engine.state import LeaseState
from rules.policy import Policy
from shared.events.signal import RiskFactor, RiskScore


def factor_values(
    state: LeaseState,
    ledger: Ledger,
    today: date,
    broken_plans: int,
    *,
    arrears_ore: int | None = None,
    late_12m: int | None = None,
    overdue: list[ChargeStatus] | None = None,
) -> dict[str, float]:
    """Return the raw input of every risk factor.

    `arrears_ore`, `late_12m`, `overdue`: `ledger.arrears_ore(today)`,
    `ledger.late_payments(today)` and `ledger.overdue(today)` when the caller has them already.
    """
    if overdue is None:
        overdue = ledger.overdue(today)
    arrears = sum(c.open_ore for c in overdue) if arrears_ore is None else arrears_ore
    late = ledger.late_payments(today) if late_12m is None else late_12m
    values = _factors(state, today, broken_plans, arrears, late, overdue)
    return dict(zip(FACTORS, values, strict=True))


# the factors in the order `factor_values` gives them
FACTORS = ("days_late", "arrears_months", "late_payments_12m", "complaints_90d", "broken_plans")
Factors = tuple[float, float, float, float, float]


def _factors(
    state: LeaseState,
    today: date,
    broken_plans: int,
    arrears: int,
    late_12m: int,
    overdue: list[ChargeStatus],
) -> Factors:
    """The values of `FACTORS`: `factor_values` as a tuple (no dict built per lease)."""
    # overdue charges are open, so each is late by its days since the due date
    days_late = max(((today - c.due_date).days for c in overdue), default=0) if overdue else 0
    months = arrears / state.monthly_rent_ore if state.monthly_rent_ore > 0 else 0.0
    complaints = 0
    if state.complaints:
        since = today - _QUARTER
        complaints = sum(
            1
            for c in state.complaints
            if since < c.occurred_on <= today and c.resolution != "unfounded"
        )
    return (
        float(days_late),
        round(months, 2),
        float(late_12m),
        float(complaints),
        float(broken_plans),
    )


def lease_risk(
    state: LeaseState,
    policy: Policy,
    today: date,
    broken_plans: int,
    arrears: int,
    late_12m: int,
    overdue: list[ChargeStatus],
) -> Risk:
    """`score(factor_values(...), policy)` for the evaluation's figures, memoised on the
    factor values themselves: most leases of a batch share them (paid: all zero), and
    then neither the dict of values nor the score's key is built."""
    values = _factors(state, today, broken_plans, arrears, late_12m, overdue)
    key = (id(policy), values)
    hit = _BY_VALUES.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    if len(_BY_VALUES) >= _CACHE_SIZE:
        _BY_VALUES.clear()
    risk = score(dict(zip(FACTORS, values, strict=True)), policy)
    _BY_VALUES[key] = (policy, risk)
    return risk


_QUARTER = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Factor:
    """One factor's input value, weight and points."""

    name: str
    value: float
    weight: float
    points: float


@dataclass(frozen=True, slots=True)
class Risk:
    """A 0–100 score and its factors (plain data; `model()` gives the event schema)."""

    score: int
    factors: tuple[Factor, ...]

    def model(self) -> RiskScore:
        """Return the score as the `RiskScore` of the event contract (frozen, so shared)."""
        hit = _MODELS.get(self)
        if hit is None:
            if len(_MODELS) >= _CACHE_SIZE:
                _MODELS.clear()
            hit = _MODELS[self] = RiskScore(
                score=self.score,
                factors=tuple(
                    RiskFactor(name=f.name, value=f.value, weight=f.weight, points=f.points)
                    for f in self.factors
                ),
            )
        return hit


# Few distinct scores occur in a sweep (same days late, same arrears): validate each once.
_CACHE_SIZE = 4096
_MODELS: dict[Risk, RiskScore] = {}
_SCORES: dict[tuple[int, tuple[tuple[str, float], ...]], tuple[Policy, Risk]] = {}
_BY_VALUES: dict[tuple[int, Factors], tuple[Policy, Risk]] = {}


_SPECS: dict[int, tuple[Policy, tuple[tuple[str, float, float], ...]]] = {}


def _specs(policy: Policy) -> tuple[tuple[str, float, float], ...]:
    """(name, weight, saturation) per factor, memoised per policy object (hot path)."""
    hit = _SPECS.get(id(policy))
    if hit is None or hit[0] is not policy:
        specs = tuple((n, f.weight, f.saturation) for n, f in policy.risk.factors.items())
        hit = _SPECS[id(policy)] = (policy, specs)
    return hit[1]


def score(values: dict[str, float], policy: Policy) -> Risk:
    """Weigh the factor values into a 0–100 score, keeping every factor's contribution."""
    key = (id(policy), tuple(values.items()))
    hit = _SCORES.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    if len(_SCORES) >= _CACHE_SIZE:
        _SCORES.clear()
    risk = _score(values, policy)
    _SCORES[key] = (policy, risk)
    return risk


def _score(values: dict[str, float], policy: Policy) -> Risk:
    factors = []
    total = 0.0
    for name, weight, saturation in _specs(policy):
        value = values.get(name, 0.0)
        points = round(weight * min(value / saturation, 1.0), 2)
        total += points
        factors.append(Factor(name, value, weight, points))
    return Risk(max(0, min(100, round(total))), tuple(factors))
