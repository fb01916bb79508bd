"""The console's pure view logic: task order, the three tracks, the SVG chart, gate refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime
from xml.etree import ElementTree

from starlette.requests import Request

from services.console.i18n import TEXTS, translator
from services.console.render import render
from services.console.routes.cases import missing_steps
from services.console.views import add_months, bar_chart, is_disturbance, order_tasks, tracks

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def task(task_id: str, due: str | None, status: str = "created") -> dict[str, object]:
    return {"id": task_id, "due_at": due, "status": status}


def test_open_tasks_overdue_first_then_by_due_time_closed_ones_dropped() -> None:
    ordered = order_tasks(
        [
            task("later", "2026-03-12T09:00:00+00:00"),
            task("none", None),
            task("overdue", "2026-03-09T09:00:00+00:00", "escalated"),
            task("soon", "2026-03-10T13:00:00+00:00", "acknowledged"),
            task("done", "2026-03-01T09:00:00+00:00", "completed"),
            task("cancelled", "2026-03-01T09:00:00+00:00", "cancelled"),
        ],
        now=NOW,
    )
    assert [t["id"] for t in ordered] == ["overdue", "soon", "later", "none"]
    assert [t["overdue"] for t in ordered] == [True, False, False, False]


def test_a_disturbance_case_has_three_tracks_with_the_legal_one_last_and_waiting() -> None:
    timeline = [{"kind": "signal", "name": "complaint_pattern", "at": "2026-03-06T21:00:00Z"}]
    assert is_disturbance(timeline, [])
    assert not is_disturbance([{"kind": "signal", "name": "late_rent_detected"}], [])
    customer, authority, legal = tracks(timeline, [], [], [])
    assert (customer.name, authority.name, legal.name) == ("customer", "authority", "legal")
    assert legal.status == "track.not_started" and legal.next_step == "track.legal.next_wait"
    assert authority.next_step == "track.authority.next_notice"
    assert customer.next_step == "track.customer.next_contact"


def test_tracks_move_on_with_the_notice_the_meeting_and_a_legal_step() -> None:
    referrals = [
        {
            "recipient": "social_services",
            "notice": "disturbance_warning",
            "referred_on": "2026-03-07",
        }
    ]
    meetings = [{"held_on": "2026-03-09", "participants": ["tenant", "social_services"]}]
    steps = [{"step": "termination_sent", "step_date": "2026-03-10"}]
    reached = [{"kind": "task", "outcome": "reached", "at": "2026-03-08T10:00:00Z"}]
    customer, authority, legal = tracks(reached, referrals, steps, meetings)
    assert customer.status == "track.in_progress" and len(customer.items) == 2
    assert authority.next_step == "track.authority.next_follow"
    assert authority.items == [
        ("2026-03-07", "notice.disturbance_warning"),
        ("2026-03-09", "kind.meeting"),
    ]
    assert legal.status == "track.in_progress" and legal.items == [
        ("2026-03-10", "step.termination_sent")
    ]
    assert is_disturbance([], referrals)


def test_the_chart_is_valid_svg_with_a_title_and_escaped_labels() -> None:
    svg = bar_chart([("<b>flagged</b>", 12.0, "flagged"), ("zero", 0.0, "zero")], title="A & B")
    root = ElementTree.fromstring(svg)
    assert root.get("role") == "img"
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}title").text == "A & B"  # type: ignore[union-attr]
    widths = [float(r.get("width", "0")) for r in root.iter(f"{ns}rect")]
    assert widths[0] > 0 and widths[1] == 0
    assert "<b>" not in svg and ">12<" in svg


def test_the_kronofogden_refusal_becomes_the_list_of_missing_steps() -> None:
    detail = {
        "reason": "missing steps",
        "missing": ["termination_sent", "recovery_period_ended (runs until 2026-04-01)"],
    }
    assert missing_steps(detail) == [
        ("termination_sent", ""),
        ("recovery_period_ended", "(runs until 2026-04-01)"),
    ]
    assert missing_steps("no consent") == []
    t = translator("sv")
    assert t("step.termination_sent") == "Uppsägning skickad"


def test_every_text_has_swedish_and_english() -> None:
    for key, (sv, en) in TEXTS.items():
        assert sv.strip() and en.strip(), key
    assert translator("en")("nav.tasks") == "My tasks"
    assert translator("fr")("nav.tasks") == "Mina uppgifter"


def test_plan_installments_fall_on_the_same_day_each_month_or_the_month_s_last() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 15), 2) == date(2027, 1, 15)
    assert add_months(date(2026, 3, 31), 0) == date(2026, 3, 31)


def test_the_task_list_marks_overdue_and_escalated_tasks() -> None:
    tasks = order_tasks(
        [
            {**task("T-1", "2026-03-09T09:00:00+00:00", "escalated"), "kind": "phone_call"},
            {**task("T-2", "2026-03-11T09:00:00+00:00"), "kind": "letter"},
        ],
        now=NOW,
    )
    tasks[0].update(lease_id="L-1", escalated_to="lars", assignee_id="anna")
    tasks[1].update(lease_id="L-2", escalated_to=None, assignee_id=None)
    html = page(tasks=tasks, team="team-0")
    assert html.index("T-1") < html.index("T-2")
    assert "Försenad" in html and "Eskalerad → lars" in html


def test_only_known_messages_are_shown_from_the_query() -> None:
    assert "Sparat." in page(tasks=[], team=None, message="case.saved")
    assert "phish" not in page(tasks=[], team=None, message="<b>phish</b>")


def page(**ctx: object) -> str:
    """Render the task list template outside a server."""
    scope = {"type": "http", "method": "GET", "path": "/tasks", "query_string": b""}
    scope.update(headers=[], session={})
    return bytes(render(Request(scope), "tasks.html", **ctx).body).decode()


def test_report_values_are_named_in_the_page_language() -> None:
    from services.console.i18n import translator

    sv, en = translator("sv"), translator("en")
    assert (sv("value.female"), sv("value.with_children"), sv("value.pending")) == (
        "kvinna",
        "med barn",
        "väntar",
    )
    assert en("value.single_adult") == "single adult"
    assert sv("value.30-39") == "30-39"  # an age band is shown as it is
