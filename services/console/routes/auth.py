"""Sign-in (OIDC authorization code with PKCE, or the marked dev sign-in) and sign-out."""

from __future__ import annotations

import warnings
from typing import Annotated, Any

import structlog
from authlib.deprecate import AuthlibDeprecationWarning
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from services.console.config import ConsoleSettings
from services.console.render import render
from services.console.session import ROLES, Csrf, NotAllowed, User, current_user, sign_in

# authlib 1.9 warns on import that it would rather have httpx2; the console uses the httpx
# integration on purpose, and the warning on stderr would bury the one-line start errors.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError

router = APIRouter(tags=["sign-in"], include_in_schema=False)
log = structlog.get_logger()
IDP = "idp"
_ID = r"^[A-Za-z0-9._:@\-]{1,100}$"


def oauth_client(settings: ConsoleSettings) -> OAuth | None:
    """Register the organisation's identity provider (None when no issuer is configured)."""
    if not settings.console_oidc_issuer:
        return None
    oauth = OAuth()
    secret = settings.console_oidc_client_secret
    oauth.register(
        IDP,
        server_metadata_url=settings.console_oidc_issuer.rstrip("/")
        + "/.well-known/openid-configuration",
        client_id=settings.console_oidc_client_id,
        client_secret=secret.get_secret_value() if secret else None,
        client_kwargs={"scope": settings.console_oidc_scope, "code_challenge_method": "S256"},
    )
    return oauth


def _settings(request: Request) -> ConsoleSettings:
    settings: ConsoleSettings = request.app.state.settings
    return settings


def home_for(user: User) -> str:
    """Return the first page of a role."""
    if user.role == "social_services":
        return "/social"
    if user.role == "budget_debt_advice":
        return "/cases"
    return "/tasks"


@router.get("/")
async def home(request: Request) -> Response:
    """Send the user to their first page, or to sign in."""
    user = current_user(request)
    return RedirectResponse("/login" if user is None else home_for(user), status_code=303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    """Show the sign-in page."""
    settings = _settings(request)
    return render(
        request,
        "login.html",
        oidc=bool(settings.console_oidc_issuer),
        dev=settings.dev_signin,
        roles=ROLES,
    )


@router.post("/login/dev", dependencies=[Csrf])
async def dev_login(
    request: Request,
    sub: Annotated[str, Form(pattern=_ID)],
    role: Annotated[str, Form()],
    org: Annotated[str, Form(max_length=64)] = "",
    municipality: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Sign in without an identity provider (dev only: refused when OIDC is configured)."""
    settings = _settings(request)
    if not settings.dev_signin or role not in ROLES:
        raise NotAllowed
    user = User(sub, role, org or None, municipality or None, "dev")
    sign_in(request, user, hours=settings.console_session_hours)
    log.info("console.signed_in", via="dev", role=role, org=org or None)
    return RedirectResponse(home_for(user), status_code=303)


@router.get("/login/oidc")
async def oidc_start(request: Request) -> Response:
    """Send the browser to the identity provider (authorization code with PKCE S256)."""
    oauth: OAuth | None = request.app.state.oauth
    if oauth is None:
        raise NotAllowed
    base = _settings(request).console_public_url.rstrip("/") or str(request.base_url).rstrip("/")
    redirect: Response = await oauth.create_client(IDP).authorize_redirect(
        request, base + "/auth/callback"
    )
    return redirect


@router.get("/auth/callback")
async def oidc_callback(request: Request) -> Response:
    """Finish the OIDC sign-in: exchange the code, map the claims onto a Bokvar role."""
    oauth: OAuth | None = request.app.state.oauth
    if oauth is None:
        raise NotAllowed
    settings = _settings(request)
    try:
        token: dict[str, Any] = await oauth.create_client(IDP).authorize_access_token(request)
    except OAuthError as exc:
        log.warning("console.oidc_failed", error=exc.error)
        raise NotAllowed from exc
    claims: dict[str, Any] = dict(token.get("userinfo") or {})
    role = claims.get(settings.console_oidc_role_claim)
    if role not in ROLES or not claims.get("sub"):
        log.warning("console.oidc_unmapped_role", role_present=role is not None)
        raise NotAllowed
    org = claims.get(settings.console_oidc_org_claim)
    municipality = claims.get(settings.console_oidc_municipality_claim)
    user = User(
        str(claims["sub"])[:100],
        role,
        str(org) if org else None,
        str(municipality) if municipality else None,
        "oidc",
    )
    sign_in(request, user, hours=settings.console_session_hours)
    log.info("console.signed_in", via="oidc", role=role, org=user.org)
    return RedirectResponse(home_for(user), status_code=303)


@router.post("/logout", dependencies=[Csrf])
async def logout(request: Request) -> Response:
    """End the session."""
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
