"""Bearer JWTs (HS256): encode and verify with an injected clock. Reusable by any service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import jwt

ALGORITHM = "HS256"


class InvalidToken(ValueError):
    """A token is missing, malformed, badly signed, expired or lacks a claim; says which."""


def encode_token(
    claims: Mapping[str, Any], secret: str, *, now: datetime, ttl: timedelta = timedelta(hours=8)
) -> str:
    """Return a signed HS256 JWT with `iat` and `exp` set from `now`."""
    body = dict(claims)
    body.setdefault("iat", int(now.timestamp()))
    body.setdefault("exp", int((now + ttl).timestamp()))
    return jwt.encode(body, secret, algorithm=ALGORITHM)


def verify_token(
    token: str,
    secret: str,
    *,
    now: datetime,
    required: Iterable[str] = ("sub", "exp"),
    leeway: timedelta = timedelta(seconds=30),
    max_lifetime: timedelta | None = None,
) -> dict[str, Any]:
    """Return the claims of a valid token; raise InvalidToken with the reason otherwise.

    Refused besides a bad signature or a missing claim: expired, `nbf` or `iat` in the
    future, and a lifetime (`exp` minus `iat`, or minus now without `iat`) over `max_lifetime`.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("bad signature") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc
    for name in required:
        if name not in claims:
            raise InvalidToken(f"missing claim {name}")
    times = {name: _instant(claims, name) for name in ("exp", "nbf", "iat")}
    at, slack = now.timestamp(), leeway.total_seconds()
    exp, nbf, iat = times["exp"], times["nbf"], times["iat"]
    if exp is not None and at > exp + slack:
        raise InvalidToken("token expired")
    if nbf is not None and nbf > at + slack:
        raise InvalidToken("token not valid yet (nbf is in the future)")
    if iat is not None and iat > at + slack:
        raise InvalidToken("token issued in the future (iat)")
    limit = None if max_lifetime is None else max_lifetime.total_seconds()
    if limit is not None and exp is not None and exp - (iat or at) > limit + slack:
        raise InvalidToken(f"token lifetime exceeds the maximum of {limit / 3600:g} h")
    return claims


def _instant(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"claim {name} is not a number")
    return float(value)


def bearer(authorization: str | None) -> str:
    """Return the token of an `Authorization: Bearer <token>` header, or raise InvalidToken."""
    if not authorization:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    return token.strip()
