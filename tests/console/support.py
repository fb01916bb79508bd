"""Helpers of the console tests: the CSRF token of a page or of the session cookie."""

from __future__ import annotations

import base64
import json
import re

import httpx

from services.console.api import SESSION_COOKIE


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def session_csrf(client: httpx.AsyncClient) -> str:
    """Read the CSRF token out of the signed (not encrypted) session cookie."""
    payload = client.cookies[SESSION_COOKIE].split(".")[0]
    data: dict[str, str] = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    return data["csrf"]
