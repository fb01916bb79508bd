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


def test_memoised_reasons_read_as_written_afresh() -> None:
    # `reasons` memoises on the fields when they are str, int or None: the same sentences
    # as writing them again, and a field of another type (1.0 == 1) is never served
    # the sentence of an equal value of another type
    from rules.engine.reasons import _reasons

    cases = [
        (
            "late_rent_detected",
            {"period": "2026-03", "due_date": "27 feb", "amount_ore": 812_500, "days_late": 1},
        ),
        (
            "late_rent_detected",
            {"period": "2026-03", "due_date": "27 feb", "amount_ore": 812_500, "days_late": 11},
        ),
        ("arrears_cleared", {}),
        ("high_risk", {"score": 60}),
        ("complaint_pattern", {"count": 2, "category": "disturbance", "window_days": 30}),
    ]
    for _ in range(2):
        for signal, fields in cases:
            assert reasons(signal, **fields) == _reasons(signal, dict(fields))
    assert reasons("high_risk", score=60) != reasons("high_risk", score=60.5)
    assert reasons("high_risk", score=1.0) == _reasons("high_risk", {"score": 1.0})
    assert (
        "1.0" in reasons("high_risk", score=1.0)[1] and "(1 of" in reasons("high_risk", score=1)[1]
    )
