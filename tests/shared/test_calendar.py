"""The Swedish legal calendar: working days and the JB 12:20 due date, 2025–2028."""

from __future__ import annotations

from datetime import date

import pytest

from shared.calendar import (
    add_working_days,
    is_working_day,
    parse_period,
    rent_due_date,
    statutory_period_end,
    working_days_between,
)

# Due date of each month's rent (month 1..12), checked by hand against the calendar:
# the last working day before the month begins.
EXPECTED = {
    2025: [
        "2024-12-30",
        "2025-01-31",
        "2025-02-28",
        "2025-03-31",
        "2025-04-30",
        "2025-05-30",
        "2025-06-30",
        "2025-07-31",
        "2025-08-29",
        "2025-09-30",
        "2025-10-31",
        "2025-11-28",
    ],
    2026: [
        "2025-12-30",
        "2026-01-30",
        "2026-02-27",
        "2026-03-31",
        "2026-04-30",
        "2026-05-29",
        "2026-06-30",
        "2026-07-31",
        "2026-08-31",
        "2026-09-30",
        "2026-10-30",
        "2026-11-30",
    ],
    2027: [
        "2026-12-30",
        "2027-01-29",
        "2027-02-26",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
        "2027-06-30",
        "2027-07-30",
        "2027-08-31",
        "2027-09-30",
        "2027-10-29",
        "2027-11-30",
    ],
    2028: [
        "2027-12-30",
        "2028-01-31",
        "2028-02-29",
        "2028-03-31",
        "2028-04-28",
        "2028-05-31",
        "2028-06-30",
        "2028-07-31",
        "2028-08-31",
        "2028-09-29",
        "2028-10-31",
        "2028-11-30",
    ],
}


@pytest.mark.parametrize("year", sorted(EXPECTED))
def test_due_date_of_every_month(year: int) -> None:
    got = [rent_due_date(year, month).isoformat() for month in range(1, 13)]
    assert got == EXPECTED[year]


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 12, 24), False),  # julafton, Wednesday
        (date(2025, 12, 31), False),  # nyårsafton, Wednesday
        (date(2026, 6, 19), False),  # midsommarafton, Friday
        (date(2027, 6, 25), False),  # midsommarafton, Friday
        (date(2026, 4, 3), False),  # långfredagen
        (date(2026, 4, 6), False),  # annandag påsk
        (date(2026, 5, 14), False),  # Kristi himmelsfärdsdag
        (date(2028, 6, 6), False),  # nationaldagen, Tuesday
        (date(2026, 1, 6), False),  # trettondedag jul
        (date(2026, 4, 30), True),  # valborgsmässoafton is a working day
        (date(2026, 12, 23), True),
        (date(2026, 3, 7), False),  # Saturday
        (date(2026, 3, 8), False),  # Sunday
    ],
)
def test_working_days(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_easter_pushes_the_april_due_date_back() -> None:
    # Easter 2024: långfredagen 29 March, so April rent was due Thursday 28 March.
    assert rent_due_date(2024, 4) == date(2024, 3, 28)
    # Easter 2029: långfredagen 30 March, 31 March a Saturday.
    assert rent_due_date(2029, 4) == date(2029, 3, 29)


def test_working_day_counting_skips_midsommar_and_christmas() -> None:
    assert add_working_days(date(2026, 6, 18), 1) == date(2026, 6, 22)
    assert add_working_days(date(2027, 12, 23), 1) == date(2027, 12, 27)
    assert add_working_days(date(2025, 12, 23), 2) == date(2025, 12, 30)
    assert add_working_days(date(2026, 3, 2), 0) == date(2026, 3, 2)
    assert working_days_between(date(2025, 12, 23), date(2026, 1, 2)) == 3


def test_period_parsing_rejects_bad_input() -> None:
    assert parse_period("2026-03") == (2026, 3)
    for bad in ["2026-13", "2026-3", "26-03", "march", "2026-00"]:
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_period(bad)
    with pytest.raises(ValueError):
        rent_due_date(2026, 13)


@pytest.mark.parametrize(
    ("last_day", "end"),
    [
        ("2027-01-30", "2027-02-01"),  # Saturday -> Monday
        ("2027-01-31", "2027-02-01"),  # Sunday -> Monday
        ("2027-02-01", "2027-02-01"),  # a working day stays
        ("2026-06-19", "2026-06-22"),  # midsommarafton (Friday) -> Monday
        ("2026-12-24", "2026-12-28"),  # julafton, juldagen, annandag jul, Sunday -> Monday
        ("2026-12-31", "2027-01-04"),  # nyårsafton, nyårsdagen, weekend -> Monday
        ("2027-01-06", "2027-01-07"),  # trettondedag jul -> Thursday
        ("2027-03-26", "2027-03-30"),  # långfredagen, weekend, annandag påsk -> Tuesday
    ],
)
def test_a_statutory_period_ending_on_a_non_working_day_ends_on_the_next_working_day(
    last_day: str, end: str
) -> None:
    # lag (1930:173) om beräkning av lagstadgad tid, 2 §
    assert statutory_period_end(date.fromisoformat(last_day)) == date.fromisoformat(end)
