"""401/403 for every endpoint: the route table × every role × what covers the case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from services.cases.api import create_app
from services.cases.config import CasesSettings
from shared.auth import encode_token
from tests.cases.conftest import NOW, SECRET, App, open_case

STAFF = {"landlord_staff", "bosocial", "admin"}
ALL = STAFF | {"social_services", "budget_debt_advice"}
TODAY = NOW.date().isoformat()


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path template, body, roles it admits, the case section it reads."""

    method: str
    path: str
    roles: frozenset[str]
    section: str | None = None
    body: Any = None


ROUTES = [
    Route("GET", "/v1/cases", frozenset(ALL)),
    Route("GET", "/v1/cases/{case_id}", frozenset(ALL), "case"),
    Route(
        "POST",
        "/v1/cases/{case_id}/status",
        frozenset(STAFF),
        "case",
        {"status": "in_contact", "reason": "called"},
    ),
    Route("POST", "/v1/cases/{case_id}/assign", frozenset(STAFF), "case", {"reason": "mine"}),
    Route("POST", "/v1/cases/{case_id}/notes", frozenset(STAFF), "notes", {"text": "note"}),
    Route("GET", "/v1/cases/{case_id}/notes", frozenset(ALL), "notes"),
    Route("GET", "/v1/cases/{case_id}/timeline", frozenset(ALL), "case"),
    Route("GET", "/v1/cases/{case_id}/referrals", frozenset(ALL), "referrals"),
    Route(
        "POST",
        "/v1/cases/{case_id}/referrals",
        frozenset(STAFF),
        "referrals",
        {"recipient": "social_services", "notice": "disturbance_warning", "referred_on": TODAY},
    ),
    Route(
        "POST",
        "/v1/cases/{case_id}/referrals/{referral_id}/outcome",
        frozenset(STAFF),
        "referrals",
        {"outcome": "help offered"},
    ),
    Route("GET", "/v1/cases/{case_id}/consents", frozenset(ALL), "consents"),
    Route(
        "POST",
        "/v1/cases/{case_id}/consents",
        frozenset(STAFF),
        "consents",
        {"scope": ["budget_debt_advice"], "given_on": TODAY, "document_ref": "d"},
    ),
    Route(
        "POST", "/v1/cases/{case_id}/consents/{consent_id}/withdraw", frozenset(STAFF), "consents"
    ),
    Route("GET", "/v1/cases/{case_id}/legal-steps", frozenset(ALL), "legal_steps"),
    Route(
        "POST",
        "/v1/cases/{case_id}/legal-steps",
        frozenset(STAFF),
        "legal_steps",
        {"step": "termination_sent", "step_date": TODAY},
    ),
    Route("GET", "/v1/cases/{case_id}/payment-plans", frozenset(ALL), "payment_plans"),
    Route(
        "POST",
        "/v1/cases/{case_id}/payment-plans",
        frozenset(STAFF),
        "payment_plans",
        {"agreed_on": TODAY, "installments": [{"due_date": TODAY, "amount_ore": 1}]},
    ),
    Route("GET", "/v1/cases/{case_id}/meetings", frozenset(ALL), "meetings"),
    Route(
        "POST",
        "/v1/cases/{case_id}/meetings",
        frozenset(STAFF),
        "meetings",
        {"held_on": TODAY, "participants": ["tenant"], "outcome": "ok"},
    ),
    Route("GET", "/v1/orgs/{org_id}/report?start=2026-01-01&end=2026-03-31", frozenset(STAFF)),
    Route("GET", "/v1/orgs/{org_id}/settings", frozenset(STAFF)),
    Route("PUT", "/v1/orgs/{org_id}/settings", frozenset({"admin"}), None, {"home_count": 1000}),
    Route("GET", "/v1/audit/verify", frozenset({"admin"})),
    Route("POST", "/v1/admin/retention/purge", frozenset({"admin"})),
]

STATUTORY = {"case", "referrals", "legal_steps"}


def test_the_route_table_covers_every_endpoint() -> None:
    app = create_app(CasesSettings())
    served = {
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/v1")
        for method in ops
    }
    listed = {(r.method, r.path.split("?")[0]) for r in ROUTES}
    assert served == listed


