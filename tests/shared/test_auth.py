"""Bearer JWTs: what verify_token refuses, and why (the reason is the 401's detail)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.auth import InvalidToken, encode_token, verify_token

SECRET = "unit-test-secret-0123456789abcdef-xyz"
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
MAX = timedelta(hours=12)


def _verify(token: str) -> dict[str, object]:
    return verify_token(token, SECRET, now=NOW, max_lifetime=MAX)


def test_a_token_of_the_maximum_lifetime_is_accepted() -> None:
    token = encode_token({"sub": "u", "nbf": int(NOW.timestamp())}, SECRET, now=NOW, ttl=MAX)
    assert _verify(token)["sub"] == "u"


@pytest.mark.parametrize(
    ("claims", "issued", "ttl", "reason"),
    [
        ({"nbf": int((NOW + timedelta(minutes=5)).timestamp())}, NOW, MAX, "nbf"),
        ({}, NOW + timedelta(minutes=5), timedelta(hours=1), "iat"),
        ({}, NOW, MAX + timedelta(minutes=5), "maximum of 12 h"),
        ({"iat": "yesterday"}, NOW, MAX, "iat is not a number"),
        ({}, NOW - timedelta(hours=3), timedelta(hours=1), "expired"),
    ],
)
def test_refused_tokens_say_why(
    claims: dict[str, object], issued: datetime, ttl: timedelta, reason: str
) -> None:
    token = encode_token({"sub": "u", **claims}, SECRET, now=issued, ttl=ttl)
    with pytest.raises(InvalidToken, match=reason):
        _verify(token)


def test_without_iat_the_lifetime_counts_from_now() -> None:
    exp = int((NOW + timedelta(days=30)).timestamp())
    token = encode_token({"sub": "u", "iat": None, "exp": exp}, SECRET, now=NOW)
    with pytest.raises(InvalidToken, match="maximum"):
        _verify(token)
