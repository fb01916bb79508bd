"""Pure decisions of the notifier engine (no fixtures, `now` passed in)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier import engine
from notifier.engine import Member
from notifier.policy import QuietHours, RetryPolicy, load_policy

STHLM = ZoneInfo("Europe/Stockholm")
QUIET = QuietHours()


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=STHLM)  # type: ignore[misc]


def test_actions_for_signal_and_none() -> None:
    policy = load_policy()
    assert engine.actions_for(policy, org_id="o", signal="late_rent_detected") == ("sms_tenant",)
    assert engine.actions_for(policy, org_id="o", signal="arrears_cleared") == ()


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(2026, 3, 3, 10, 0), local(2026, 3, 3, 10, 0)),  # Tuesday daytime: now
        (local(2026, 3, 3, 7, 59), local(2026, 3, 3, 8, 0)),  # before 08:00
        (local(2026, 3, 3, 20, 0), local(2026, 3, 4, 8, 0)),  # 20:00 is already quiet
        (local(2026, 3, 7, 21, 0), local(2026, 3, 9, 8, 0)),  # Saturday night -> Monday
        (local(2026, 3, 8, 12, 0), local(2026, 3, 9, 8, 0)),  # Sunday
        (local(2026, 12, 24, 21, 0), local(2026, 12, 28, 8, 0)),  # Christmas, then Sunday
        (local(2026, 4, 3, 9, 0), local(2026, 4, 4, 8, 0)),  # Good Friday -> Saturday ok
    ],
)
def test_next_allowed_send(now: datetime, expected: datetime) -> None:
    assert engine.next_allowed_send(now.astimezone(UTC), QUIET) == expected


def test_quiet_hours_can_allow_sundays() -> None:
    quiet = QuietHours(allow_sundays=True)
    sunday = local(2026, 3, 8, 12, 0)
    assert engine.next_allowed_send(sunday, quiet) == sunday


def test_weekly_cap() -> None:
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    sent = [now - timedelta(days=1), now - timedelta(days=2), now - timedelta(days=8)]
    assert engine.within_weekly_cap(sent, now=now, cap=3)
    assert not engine.within_weekly_cap(sent, now=now, cap=2)
    assert engine.week_cap_release(sent, now=now, cap=2) == now - timedelta(days=2) + timedelta(
        days=7
    )
    assert engine.week_cap_release(sent, now=now, cap=3) == now


@pytest.mark.parametrize(
    ("current", "new", "result"),
    [
        ("queued", "sending", "sending"),
        ("sending", "sent", "sent"),
        ("sent", "delivered", "delivered"),
        ("delivered", "sent", None),  # a late `sent` never overwrites `delivered`
        ("sent", "sending", None),
        ("sent", "failed", "failed"),
        ("failed", "delivered", None),
        ("undelivered", "sent", None),
        ("cancelled", "sending", None),
        ("queued", "cancelled", "cancelled"),
        ("sent", "sent", None),
    ],
)
def test_apply_status_is_monotonic(current: str, new: str, result: str | None) -> None:
    assert engine.apply_status(current, new) == result


@pytest.mark.parametrize(
    ("status", "code", "kind", "opted_out"),
    [
        (429, 20429, "retry", False),
        (500, None, "retry", False),
        (503, None, "retry", False),
        (None, None, "retry", False),
        (400, 21211, "permanent", False),
        (400, 21610, "permanent", True),
        (400, 21408, "permanent", False),
        (401, 20003, "retry", False),  # our credentials: not the tenant's fault
        (400, 21614, "permanent", False),
        (404, 20404, "permanent", False),
    ],
)
def test_classify_error(status: int | None, code: int | None, kind: str, opted_out: bool) -> None:
    failure = engine.classify_error(status, code)
    assert failure.kind == kind
    assert failure.opted_out is opted_out


def test_retry_delay_grows_with_jitter_and_cap() -> None:
    policy = RetryPolicy(base_seconds=10, max_seconds=100)
    rng = random.Random(1)
    delays = [engine.retry_delay(n, policy, rng).total_seconds() for n in range(1, 8)]
    assert 5 <= delays[0] <= 10
    assert 10 <= delays[1] <= 20
    assert all(50 <= d <= 100 for d in delays[4:])
    jittered = {engine.retry_delay(3, policy, random.Random(s)).total_seconds() for s in range(5)}
    assert len(jittered) > 1


def _member(
    sid: str, *, start: int = 8, end: int = 17, days: str = "12345", lead: bool = False
) -> Member:
    return Member(sid, "team-a", time(start), time(end), days, is_lead=lead)


def test_round_robin_among_members_on_duty() -> None:
    members = [_member("s1"), _member("s2"), _member("s3", start=13), _member("s4", days="67")]
    now = local(2026, 3, 3, 10, 0)  # Tuesday 10:00: s1 and s2 on duty
    picks = []
    last = None
    for _ in range(4):
        chosen = engine.pick_assignee(members, last_assigned=last, now=now, tz=STHLM)
        assert chosen is not None
        picks.append(chosen.staff_id)
        last = chosen.staff_id
    assert picks == ["s1", "s2", "s1", "s2"]
    afternoon = local(2026, 3, 3, 14, 0)
    assert (
        engine.pick_assignee(members, last_assigned="s2", now=afternoon, tz=STHLM).staff_id == "s3"
    )  # type: ignore[union-attr]
    night = local(2026, 3, 3, 22, 0)
    assert engine.pick_assignee(members, last_assigned=None, now=night, tz=STHLM) is None


def test_team_lead_and_escalation() -> None:
    members = [_member("s1"), _member("s2", lead=True)]
    assert engine.team_lead(members).staff_id == "s2"  # type: ignore[union-attr]
    assert engine.team_lead(members[:1]) is None
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    assert engine.needs_escalation(status="created", due_at=now - timedelta(minutes=1), now=now)
    assert not engine.needs_escalation(status="acknowledged", due_at=now - timedelta(1), now=now)
    assert not engine.needs_escalation(status="created", due_at=now + timedelta(1), now=now)


def test_render_mask_and_keywords() -> None:
    assert engine.render("Att betala: {amount} kr\n senast {due_date}", {"amount": "1 200"}) == (
        "Att betala: 1 200 kr senast -"
    )
    assert engine.mask_phone("+46 70 123 45 67") == "***567"
    assert engine.phone_hash("+46701234567", b"k") == engine.phone_hash("+46 70 123 45 67", b"k")
    assert engine.opt_keyword(" stopp ") == "stop"
    assert engine.opt_keyword("AVSLUTA") == "stop"
    assert engine.opt_keyword("Börja") == "start"
    assert engine.opt_keyword("START") == "start"
    assert engine.opt_keyword("stop sending me rent reminders") is None
    assert engine.opt_keyword("Jag betalar på fredag") is None


def test_next_on_duty() -> None:
    weekday = _member("s1")
    tuesday_10 = local(2026, 3, 3, 10, 0)
    assert engine.next_on_duty(weekday, tuesday_10, STHLM) == tuesday_10
    assert engine.next_on_duty(weekday, local(2026, 3, 3, 18, 0), STHLM) == local(2026, 3, 4, 8)
    assert engine.next_on_duty(weekday, local(2026, 3, 6, 18, 0), STHLM) == local(2026, 3, 9, 8)
    weekend = _member("s2", days="67")
    assert engine.next_on_duty(weekend, tuesday_10, STHLM) == local(2026, 3, 7, 8, 0)
