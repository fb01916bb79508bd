"""The console's sign-in, session, CSRF and language handling, through the ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.cases.config import CasesSettings
from services.console.api import SESSION_COOKIE, create_app
from services.console.config import ConsoleSettings
from tests.console.support import csrf_of, session_csrf

SECRET = "console-test-session-secret-0123456789abcdef"


def settings(**values: Any) -> ConsoleSettings:
    return ConsoleSettings(console_session_secret=SECRET, **values)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as http,
    ):
        yield http


async def dev_sign_in(client: httpx.AsyncClient, role: str = "landlord_staff") -> httpx.Response:
    page = await client.get("/login")
    form = {"csrf_token": csrf_of(page.text), "sub": "anna", "role": role, "org": "bostader"}
    return await client.post("/login/dev", data=form)


async def test_pages_send_an_anonymous_visitor_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/", "/tasks", "/cases", "/dashboard", "/social", "/cases/C-1"):
        response = await client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/login"), path


async def test_dev_sign_in_is_marked_and_lands_on_the_role_s_first_page(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/login")
    assert "ENDAST FÖR UTVECKLING" in page.text
    for role, home in (
        ("landlord_staff", "/tasks"),
        ("bosocial", "/tasks"),
        ("admin", "/tasks"),
        ("social_services", "/social"),
        ("budget_debt_advice", "/cases"),
    ):
        response = await dev_sign_in(client, role)
        assert (response.status_code, response.headers["location"]) == (303, home), role


async def test_a_form_without_the_session_s_csrf_token_is_refused(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/login")
    form = {"sub": "anna", "role": "admin", "org": "bostader"}
    assert (await client.post("/login/dev", data=form)).status_code == 403
    wrong = await client.post("/login/dev", data={**form, "csrf_token": "forged"})
    assert wrong.status_code == 403 and "Formuläret hade gått ut" in wrong.text
    await dev_sign_in(client)
    assert (await client.post("/logout", data={"csrf_token": "forged"})).status_code == 403


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    await dev_sign_in(client, "social_services")
    page = await client.get("/login")
    response = await client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert (await client.get("/social")).headers["location"] == "/login"


async def test_a_forged_session_cookie_is_not_a_session(client: httpx.AsyncClient) -> None:
    await dev_sign_in(client)
    cookie = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, cookie[:-4] + "AAAA", domain="127.0.0.1")
    assert (await client.get("/tasks")).headers["location"] == "/login"


async def test_a_role_sees_only_its_pages(client: httpx.AsyncClient) -> None:
    await dev_sign_in(client, "social_services")
    for path in ("/tasks", "/dashboard", "/tasks/T-1"):
        assert (await client.get(path)).status_code == 403, path


async def test_english_on_request_and_kept_in_a_cookie(client: httpx.AsyncClient) -> None:
    english = await client.get("/login?lang=en")
    assert "DEVELOPMENT ONLY" in english.text and 'lang="en"' in english.text
    assert "DEVELOPMENT ONLY" in (await client.get("/login")).text
    assert "ENDAST FÖR UTVECKLING" in (await client.get("/login?lang=sv")).text


async def test_pages_carry_a_strict_content_security_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert '<script src="/static/htmx.min.js"' in page.text
    htmx = await client.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]


async def test_cookie_is_secure_off_loopback_and_dev_sign_in_needs_opting_in() -> None:
    public = create_app(settings(host="0.0.0.0"))
    transport = httpx.ASGITransport(app=public)
    async with httpx.AsyncClient(transport=transport, base_url="https://console.example") as c:
        page = await c.get("/login")
        assert "secure" in page.headers["set-cookie"].lower()
        assert "ENDAST FÖR UTVECKLING" not in page.text
        form = {"csrf_token": session_csrf(c), "sub": "x", "role": "admin", "org": "o"}
        assert (await c.post("/login/dev", data=form)).status_code == 403
    assert settings(host="0.0.0.0", console_dev_signin=True).dev_signin


def test_dev_sign_in_is_off_once_an_identity_provider_is_configured() -> None:
    oidc = settings(console_oidc_issuer="https://idp.example", console_oidc_client_id="bokvar")
    assert not oidc.dev_signin
    with pytest.raises(ValidationError, match="client_id"):
        settings(console_oidc_issuer="https://idp.example")


def test_session_secret_must_be_at_least_32_bytes() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        ConsoleSettings(console_session_secret="short")


def test_the_dev_session_key_is_refused_off_loopback() -> None:
    assert ConsoleSettings().loopback
    with pytest.raises(ValidationError, match="refused off loopback"):
        ConsoleSettings(host="0.0.0.0")


def test_the_console_signs_with_the_key_the_cases_service_checks_by_default() -> None:
    # The dev sign-in of `bokvar up` works only if both defaults are the same key.
    console = ConsoleSettings().cases_jwt_secret.get_secret_value()
    assert console == CasesSettings().cases_jwt_secret.get_secret_value()


async def test_a_badly_filled_form_is_a_page_naming_the_field(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    form = {"csrf_token": csrf_of(page.text), "sub": "anna smith!", "role": "admin"}
    response = await client.post("/login/dev", data=form)
    assert response.status_code == 422
    assert "text/html" in response.headers["content-type"]
    assert "Formuläret är inte rätt ifyllt" in response.text and "sub:" in response.text
