"""The explainable 0–100 risk score: factors, weights and points."""

from __future__ import annotations

from datetime import date, timedelta

from rules.engine.ledger import Ledger
from rules.engine.state import LeaseState
from rules.policy import Policy
from shared.events.signal import RiskFactor, RiskScore


def factor_values(
    state: LeaseState, ledger: Ledger, today: date, broken_plans: int
) -> dict[str, float]:
    """Return the raw input of every risk factor."""
    overdue = ledger.overdue(today)
    days_late = max((c.days_late(today) for c in overdue), default=0)
    arrears = ledger.arrears_ore(today)
    months = arrears / state.monthly_rent_ore if state.monthly_rent_ore > 0 else 0.0
    since = today - timedelta(days=90)
    complaints = sum(
        1
        for c in state.complaints
        if since < c.occurred_on <= today and c.resolution != "unfounded"
    )
    return {
        "days_late": float(days_late),
        "arrears_months": round(months, 2),
        "late_payments_12m": float(ledger.late_payments(today)),
        "complaints_90d": float(complaints),
        "broken_plans": float(broken_plans),
    }


def score(values: dict[str, float], policy: Policy) -> RiskScore:
    """Weigh the factor values into a 0–100 score, keeping every factor's contribution."""
    factors = []
    total = 0.0
    for name, fw in policy.risk.factors.items():
        value = values.get(name, 0.0)
        points = round(fw.weight * min(value / fw.saturation, 1.0), 2)
        total += points
        factors.append(RiskFactor(name=name, value=value, weight=fw.weight, points=points))
    return RiskScore(score=max(0, min(100, round(total))), factors=tuple(factors))
