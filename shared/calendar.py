"""The Swedish legal calendar: working days, the JB 12:20 due date, statutory period ends.

A non-working day is a Saturday, a Sunday, a Swedish public holiday, or one of the
de-facto bank holidays midsommarafton, julafton and nyårsafton: the days on which banks
and Bankgirot do not settle payments. Holidays come from the maintained `holidays`
package (categories `public` and `de_facto`). The same days are the ones on which a
statutory period may not end (lag (1930:173) om beräkning av lagstadgad tid, 2 §).
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def _holidays_of(year: int) -> frozenset[date]:
    table = holidays.country_holidays("SE", years=year, categories=("public", "de_facto"))
    return frozenset(table.keys())


def preload(today: date) -> None:
    """Build the holiday tables of the years around `today` (a service does it at start).

    The first lookup of a year imports the `holidays` country module and builds its table
    (tens of milliseconds); done at start, before `gc.freeze`, it is not paid by the first
    request or batch.
    """
    for year in range(today.year - 1, today.year + 2):
        _holidays_of(year)
        _holiday_names(year)


@lru_cache(maxsize=64)
def _holiday_names(year: int) -> dict[date, str]:
    table = holidays.country_holidays(
        "SE", years=year, categories=("public", "de_facto"), language="sv"
    )
    return dict(table.items())


def holiday_name(day: date) -> str | None:
    """Return the Swedish name of the holiday on `day`, if it is one."""
    # built once per year (~180 us): the notifier asks for every tenant SMS it queues
    return _holiday_names(day.year).get(day)


def is_working_day(day: date) -> bool:
    """Tell whether `day` is a Swedish working day (vardag, banks settle)."""
    return day.weekday() < 5 and day not in _holidays_of(day.year)


def previous_working_day(day: date) -> date:
    """Return the last working day strictly before `day`."""
    candidate = day - timedelta(days=1)
    while not is_working_day(candidate):
        candidate -= timedelta(days=1)
    return candidate


def next_working_day(day: date) -> date:
    """Return the first working day strictly after `day`."""
    candidate = day + timedelta(days=1)
    while not is_working_day(candidate):
        candidate += timedelta(days=1)
    return candidate


def statutory_period_end(last_day: date) -> date:
    """Return the day a statutory period ends when its computed last day is `last_day`.

    Lag (1930:173) om beräkning av lagstadgad tid, 2 §: a period whose last day falls on a
    Saturday, a Sunday, another public holiday, midsommarafton, julafton or nyårsafton
    ends on the next working day instead.
    """
    return last_day if is_working_day(last_day) else next_working_day(last_day)


def add_working_days(day: date, count: int) -> date:
    """Return the `count`-th working day after `day` (count >= 0; 0 returns `day`)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    result = day
    for _ in range(count):
        result = next_working_day(result)
    return result


def working_days_between(start: date, end: date) -> int:
    """Count working days in the half-open interval (start, end]."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count


def rent_due_date(year: int, month: int) -> date:
    """Return the JB 12:20 due date of the rent for `year`-`month`.

    Rent is due at the latest on the last working day before the calendar month begins:
    March rent is due on the last working day of February.
    """
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    return previous_working_day(date(year, month, 1))


def parse_period(period: str) -> tuple[int, int]:
    """Parse a rent period `YYYY-MM` into (year, month)."""
    try:
        year_s, month_s = period.split("-")
        year, month = int(year_s), int(month_s)
    except ValueError as exc:
        raise ValueError(f"period must look like YYYY-MM, got {period!r}") from exc
    if len(year_s) != 4 or len(month_s) != 2 or not 1 <= month <= 12:
        raise ValueError(f"period must look like YYYY-MM, got {period!r}")
    return year, month
