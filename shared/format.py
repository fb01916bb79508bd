"""One way to write money, dates and categories in texts people read (SMS, reasons, docs)."""

from __future__ import annotations

from datetime import date

_CATEGORY_SV = {
    "disturbance": "störning",
    "neglect": "vanvård",
    "other": "övrigt",
    "late_payment": "sen betalning",
}


def format_sek(ore: int | None, *, unit: str = "kr") -> str:
    """Format öre as Swedish kronor: `12 345 kr`, `12 345,50 kr`; `-` for None.

    Thousands are separated by a plain space (SMS stay GSM-7); öre are shown
    only when the amount is not whole kronor. `unit=""` gives the number alone.
    """
    if ore is None:
        return "-"
    kr, rest = divmod(abs(ore), 100)
    text = f"{kr:,}".replace(",", " ") + (f",{rest:02d}" if rest else "")
    sign = "-" if ore < 0 else ""
    return f"{sign}{text} {unit}".rstrip()


def format_date(day: date | None) -> str:
    """Format a date as ISO 8601 (`2027-02-01`), the form used in every text; `-` for None."""
    return day.isoformat() if day is not None else "-"


def category_sv(category: str) -> str:
    """Return the Swedish name of a complaint or warning category (falls back to the code)."""
    return _CATEGORY_SV.get(category, category)


def category_en(category: str) -> str:
    """Return the English name of a complaint or warning category."""
    return category.replace("_", " ")
