"""Pure decisions of the notifier: no I/O, no clock (`now` is passed in), no session."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from notifier.policy import Action, Policy, QuietHours, RetryPolicy
from shared.calendar import holiday_name

# --- actions -------------------------------------------------------------------------


def actions_for(policy: Policy, *, org_id: str, signal: str) -> tuple[Action, ...]:
    """Return the actions the policy asks for on `signal` in `org_id` (empty for none)."""
    return tuple(a for a in policy.rule(org_id, signal).actions if a != "none")


# --- quiet hours ---------------------------------------------------------------------


def _allowed_day(day: date, quiet: QuietHours) -> bool:
    if day.weekday() == 6 and not quiet.allow_sundays:
        return False
    return quiet.allow_public_holidays or holiday_name(day) is None


# The last answer of `next_allowed_send` and `task_due`, by the identity of their (immutable)
# arguments: a consumer batch asks with one `now` and one policy for every SMS and task.
_last_send: tuple[object, object, datetime] | None = None
_last_due: tuple[object, object, datetime] | None = None


def next_allowed_send(now: datetime, quiet: QuietHours) -> datetime:
    """Return `now` if a tenant SMS may go out now, else the next allowed instant (aware)."""
    global _last_send
    last = _last_send
    if last is not None and last[0] is now and last[1] is quiet:
        return last[2]
    allowed = _next_allowed_send(now, quiet)
    _last_send = (now, quiet, allowed)
    return allowed


def _next_allowed_send(now: datetime, quiet: QuietHours) -> datetime:
    tz = ZoneInfo(quiet.timezone)
    local = now.astimezone(tz)
    day = local.date()
    if _allowed_day(day, quiet):
        if local.time() < quiet.start:
            return datetime.combine(day, quiet.start, tzinfo=tz).astimezone(now.tzinfo)
        if local.time() < quiet.end:
            return now
    day += timedelta(days=1)
    while not _allowed_day(day, quiet):
        day += timedelta(days=1)
    return datetime.combine(day, quiet.start, tzinfo=tz).astimezone(now.tzinfo)


def welcome_due(start_date: date, *, event_day: date, max_days_since_start: int) -> bool:
    """Tell whether a lease registered on `event_day` is new enough for a welcome SMS."""
    return (event_day - start_date).days <= max_days_since_start


# --- caps and rates ------------------------------------------------------------------


def within_weekly_cap(sent_at: Iterable[datetime], *, now: datetime, cap: int) -> bool:
    """Tell whether one more SMS fits under `cap` per rolling 7 days."""
    since = now - timedelta(days=7)
    return sum(1 for t in sent_at if t > since) < cap


def week_cap_release(sent_at: Sequence[datetime], *, now: datetime, cap: int) -> datetime:
    """Return when the rolling window has room again (now if it already has)."""
    recent = sorted(t for t in sent_at if t > now - timedelta(days=7))
    if len(recent) < cap:
        return now
    return recent[len(recent) - cap] + timedelta(days=7)


# --- status transitions --------------------------------------------------------------

Status = Literal[
    "queued",
    "deferred",
    "sending",
    "unknown",
    "sent",
    "delivered",
    "failed",
    "undelivered",
    "cancelled",
]
TERMINAL: frozenset[str] = frozenset({"delivered", "failed", "undelivered", "cancelled"})
#: `unknown`: an attempt interrupted by a crash that the provider could not confirm.
_RANK = {"queued": 0, "deferred": 0, "sending": 1, "unknown": 1, "sent": 2, "delivered": 3}
#: Twilio's MessageStatus values mapped onto ours (None: no change worth recording).
TWILIO_STATUS: Mapping[str, Status | None] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "cancelled",
}


def apply_status(current: str, new: str) -> str | None:
    """Return the status after applying `new`, or None when it must be ignored (monotonic)."""
    if current in TERMINAL or new == current:
        return None
    if new in TERMINAL:
        return new
    if _RANK.get(new, -1) <= _RANK.get(current, -1):
        return None
    return new


# --- provider errors -----------------------------------------------------------------

#: Twilio error codes that will not change on retry: the number is unusable for SMS.
PERMANENT_CODES = frozenset({21211, 21212, 21214, 21217, 21219, 21401, 21408, 21610, 21612, 21614})
OPTED_OUT_CODES = frozenset({21610})


@dataclass(frozen=True, slots=True)
class SendFailure:
    """What to do about a failed send."""

    kind: Literal["retry", "permanent"]
    opted_out: bool = False
    detail: str = ""


def classify_error(status: int | None, code: int | None) -> SendFailure:
    """Classify a provider error: 429/5xx/401/403/network retry; codes and other 4xx permanent."""
    detail = f"http_{status}" + (f"_code_{code}" if code else "")
    if code in PERMANENT_CODES:
        return SendFailure("permanent", opted_out=code in OPTED_OUT_CODES, detail=detail)
    if status is None or status == 429 or status >= 500:
        return SendFailure("retry", detail=detail if status else "network")
    if status in (401, 403):  # our credentials or account, not the tenant's number
        return SendFailure("retry", detail=detail)
    return SendFailure("permanent", detail=detail)


def retry_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> timedelta:
    """Return the backoff before retry number `attempt` (1-based): exponential, full jitter."""
    ceiling = min(policy.max_seconds, policy.base_seconds * 2 ** (attempt - 1))
    return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


# --- staff ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """A staff member as the engine sees them."""

    staff_id: str
    team: str
    work_start: time
    work_end: time
    work_days: str  # ISO weekday digits, "12345" = Monday..Friday
    is_lead: bool = False
    active: bool = True


def on_duty(member: Member, now: datetime, tz: ZoneInfo) -> bool:
    """Tell whether `member` is working at `now` (local working hours and days)."""
    local = now.astimezone(tz)
    return (
        member.active
        and str(local.isoweekday()) in member.work_days
        and member.work_start <= local.time() < member.work_end
    )


def next_on_duty(member: Member, now: datetime, tz: ZoneInfo) -> datetime:
    """Return `now` if `member` is on duty, else the start of their next shift (within 2 weeks)."""
    if on_duty(member, now, tz):
        return now
    local = now.astimezone(tz)
    for offset in range(15):
        day = local.date() + timedelta(days=offset)
        start = datetime.combine(day, member.work_start, tzinfo=tz)
        if str(day.isoweekday()) in member.work_days and start > local:
            return start.astimezone(now.tzinfo)
    return now  # no shift at all: do not hold the alert back


def pick_assignee(
    members: Sequence[Member], *, last_assigned: str | None, now: datetime, tz: ZoneInfo
) -> Member | None:
    """Round-robin: the next on-duty member after `last_assigned` in id order, or None."""
    duty = sorted((m for m in members if on_duty(m, now, tz)), key=lambda m: m.staff_id)
    if not duty:
        return None
    for member in duty:
        if last_assigned is None or member.staff_id > last_assigned:
            return member
    return duty[0]


def team_lead(members: Sequence[Member]) -> Member | None:
    """Return the team's lead (first active lead by id), if any."""
    leads = sorted((m for m in members if m.is_lead and m.active), key=lambda m: m.staff_id)
    return leads[0] if leads else None


