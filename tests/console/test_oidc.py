"""OIDC sign-in (authorization code with PKCE) against a local provider run in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from services.console.api import create_app
from services.console.config import ConsoleSettings
from tests.console.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, build_app
from tests.console.support import session_csrf
from tests.notifier.servers import serve_in_thread


@pytest.fixture
def idp() -> Iterator[Provider]:
    provider = Provider()
    with serve_in_thread(build_app(provider)) as url:
        provider.issuer = url
        yield provider


@pytest.fixture
async def console(idp: Provider) -> AsyncIterator[httpx.AsyncClient]:
    settings = ConsoleSettings(
        console_session_secret="console-test-session-secret-0123456789abcdef",
        console_oidc_issuer=idp.issuer,
        console_oidc_client_id=CLIENT_ID,
        console_oidc_client_secret=CLIENT_SECRET,
        console_public_url="http://127.0.0.1:8005",
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8005") as c:
        yield c


async def sign_in(console: httpx.AsyncClient) -> tuple[httpx.Response, dict[str, Any]]:
    """Walk the browser's redirects: console -> provider -> console callback."""
    start = await console.get("/login/oidc")
    assert start.status_code == 302
    authorize = start.headers["location"]
    query = {k: v[0] for k, v in parse_qs(urlparse(authorize).query).items()}
    async with httpx.AsyncClient() as browser:
        back = await browser.get(authorize)
    assert back.status_code == 302, back.text
    callback = urlparse(back.headers["location"])
    assert callback.path == "/auth/callback"
    return await console.get(f"{callback.path}?{callback.query}"), query


async def test_sign_in_with_code_and_pkce_maps_the_claims_onto_a_role(
    console: httpx.AsyncClient, idp: Provider
) -> None:
    idp.claims = {"sub": "u-4711", "bokvar_role": "bosocial", "bokvar_org": "bostader"}
    login = await console.get("/login")
    assert "/login/oidc" in login.text and "ENDAST FÖR UTVECKLING" not in login.text
    done, query = await sign_in(console)
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["redirect_uri"] == "http://127.0.0.1:8005/auth/callback"
    assert "code_verifier" in idp.token_requests[0]
    assert (done.status_code, done.headers["location"]) == (303, "/tasks")
    page = await console.get("/login")
    assert "u-4711" in page.text and "Bosocial samordnare" in page.text and "DEV" not in page.text


async def test_a_user_without_a_bokvar_role_is_refused(
    console: httpx.AsyncClient, idp: Provider
) -> None:
    idp.claims = {"sub": "u-1", "bokvar_role": "superuser", "bokvar_org": "bostader"}
    done, _ = await sign_in(console)
    assert done.status_code == 403
    assert (await console.get("/tasks")).headers["location"] == "/login"


async def test_a_replayed_or_forged_callback_is_refused(
    console: httpx.AsyncClient, idp: Provider
) -> None:
    idp.claims = {"sub": "u-2", "bokvar_role": "admin", "bokvar_org": "bostader"}
    done, _ = await sign_in(console)
    assert done.status_code == 303
    forged = await console.get("/auth/callback?code=stolen&state=made-up")
    assert forged.status_code == 403


async def test_the_dev_sign_in_is_refused_when_an_identity_provider_is_set(
    console: httpx.AsyncClient,
) -> None:
    await console.get("/login")
    form = {"sub": "x", "role": "admin", "org": "o", "csrf_token": session_csrf(console)}
    refused = await console.post("/login/dev", data=form)
    assert refused.status_code == 403 and "behörighet" in refused.text
