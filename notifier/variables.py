"""What each SMS template may name: the variables every signal type (and the service) fills.

The policy check (`notifier.policy`) refuses a template that names a variable its signal
type does not carry, so an SMS can never go out with a `-` where a date or amount belongs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import structlog

from shared.events import SignalRaised
from shared.format import format_date, format_sek

log = structlog.get_logger(__name__)

#: Filled at send time into every tenant SMS (the landlord contact of the organisation).
LANDLORD = frozenset({"landlord_name", "landlord_phone", "landlord_email"})
#: Filled into staff alerts and escalations.
STAFF = frozenset({"team", "lease_ref", "task_kind", "due_at"})

_LADDER = frozenset({"amount", "due_date", "period", "days_late"})
_RECOVERY = frozenset({"amount", "last_day"})
#: Per signal type, what its SMS template may name besides the landlord contact.
#: `due_date` is the rent's (or instalment's) due date; `last_day` is the last day of the
#: JB 12:44 recovery period (the signal's `inputs.end`), by which paying keeps the home.
SIGNAL_VARIABLES: Mapping[str, frozenset[str]] = {
    "pre_due_reminder": frozenset({"amount", "due_date", "period"}),
    "late_rent_detected": _LADDER,
    "personal_contact_needed": _LADDER,
    "forfeiture_possible": _LADDER,
    "recovery_period_started": _RECOVERY,
    "recovery_period_reminder": _RECOVERY,
    "recovery_period_ending": _RECOVERY,
    "recovery_period_ended": frozenset({"amount"}),
    "enforcement_possible": frozenset({"amount"}),
    "arrears_cleared": frozenset(),
    "plan_breached": frozenset({"amount", "due_date"}),
    "complaint_pattern": frozenset(),
    "social_services_notice_due": frozenset(),
    "high_risk": frozenset(),
}
#: Every variable any template may use; anything else is a load error naming it.
ALL = LANDLORD | STAFF | frozenset().union(*SIGNAL_VARIABLES.values())


def provided(source: str) -> frozenset[str]:
    """Return the variables a template used for `source` (a signal type, `welcome`, `staff`)."""
    if source == "staff":
        return STAFF
    return LANDLORD | SIGNAL_VARIABLES.get(source, frozenset())


def _last_day(inputs: Mapping[str, Any]) -> str | None:
    end = inputs.get("end")
    if isinstance(end, date):
        return format_date(end)
    if isinstance(end, str):
        try:
            return format_date(date.fromisoformat(end))
        except ValueError:
            return None
    return None


def signal_variables(sig: SignalRaised) -> dict[str, str]:
    """Return the template variables of a signal, formatted (`shared.format`) for an SMS."""
    values: dict[str, str | None] = {
        "amount": format_sek(sig.arrears_ore) if sig.arrears_ore is not None else None,
        "due_date": format_date(sig.due_date) if sig.due_date is not None else None,
        "period": sig.period,
        "days_late": str(sig.days_late) if sig.days_late is not None else None,
        "last_day": _last_day(sig.inputs),
    }
    wanted = SIGNAL_VARIABLES.get(sig.signal, frozenset())
    missing = sorted(name for name in wanted if values[name] is None)
    if missing:
        # The rules contract promises these; an SMS with "-" instead is worth a warning.
        log.warning("notifier.signal_variable_missing", signal=sig.signal, missing=missing)
    return {name: value for name in sorted(wanted) if (value := values[name]) is not None}
