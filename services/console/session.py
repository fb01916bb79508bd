"""The signed-in user in the signed session cookie, and the CSRF token of its forms."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

ROLES = ("landlord_staff", "bosocial", "social_services", "budget_debt_advice", "admin")
STAFF_ROLES = ("landlord_staff", "bosocial", "admin")


class SignInRequired(Exception):
    """No valid session: the page redirects to the sign-in page."""


class CsrfFailed(Exception):
    """A form came without the session's CSRF token."""


class NotAllowed(Exception):
    """The signed-in role may not use this page."""


@dataclass(frozen=True)
class User:
    """Who is signed in: the claims the cases API checks (no name, no personal data)."""

    sub: str
    role: str
    org: str | None
    municipality: str | None
    via: str  # "oidc" or "dev"

    @property
    def staff(self) -> bool:
        """Tell whether the user works cases and tasks (landlord staff, bosocial, admin)."""
        return self.role in STAFF_ROLES


def sign_in(request: Request, user: User, *, hours: float) -> None:
    """Start a session for `user` (a new CSRF token, an expiry in real time)."""
    request.session.clear()
    request.session["user"] = asdict(user)
    request.session["exp"] = time.time() + hours * 3600
    request.session["csrf"] = secrets.token_urlsafe(32)


def current_user(request: Request) -> User | None:
    """Return the signed-in user, or None when there is no live session."""
    data: dict[str, Any] | None = request.session.get("user")
    if not data or float(request.session.get("exp", 0)) < time.time():
        return None
    try:
        user = User(**data)
    except TypeError:
        return None
    return user if user.role in ROLES else None


def csrf_token(request: Request) -> str:
    """Return the session's CSRF token, creating one for an anonymous session."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


async def check_csrf(request: Request) -> None:
    """Refuse a POST whose form token does not match the session's."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfFailed


def require_user(request: Request) -> User:
    """Return the signed-in user or send the browser to the sign-in page."""
    user = current_user(request)
    if user is None:
        raise SignInRequired
    return user


def require_staff(user: Annotated[User, Depends(require_user)]) -> User:
    """Return the user if they work cases and tasks."""
    if not user.staff:
        raise NotAllowed
    return user


SignedIn = Annotated[User, Depends(require_user)]
StaffUser = Annotated[User, Depends(require_staff)]
Csrf = Depends(check_csrf)
