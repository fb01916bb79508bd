"""Report figures against a hand-computed fixture (period 2026-01-01..2026-03-31, org1)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

from services.cases.reports import (
    Attrs,
    CaseFact,
    ReportInput,
    build_report,
    household_group,
    median_days_to_first,
)
from services.cases.store import CasesStore
from shared.db import Database
from tests.cases.conftest import App


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=10, tzinfo=UTC)


HOUSEHOLDS = {
    "L1": ("single_adult", "25-29", "male"),
    "L2": ("single_with_children", "30-39", "female"),
    "L3": ("couple", "40-49", "male"),
    "L4": ("single_adult", "25-29", "female"),
}
# case id, lease, org, opened, status, resolution, closed
CASES = [
    ("C1", "L1", "org1", "2026-02-10", "evicted", None, "2026-03-15"),
    ("C2", "L2", "org1", "2026-03-05", "in_contact", None, None),
    ("C3", "L3", "org1", "2025-11-01", "resolved", "paid", "2026-01-20"),
    ("C4", "L4", "org1", "2025-10-01", "resolved", "moved_voluntarily", "2025-12-15"),
    ("C5", "L5", "org1", "2026-03-31", "new", None, None),
    ("X1", "L9", "org2", "2026-02-01", "evicted", None, "2026-02-20"),
]
# lease, kind, name, status, outcome, at, due date
ACTIVITY = [
    ("L1", "signal", "late_rent_detected", None, None, "2026-02-03", "2026-01-30"),
    ("L1", "sms", "late", "delivered", None, "2026-02-03", None),
    ("L1", "task", "phone_call", "completed", "reached", "2026-02-09", None),
    ("L1", "signal", "late_rent_detected", None, None, "2026-03-03", "2026-02-27"),
    ("L1", "sms", "late", "failed", None, "2026-03-04", None),
    ("L1", "sms", "late", "sent", None, "2026-03-10", None),
    ("L2", "signal", "late_rent_detected", None, None, "2026-03-03", "2026-02-27"),
    ("L2", "sms", "late", "sent", None, "2026-03-05", None),
    ("L2", "task", "phone_call", "completed", "no_answer", "2026-03-06", None),
    ("L3", "signal", "late_rent_detected", None, None, "2026-03-03", "2026-02-27"),
    ("L3", "sms", "late", "delivered", None, "2026-02-28", None),
    ("L3", "task", "phone_call", "completed", "reached", "2026-03-02", None),
    ("L4", "signal", "late_rent_detected", None, None, "2025-12-31", "2025-12-30"),
    ("L4", "sms", "late", "sent", None, "2025-12-31", None),
]
REFERRALS = [
    ("C1", "social_services", None, "2026-02-15", True),
    ("C1", "kronofogden", "approved", "2026-03-01", False),
    ("C2", "budget_debt_advice", "plan_made", "2026-03-10", False),
    ("C3", "social_services", None, "2025-12-01", True),
]

EXPECTED: dict[str, Any] = {
    "org_id": "org1",
    "start": "2026-01-01",
    "end": "2026-03-31",
    "home_count": 2000,
    "evictions": 1,
    "evictions_per_1000_homes": 0.5,
    "targets": {
        "baseline_year": 2024,
        "baseline_evictions": 10,
        "baseline_per_1000": 5.0,
        "halve_target_per_1000": 2.5,
        "zero_target_per_1000": 0.0,
        # 0.5 over 90 days -> 0.5 * 365 / 90
        "annualised_per_1000": 2.028,
        "halved": True,
        "zero": False,
    },
    "households_flagged_late": 3,
    # SMS: L1 Jan 4 days, L1 Feb 11 days (the failed SMS does not count), L2 6, L3 1.
    "median_days_due_to_first_sms": 5.0,
    # Reached calls: L1 Jan 10 days, L3 3 days (L2 only no_answer; L1 Feb none after).
    "median_days_due_to_first_reached_call": 6.5,
    "cases_active": 4,
    "share_with_payment_plan": 0.5,
    "referrals": {
        "budget_debt_advice": {"plan_made": 1},
        "kronofogden": {"approved": 1},
        "social_services": {"pending": 1},
    },
    "outcomes": {"evicted": 1, "resolved:paid": 1},
    "breakdown": {
        "age_band": {
            "25-29": {"flagged_late": 1, "cases_opened": 1, "evictions": 1},
            "30-39": {"flagged_late": 1, "cases_opened": 1, "evictions": 0},
            "40-49": {"flagged_late": 1, "cases_opened": 0, "evictions": 0},
            "unknown": {"flagged_late": 0, "cases_opened": 1, "evictions": 0},
        },
        "gender": {
            "female": {"flagged_late": 1, "cases_opened": 1, "evictions": 0},
            "male": {"flagged_late": 2, "cases_opened": 1, "evictions": 1},
            "unknown": {"flagged_late": 0, "cases_opened": 1, "evictions": 0},
        },
        "household_group": {
            "other": {"flagged_late": 1, "cases_opened": 0, "evictions": 0},
            "single_adult": {"flagged_late": 1, "cases_opened": 1, "evictions": 1},
            "unknown": {"flagged_late": 0, "cases_opened": 1, "evictions": 0},
            "with_children": {"flagged_late": 1, "cases_opened": 1, "evictions": 0},
        },
    },
}


async def seed(db: Database) -> None:
    async with db.sessionmaker() as session, session.begin():
        store = CasesStore(session)
        for lease, (kind, age, gender) in HOUSEHOLDS.items():
            await store.upsert_household(
                {
                    "lease_id": lease,
                    "org_id": "org1",
                    "municipality_code": "0180",
                    "household_type": kind,
                    "age_band": age,
                    "gender": gender,
                    "updated_at": at("2025-01-01"),
                }
            )
        for cid, lease, org, opened, status, resolution, closed in CASES:
            kind, age, gender = HOUSEHOLDS.get(lease, (None, None, None))
            await store.create(
                {
                    "id": cid,
                    "lease_id": lease,
                    "org_id": org,
                    "status": status,
                    "resolution": resolution,
                    "priority": "high",
                    "opened_at": at(opened),
                    "updated_at": at(opened),
                    "closed_at": at(closed) if closed else None,
                    "reason": "fixture",
                    "household_type": kind,
                    "age_band": age,
                    "gender": gender,
                }
            )
        for i, (lease, kind, name, status, outcome, when, due) in enumerate(ACTIVITY):
            await store.add_entry(
                lease_id=lease,
                org_id="org1",
                at=at(when),
                kind=kind,
                ref_id=f"a{i}",
                name=name,
                status=status,
                outcome=outcome,
                due_date=date.fromisoformat(due) if due else None,
            )
        for cid in ("C1", "C2"):
            await store.add_plan(
                {
                    "id": f"P-{cid}",
                    "case_id": cid,
                    "agreed_on": date(2026, 3, 1),
                    "installment_count": 1,
                    "total_ore": 100,
                    "created_at": at("2026-03-01"),
                },
                [(date(2026, 4, 1), 100)],
            )
        for i, (cid, recipient, outcome, on, statutory) in enumerate(REFERRALS):
            await store.add_referral(
                {
                    "id": f"R{i}",
                    "case_id": cid,
                    "recipient": recipient,
                    "legal_basis": "fixture",
                    "referred_on": date.fromisoformat(on),
                    "outcome": outcome,
                    "statutory": statutory,
                    "created_at": at(on),
                }
            )


async def test_report_matches_the_hand_computed_fixture(cases_app: App) -> None:
    await seed(cases_app.database)
    admin = cases_app.token("admin")
    put = await cases_app.client.put(
        "/v1/orgs/org1/settings",
        json={"home_count": 2000, "baseline_year": 2024, "baseline_evictions": 10},
        headers=admin,
    )
    assert put.status_code == 200, put.text
    staff = cases_app.token("landlord_staff")
    url = "/v1/orgs/org1/report?start=2026-01-01&end=2026-03-31"
    got = await cases_app.client.get(url, headers=staff)
    assert got.status_code == 200, got.text
    assert got.json() == EXPECTED

    as_csv = await cases_app.client.get(url + "&format=csv", headers=staff)
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == ["section", "key", "subkey", "value"]
    assert ["summary", "evictions_per_1000_homes", "", "0.5"] in rows
    assert ["targets", "halve_target_per_1000", "", "2.5"] in rows
    assert ["referrals", "kronofogden", "approved", "1"] in rows
    assert ["breakdown.gender", "male", "flagged_late", "2"] in rows
    by_accept = await cases_app.client.get(url, headers={**staff, "Accept": "text/csv"})
    assert by_accept.text == as_csv.text


async def test_report_refuses_a_bad_period_and_other_orgs(cases_app: App) -> None:
    staff = cases_app.token("landlord_staff")
    bad = await cases_app.client.get(
        "/v1/orgs/org1/report?start=2026-03-01&end=2026-01-01", headers=staff
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "end"
    other = await cases_app.client.get(
        "/v1/orgs/org2/report?start=2026-01-01&end=2026-03-31", headers=staff
    )
    assert other.status_code == 403


def test_household_groups() -> None:
    assert household_group("single_adult") == "single_adult"
    assert household_group("couple_with_children") == "with_children"
    assert household_group("single_with_children") == "with_children"
    assert household_group("couple") == "other"
    assert household_group(None) == "unknown"


def test_median_needs_a_followup_on_or_after_the_due_date() -> None:
    from services.cases.reports import Activity

    late = [Activity("L", at("2026-03-03"), date(2026, 2, 27))]
    assert median_days_to_first(late, [Activity("L", at("2026-02-20"))]) is None
    assert median_days_to_first(late, [Activity("L", at("2026-02-27"))]) == 0.0


def test_a_case_raised_in_error_is_an_outcome_not_an_opened_or_active_case() -> None:
    def case(case_id: str, resolution: str | None) -> CaseFact:
        closed = at("2026-03-12") if resolution else None
        status = "resolved" if resolution else "new"
        attrs = Attrs(age_band="30-39")
        return CaseFact(case_id, case_id, status, resolution, at("2026-03-09"), closed, attrs)

    cases = [case("C-1", None), case("C-2", "raised_in_error"), case("C-3", "paid")]
    report = build_report(
        ReportInput(
            org_id="org1",
            start=date(2026, 3, 1),
            end=date(2026, 3, 31),
            cases=cases,
            households={},
            late_signals=[],
            sms=[],
            reached_calls=[],
        )
    )
    assert report.cases_active == 2
    assert report.breakdown["age_band"]["30-39"]["cases_opened"] == 2
    assert report.outcomes == {"resolved:paid": 1, "resolved:raised_in_error": 1}
