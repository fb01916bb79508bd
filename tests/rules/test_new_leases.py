"""A lease a batch creates with no facts for the engine is not read back and evaluated:
nothing of it is stored but its lease row, so the evaluation would find nothing."""

from __future__ import annotations

from datetime import date, datetime, time

from rules.consumer import apply_events, evaluate_leases
from rules.engine import quiet
from rules.policy import PolicySet
from rules.store import RulesStore
from shared.clock import STOCKHOLM
from shared.events import (
    CaseOpened,
    CaseStatusChanged,
    CloudEvent,
    ComplaintReceived,
    EventData,
    LeaseEnded,
    LegalStepRecorded,
    ReferralRecorded,
    new_event,
)
from tests.conftest import MakeDatabase
from tests.rules.stream import MARCH_DUE, ORG, _charge, _lease, _pay

NOW = datetime.combine(date(2026, 3, 10), time(12), tzinfo=STOCKHOLM)


def _events(*items: EventData) -> list[CloudEvent[EventData]]:
    return [
        new_event(d, id=f"evt-{d.lease_id}-{n}", source="test", time=NOW)
        for n, d in enumerate(items)
    ]


async def test_a_lease_created_without_facts_is_not_evaluated(make_database: MakeDatabase) -> None:
    db = await make_database("rules")
    policies = PolicySet.load()
    complaint = ComplaintReceived(
        lease_id="L5", org_id=ORG, complaint_id="c-5", category="disturbance", occurred_at=NOW
    )
    ended = LeaseEnded(lease_id="L6", org_id=ORG, end_date=date(2026, 3, 31))
    async with db.sessionmaker() as session, session.begin():
        touched = await apply_events(
            RulesStore(session),
            _events(
                _lease("L1"),  # registered only: not evaluated
                _lease("L2"),
                _charge("L2", "2026-03", MARCH_DUE),  # charged in the same batch
                _pay("L3", "pay-3", 100, date(2026, 3, 1)),  # a placeholder with a payment
                complaint,  # a placeholder with a complaint
                ended,  # a placeholder ended: nothing for the engine
            ),
            NOW,
        )
    assert touched == {"L2", "L3", "L5"}
    # what evaluating L1 and L6 would have done: nothing, they are quiet
    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        states, emitted, open_, _ = await store.load_for_evaluation(["L1", "L6"])
        assert set(states) == {"L1", "L6"} and not emitted and not open_
        assert all(quiet(s, policies.for_org(ORG), frozenset()) for s in states.values())
        assert await evaluate_leases(store, policies, ["L1", "L6"], NOW) == []
    # a lease already there is evaluated as before, facts in the batch or not
    async with db.sessionmaker() as session, session.begin():
        touched = await apply_events(
            RulesStore(session), _events(_lease("L1"), _lease("L3"), _lease("L7")), NOW
        )
    assert touched == {"L1", "L3"}


async def test_lease_writes_return_the_leases_they_inserted(make_database: MakeDatabase) -> None:
    db = await make_database("rules")

    def lease(lease_id: str, rent: int) -> dict[str, object]:
        return {"lease_id": lease_id, "org_id": ORG, "monthly_rent_ore": rent, "due_day": None}

    def placeholder(lease_id: str) -> dict[str, object]:
        return {"lease_id": lease_id, "org_id": ORG, "monthly_rent_ore": 0}

    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        assert await store.upsert_leases([lease("A", 1), lease("B", 1)]) == {"A", "B"}
        assert await store.ensure_leases([placeholder("B"), placeholder("C")]) == {"C"}
        assert await store.ensure_leases([placeholder("C")]) == set()
        new = [lease("A", 2), lease("C", 3), lease("D", 4), lease("D", 5)]
        assert await store.upsert_leases(new) == {"D"}
    async with db.sessionmaker() as session:
        states = await RulesStore(session).load_states(["A", "B", "C", "D"])
    assert {k: s.monthly_rent_ore for k, s in states.items()} == {"A": 2, "B": 1, "C": 3, "D": 5}


async def test_case_events_without_facts_touch_no_lease(make_database: MakeDatabase) -> None:
    """Cases answers every alarm with a case opened (and later a status change or a
    referral): none of them carries a fact the engine reads, so none makes rules evaluate
    the lease again, nor store a placeholder for a lease it has not seen. A legal step
    from the same topic still does."""
    db = await make_database("rules")
    opened = CaseOpened(
        lease_id="L1",
        org_id=ORG,
        case_id="case-1",
        opened_at=NOW,
        trigger_signal_id="L1:2026-03:late_rent_detected",
        reason="late rent",
    )
    status = CaseStatusChanged(
        lease_id="L1", org_id=ORG, case_id="case-1", status="in_contact", at=NOW, reason="call"
    )
    referral = ReferralRecorded(
        lease_id="L1",
        org_id=ORG,
        case_id="case-1",
        referral_id="ref-1",
        recipient="social_services",
        legal_basis="JB 12:44",
        statutory=True,
        referred_on=NOW.date(),
    )
    unknown = opened.model_copy(update={"lease_id": "L9", "case_id": "case-9"})
    step = LegalStepRecorded(
        lease_id="L1",
        org_id=ORG,
        case_id="case-1",
        step_id="step-1",
        step="termination_sent",
        step_date=NOW.date(),
    )
    async with db.sessionmaker() as session, session.begin():
        store = RulesStore(session)
        await apply_events(store, _events(_lease("L1"), _charge("L1", "2026-03", MARCH_DUE)), NOW)
        assert await apply_events(store, _events(opened, status, referral, unknown), NOW) == set()
        assert await apply_events(store, _events(opened, step), NOW) == {"L1"}
    async with db.sessionmaker() as session:
        assert set(await RulesStore(session).load_states(["L1", "L9"])) == {"L1"}
