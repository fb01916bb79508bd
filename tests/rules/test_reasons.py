"""Reasons read as sentences: one day is singular in both languages."""

from __future__ import annotations

from rules.engine.reasons import reasons


def test_one_day_late_is_singular_and_eleven_days_plural() -> None:
    sv, en = reasons("late_rent_detected", period="2026-03", amount_ore=800000, days_late=1)
    assert "obetald 1 dag efter" in sv and "unpaid 1 day after" in en
    assert "(8 000 kr)" in sv and "(8 000 SEK)" in en
    sv, en = reasons("personal_contact_needed", period="2026-03", days_late=11)
    assert "efter 11 dagar" in sv and "after 11 days" in en
    sv, en = reasons("complaint_pattern", count=3, category="disturbance", window_days=21)
    assert "inom 21 dagar" in sv and "within 21 days" in en
