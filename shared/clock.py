"""The injected clock. Nothing in Bokvar reads the wall clock directly."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

STOCKHOLM = ZoneInfo("Europe/Stockholm")


class Clock(Protocol):
    """Something that tells the current instant."""

    def now(self) -> datetime:
        """Return the current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current instant in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the instant the clock was set to."""
        return self._now

    def set(self, instant: datetime) -> None:
        """Move the clock to `instant` (aware)."""
        if instant.tzinfo is None:
            raise ValueError("ManualClock needs timezone-aware instants")
        self._now = instant.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by `delta`."""
        self._now += delta


class AcceleratedClock:
    """Simulated time: `start` at real UNIX time `epoch`, running `speed` times faster.

    Every process given the same three numbers shows the same time, which lets
    `bokvar simulate` run a month in minutes across separate service processes.
    """

    def __init__(self, start: datetime, epoch: float, speed: float) -> None:
        if start.tzinfo is None:
            raise ValueError("AcceleratedClock needs a timezone-aware start")
        self._start = start.astimezone(UTC)
        self._epoch = epoch
        self._speed = speed

    def now(self) -> datetime:
        """Return the simulated instant."""
        return self._start + timedelta(seconds=(time.time() - self._epoch) * self._speed)


def local_date(instant: datetime, tz: ZoneInfo = STOCKHOLM) -> date:
    """Return the calendar date of `instant` in Swedish local time."""
    return instant.astimezone(tz).date()


def local_midnight(day: date, tz: ZoneInfo = STOCKHOLM) -> datetime:
    """Return 00:00 local time on `day`, as an aware UTC instant."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def clock_from_settings(start: datetime | None, epoch: float | None, speed: float) -> Clock:
    """Build the clock the settings ask for: real, or accelerated for simulations."""
    if start is None:
        return SystemClock()
    return AcceleratedClock(start, epoch if epoch is not None else time.time(), speed)
