"""One-sentence reasons in Swedish and English for every signal."""

from __future__ import annotations

import re
from typing import Any

from shared.format import category_en, category_sv, format_sek

# "1 days" / "1 dagar" -> singular; a number that merely ends in 1 (11, 21) keeps the plural.
_ONE_DAY = re.compile(r"(?<![\d,.])1 (days|dagar)\b")
_SINGULAR = {"days": "1 day", "dagar": "1 dag"}

_TEXTS: dict[str, tuple[str, str]] = {
    "pre_due_reminder": (
        "Hyran för {period} förfaller {due_date}; hushållet har betalat sent tidigare.",
        "Rent for {period} is due on {due_date}; the household has paid late before.",
    ),
    "late_rent_detected": (
        "Hyran för {period} ({amount}) är obetald {days_late} dagar efter förfallodagen.",
        "Rent for {period} ({amount}) is unpaid {days_late} days after the due date.",
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
        "Vecka {week} av återvinningsfristen: {amount} är obetalt, fristen slutar {end}.",
        "Week {week} of the recovery period: {amount} is unpaid, it ends on {end}.",
    ),
    "recovery_period_ending": (
        "Återvinningsfristen slutar {end} och {amount} är fortfarande obetalt.",
        "The recovery period ends on {end} and {amount} is still unpaid.",
    ),
    "recovery_period_ended": (
        "Återvinningsfristen slutade {end} utan full betalning ({amount} obetalt).",
        "The recovery period ended on {end} without full payment ({amount} unpaid).",
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
    "retracted_paid_on_time": (
        "Signalen drogs tillbaka: hyran för {period} betalades {paid_on}, senast på "
        "förfallodagen {due_date}; betalningen kom fram till Bokvar först senare.",
        "Signal withdrawn: the rent for {period} was paid on {paid_on}, by the due date "
        "{due_date}; the payment reached Bokvar later.",
    ),
    "retracted_payment_booked_before_stage": (
        "Signalen drogs tillbaka: hyran för {period} betalades {paid_on}, före {stage_date} "
        "då signalen gällde; betalningen kom fram till Bokvar först senare.",
        "Signal withdrawn: the rent for {period} was paid on {paid_on}, before {stage_date} "
        "when the signal applied; the payment reached Bokvar later.",
    ),
    "high_risk": (
        "Risken är hög ({score} av 100).",
        "The risk is high ({score} of 100).",
    ),
}


def reasons(signal: str, **fields: Any) -> tuple[str, str]:
    """Return (reason_sv, reason_en) for `signal` filled with `fields`.

    `amount_ore` fills `{amount}` (shared.format: `8 000 kr`, in English `8 000 SEK`) and
    `category` is named in each language (`störning` / `disturbance`).

    Memoised when every field is a str, an int or None (as every caller's are): the two
    sentences depend on nothing else, and writing them (formats, the singular's regex)
    cost ~7-8 µs a signal, of which a sweep raising many writes few distinct ones.
    """
    types = tuple(map(type, fields.values()))
    if not _PLAIN.issuperset(types):
        return _reasons(signal, fields)
    key = (signal, tuple(fields.items()), types)
    hit = _MEMO.get(key)
    if hit is None:
        if len(_MEMO) >= 4096:
            _MEMO.clear()
        hit = _MEMO[key] = _reasons(signal, fields)
    return hit


# the field types `reasons` memoises on: equal values of one of these read the same
_PLAIN = frozenset({str, int, type(None)})
_MEMO: dict[tuple[str, tuple[tuple[str, Any], ...], tuple[type, ...]], tuple[str, str]] = {}


def _reasons(signal: str, fields: dict[str, Any]) -> tuple[str, str]:
    sv_fields, en_fields = dict(fields), dict(fields)
    if "amount_ore" in fields:
        sv_fields["amount"] = format_sek(fields["amount_ore"])
        en_fields["amount"] = format_sek(fields["amount_ore"], unit="SEK")
    if "category" in fields:
        sv_fields["category"] = category_sv(fields["category"])
        en_fields["category"] = category_en(fields["category"])
    sv, en = _TEXTS[signal]
    return _singular(sv.format(**sv_fields)), _singular(en.format(**en_fields))


def _singular(text: str) -> str:
    return _ONE_DAY.sub(lambda m: _SINGULAR[m.group(1)], text)
