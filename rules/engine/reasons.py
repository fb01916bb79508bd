"""One-sentence reasons in Swedish and English for every signal."""

from __future__ import annotations

import re
from typing import Any

# "1 days" / "1 dagar" -> singular; a number that merely ends in 1 (11, 21) keeps the plural.
_ONE_DAY = re.compile(r"(?<![\d,.])1 (days|dagar)\b")
_SINGULAR = {"days": "1 day", "dagar": "1 dag"}

_TEXTS: dict[str, tuple[str, str]] = {
    "pre_due_reminder": (
        "Hyran för {period} förfaller {due_date}; hushållet har betalat sent tidigare.",
        "Rent for {period} is due on {due_date}; the household has paid late before.",
    ),
    "late_rent_detected": (
        "Hyran för {period} ({amount_kr} kr) är obetald {days_late} dagar efter förfallodagen.",
        "Rent for {period} ({amount_kr} SEK) is unpaid {days_late} days after the due date.",
    ),
    "personal_contact_needed": (
        "Hyran för {period} är fortfarande obetald efter {days_late} dagar: ta personlig kontakt.",
        "Rent for {period} is still unpaid after {days_late} days: make personal contact.",
    ),
    "forfeiture_possible": (
        "Hyran för {period} är mer än en vecka sen; hyresrätten kan vara förverkad (JB 12:42).",
        "Rent for {period} is more than a week late; the tenancy may be forfeited (JB 12:42).",
    ),
    "recovery_period_started": (
        "Återvinningsfristen på tre veckor löper från {start} till {end} (JB 12:44).",
        "The three-week recovery period runs from {start} to {end} (JB 12:44).",
    ),
    "recovery_period_reminder": (
        "Vecka {week} av återvinningsfristen: {amount_kr} kr är obetalt, fristen slutar {end}.",
        "Week {week} of the recovery period: {amount_kr} SEK is unpaid, it ends on {end}.",
    ),
    "recovery_period_ending": (
        "Återvinningsfristen slutar {end} och {amount_kr} kr är fortfarande obetalt.",
        "The recovery period ends on {end} and {amount_kr} SEK is still unpaid.",
    ),
    "recovery_period_ended": (
        "Återvinningsfristen slutade {end} utan full betalning ({amount_kr} kr obetalt).",
        "The recovery period ended on {end} without full payment ({amount_kr} SEK unpaid).",
    ),
    "enforcement_possible": (
        "Ansökan till Kronofogden är möjlig: båda underrättelserna är registrerade.",
        "An application to Kronofogden is possible: both notices are recorded.",
    ),
    "arrears_cleared": (
        "Hyresskulden är betald; pågående påminnelser och uppgifter kan avbrytas.",
        "The rent arrears are paid; pending reminders and tasks can be cancelled.",
    ),
    "plan_breached": (
        "Avbetalningsplanen bröts: delbetalningen som förföll {due_date} saknas.",
        "The payment plan was broken: the installment due on {due_date} is missing.",
    ),
    "complaint_pattern": (
        "{count} klagomål om {category} inom {window_days} dagar.",
        "{count} {category} complaints within {window_days} days.",
    ),
    "social_services_notice_due": (
        "En tillsägelse gavs {issued_on}; socialnämnden ska underrättas samtidigt (JB 12:25).",
        "A warning was given on {issued_on}; social services must be notified (JB 12:25).",
    ),
    "high_risk": (
        "Risken är hög ({score} av 100).",
        "The risk is high ({score} of 100).",
    ),
}


def reasons(signal: str, **fields: Any) -> tuple[str, str]:
    """Return (reason_sv, reason_en) for `signal` filled with `fields`."""
    sv, en = _TEXTS[signal]
    return _singular(sv.format(**fields)), _singular(en.format(**fields))


def _singular(text: str) -> str:
    return _ONE_DAY.sub(lambda m: _SINGULAR[m.group(1)], text)


def kronor(ore: int) -> str:
    """Format öre as whole kronor with a space as thousands separator."""
    return f"{ore // 100:,}".replace(",", " ")
