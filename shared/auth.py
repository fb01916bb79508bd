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
) -> dict[str, Any]:
    """Return the claims of a valid token; raise InvalidToken with the reason otherwise."""
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
    exp = claims.get("exp")
    if exp is not None:
        if not isinstance(exp, int | float):
            raise InvalidToken("claim exp is not a number")
        if now.timestamp() > exp + leeway.total_seconds():
            raise InvalidToken("token expired")
    return claims


def bearer(authorization: str | None) -> str:
    """Return the token of an `Authorization: Bearer <token>` header, or raise InvalidToken."""
    if not authorization:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    return token.strip()