def expected_denied(route: Route, role: str, cover: str, org: str) -> bool:
    """Tell whether `role` (of `org`) must get 403 when the case is covered by `cover`."""
    if role not in route.roles:
        return True
    if route.section is None:
        # Organisation-scoped endpoints: staff of another organisation are refused.
        return role != "admin" and org != "org1" and "{org_id}" in route.path
    if role == "admin":
        return False
    if role in ("landlord_staff", "bosocial"):
        return org != "org1"
    if cover == "consent":
        return False
    if cover == "statutory" and role == "social_services":
        return route.section not in STATUTORY
    return True


async def _prepare(app: App, cover: str) -> str:
    case_id = await open_case(app.database)
    admin = app.token("admin")
    if cover == "consent":
        got = await app.client.post(
            f"/v1/cases/{case_id}/consents",
            json={
                "scope": ["social_services", "budget_debt_advice"],
                "given_on": TODAY,
                "document_ref": "signed-1",
            },
            headers=admin,
        )
        assert got.status_code == 201
    if cover == "statutory":
        got = await app.client.post(
            f"/v1/cases/{case_id}/referrals",
            json={
                "recipient": "social_services",
                "notice": "termination_notice",
                "referred_on": TODAY,
                "amount_owed_ore": 100,
            },
            headers=admin,
        )
        assert got.status_code == 201
    return case_id


def _url(route: Route, case_id: str) -> str:
    return route.path.format(case_id=case_id, referral_id="R-x", consent_id="K-x", org_id="org1")


@pytest.mark.parametrize("cover", ["none", "statutory", "consent"])
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path.split('?')[0]}")
async def test_every_role_on_every_endpoint(cases_app: App, route: Route, cover: str) -> None:
    case_id = await _prepare(cases_app, cover)
    url = _url(route, case_id)
    for role in sorted(ALL):
        for org in ("org1", "org2"):
            headers = cases_app.token(role, org=org)
            got = await cases_app.client.request(
                route.method, url, json=route.body, headers=headers
            )
            denied = expected_denied(route, role, cover, org)
            assert got.status_code != 401, (role, org, got.text)
            if denied:
                assert got.status_code == 403, (role, org, cover, got.status_code, got.text)
                assert got.json()["error"] == "Forbidden"
            else:
                assert got.status_code not in (401, 403, 500), (role, org, got.text)


def _bad_tokens(app: App) -> dict[str, dict[str, str]]:
    now = app.clock.now()
    expired = encode_token(
        {"sub": "u", "role": "admin"}, SECRET, now=now - timedelta(days=2), ttl=timedelta(hours=1)
    )
    forged = encode_token(
        {"sub": "u", "role": "admin"}, "another-secret-0123456789abcdef-xyz", now=now
    )
    unknown_role = encode_token({"sub": "u", "role": "tenant"}, SECRET, now=now)
    no_role = encode_token({"sub": "u"}, SECRET, now=now)
    admin = {"sub": "u", "role": "admin"}
    later = now + timedelta(hours=1)
    not_yet = encode_token({**admin, "nbf": int(later.timestamp())}, SECRET, now=now)
    issued_later = encode_token(admin, SECRET, now=later)
    too_long = encode_token(admin, SECRET, now=now, ttl=timedelta(hours=13))
    return {
        "missing": {},
        "not bearer": {"Authorization": "Basic dTpw"},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "forged": {"Authorization": f"Bearer {forged}"},
        "unknown role": {"Authorization": f"Bearer {unknown_role}"},
        "no role": {"Authorization": f"Bearer {no_role}"},
        "nbf in the future": {"Authorization": f"Bearer {not_yet}"},
        "iat in the future": {"Authorization": f"Bearer {issued_later}"},
        "lifetime over 12 h": {"Authorization": f"Bearer {too_long}"},
    }


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path.split('?')[0]}")
async def test_every_endpoint_needs_a_valid_token(cases_app: App, route: Route) -> None:
    case_id = await open_case(cases_app.database)
    for name, headers in _bad_tokens(cases_app).items():
        got = await cases_app.client.request(
            route.method, _url(route, case_id), json=route.body, headers=headers
        )
        assert got.status_code == 401, (name, got.text)
        assert got.json()["error"] == "Unauthorized"
        assert got.headers["www-authenticate"].startswith("Bearer")
