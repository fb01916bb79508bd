"""The policy file: loading, per-organisation overrides, validation errors."""

from __future__ import annotations

from datetime import date

import pytest

from rules.engine import LeaseState, evaluate
from rules.policy import DEFAULT_POLICY, PolicyError, PolicySet, parse_document, validate_policy
from tests.rules.scenario import at, charge, payment

MARCH_DUE = date(2026, 2, 27)


def test_default_policy_is_versioned_and_follows_domain() -> None:
    policy = PolicySet.load().default
    assert policy.version == "2026.3"
    ladder = {s.name: (s.offset_days, s.unit) for s in policy.ladder}
    assert ladder == {
        "pre_due_reminder": (-3, "calendar"),
        "late_rent_detected": (1, "working"),
        "personal_contact_needed": (3, "working"),
        "forfeiture_possible": (8, "calendar"),
    }
    assert policy.recovery.length_days == 21
    assert sum(f.weight for f in policy.risk.factors.values()) == 100


def test_an_organisation_override_changes_what_fires() -> None:
    policies = PolicySet.load()
    override = policies.for_org("example-org")
    assert (
        override.version == "2026.3-example-org" and policies.for_org("other") is policies.default
    )
    assert override.risk == policies.default.risk  # merged over the default
    owes_30_kr = LeaseState(
        "L1",
        "example-org",
        800_000,
        entries=(charge("2026-03", MARCH_DUE), payment("p1", 797_000, MARCH_DUE)),
    )
    now = at(date(2026, 3, 3))  # the stage of 03-02, after the settlement lag
    assert [s.signal for s in evaluate(owes_30_kr, policies.default, now, frozenset()).signals] == [
        "late_rent_detected"
    ]
    assert evaluate(owes_30_kr, override, now, frozenset()).signals == []


def test_duplicate_stage_names_are_rejected() -> None:
    doc = parse_document(DEFAULT_POLICY.read_bytes())
    doc["ladder"][2]["name"] = "late_rent_detected"
    with pytest.raises(PolicyError) as info:
        validate_policy(doc)
    assert info.value.errors[0]["reason"].endswith("ladder stage names must be unique")


def test_unparseable_text_names_the_document() -> None:
    with pytest.raises(PolicyError) as info:
        parse_document(b"version: [unclosed")
    assert info.value.errors[0]["field"] == "(document)"