def needs_escalation(*, status: str, due_at: datetime | None, now: datetime) -> bool:
    """Tell whether a task is unacknowledged past its due time."""
    return status == "created" and due_at is not None and due_at < now


def task_due(now: datetime, policy: Policy) -> datetime:
    """Return the due time of a task created at `now`."""
    global _last_due
    last = _last_due
    if last is not None and last[0] is now and last[1] is policy:
        return last[2]
    due = now + timedelta(hours=policy.task_due_hours)
    _last_due = (now, policy, due)
    return due


# --- messages and privacy ------------------------------------------------------------


def render(text: str, variables: Mapping[str, object]) -> str:
    """Fill a template; variables the template does not use are ignored."""
    return " ".join(text.format_map(_Defaulting(variables)).split())


class _Defaulting(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "-"


def mask_phone(phone: str) -> str:
    """Keep only the last 3 digits of a phone number."""
    digits = [c for c in phone if c.isdigit()]
    return "***" + "".join(digits[-3:])


def phone_hash(phone: str, key: bytes) -> str:
    """Return a keyed hash of a normalised phone number (for opt-out records)."""
    normal = "".join(c for c in phone if c.isdigit() or c == "+")
    return hmac.new(key, normal.encode(), hashlib.sha256).hexdigest()


def body_hash(body: str) -> str:
    """Return a hash of an SMS body, to recognise it at the provider after a crash."""
    return hashlib.sha256(body.encode()).hexdigest()


STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPP", "AVSLUTA", "SLUTA"}
)
START_WORDS = frozenset({"START", "UNSTOP", "BÖRJA", "BORJA", "STARTA"})


def opt_keyword(text: str) -> Literal["stop", "start"] | None:
    """Recognise an opt-out (STOP, STOPP, AVSLUTA, ...) or opt-in (START, BÖRJA) reply."""
    words = text.strip().upper().split()
    if len(words) != 1:
        return None
    word = words[0].strip(".!")
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None
