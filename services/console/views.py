"""Pure view logic: task order, the three tracks of a disturbance case, the SVG chart."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from typing import Any

OPEN_TASK = ("created", "acknowledged", "escalated")
Row = dict[str, Any]


def order_tasks(tasks: list[Row], *, now: datetime) -> list[Row]:
    """Return open tasks, overdue first, then by due time (no due time last); mark overdue."""
    out = []
    for task in tasks:
        if task["status"] not in OPEN_TASK:
            continue
        due = datetime.fromisoformat(task["due_at"]) if task.get("due_at") else None
        out.append({**task, "overdue": due is not None and due < now, "_due": due})
    far = datetime.max.replace(tzinfo=now.tzinfo)
    out.sort(key=lambda t: (not t["overdue"], t["_due"] or far, t["id"]))
    return out


@dataclass(frozen=True)
class Track:
    """One track of the Norrköping model: its status and next step (i18n keys)."""

    name: str
    status: str
    next_step: str
    items: list[tuple[str, str]]  # (date, i18n key of what happened)


def is_disturbance(timeline: list[Row], referrals: list[Row]) -> bool:
    """Tell whether a case concerns disturbance (complaint pattern or a JB 12:25 notice)."""
    return any(e["kind"] == "signal" and e["name"] == "complaint_pattern" for e in timeline) or any(
        r.get("notice") == "disturbance_warning" for r in referrals
    )


def tracks(
    timeline: list[Row], referrals: list[Row], legal_steps: list[Row], meetings: list[Row]
) -> list[Track]:
    """Derive the customer, authority and legal tracks; the legal one is the last resort."""
    reached = [e for e in timeline if e["kind"] == "task" and e.get("outcome") == "reached"]
    customer_items = [(str(m["held_on"]), "kind.meeting") for m in meetings] + [
        (str(e["at"])[:10], "outcome.reached") for e in reached
    ]
    customer = Track(
        "customer",
        "track.in_progress" if customer_items else "track.not_started",
        "track.customer.next_follow" if customer_items else "track.customer.next_contact",
        customer_items,
    )
    social = [r for r in referrals if r["recipient"] == "social_services"]
    with_social = [m for m in meetings if "social_services" in (m.get("participants") or [])]
    if not social:
        authority = Track("authority", "track.not_started", "track.authority.next_notice", [])
    else:
        items = [
            (str(r["referred_on"]), f"notice.{r['notice']}" if r.get("notice") else "kind.referral")
            for r in social
        ]
        items += [(str(m["held_on"]), "kind.meeting") for m in with_social]
        step = "track.authority.next_follow" if with_social else "track.authority.next_meeting"
        authority = Track("authority", "track.in_progress", step, items)
    steps = [(str(s["step_date"]), f"step.{s['step']}") for s in legal_steps]
    legal = Track(
        "legal",
        "track.in_progress" if steps else "track.not_started",
        "track.legal.next_follow" if steps else "track.legal.next_wait",
        steps,
    )
    return [customer, authority, legal]


def bar_chart(bars: list[tuple[str, float, str]], *, title: str, unit: str = "") -> str:
    """Return an accessible SVG bar chart of (label, value, css class) rows."""
    width, row_h, label_w = 640, 34, 250
    height = row_h * len(bars) + 20
    top = max([v for _, v, _ in bars] + [0.0001])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(title)}</title>',
    ]
    for i, (label, value, css) in enumerate(bars):
        y = 10 + i * row_h
        w = (width - label_w - 90) * value / top
        parts.append(
            f'<text x="0" y="{y + 20}" class="chart-label">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 10}" '
            f'class="bar {escape(css)}"><title>{escape(label)}: {_number(value)}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 20}" class="chart-value">'
            f"{_number(value)}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    """Two decimals at most, none when whole (12, 8.33)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def add_months(day: date, months: int) -> date:
    """Return the same day `months` later (the month's last day when it is shorter)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return day.replace(year=year, month=month, day=min(day.day, last))
