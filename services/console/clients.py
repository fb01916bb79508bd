"""HTTP clients of the services the console shows: cases (user token), notifier, rules, ingest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from services.console.config import ConsoleSettings
from services.console.session import User
from shared.auth import encode_token
from shared.clock import Clock

# Cases tokens are minted per request and live only as long as a page takes to build.
TOKEN_TTL = timedelta(minutes=5)


@dataclass
class BackendError(Exception):
    """A service answered with an error; `detail` is its error body's detail."""

    service: str
    status: int
    detail: Any

    def __str__(self) -> str:
        return f"{self.service} answered {self.status}"


class Backends:
    """One pooled httpx client per service; the lifespan opens and closes them."""

    def __init__(self, settings: ConsoleSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        timeout = settings.console_http_timeout_seconds
        self.http = {
            name: httpx.AsyncClient(base_url=url, timeout=timeout)
            for name, url in (
                ("cases", settings.console_cases_url),
                ("notifier", settings.console_notifier_url),
                ("rules", settings.console_rules_url),
                ("ingest", settings.console_ingest_url),
            )
        }

    async def aclose(self) -> None:
        """Close every client."""
        for client in self.http.values():
            await client.aclose()

    def user_token(self, user: User) -> str:
        """Mint a short-lived cases JWT carrying the signed-in user's identity and role."""
        claims = {"sub": user.sub, "role": user.role, "org": user.org}
        if user.municipality:
            claims["municipality"] = user.municipality
        secret = self.settings.cases_jwt_secret.get_secret_value()
        return encode_token(claims, secret, now=self.clock.now(), ttl=TOKEN_TTL)

    async def cases(self, user: User, method: str, path: str, **kw: Any) -> Any:
        """Call the cases API as the signed-in user; return the parsed JSON (or text)."""
        headers = {
            "Authorization": f"Bearer {self.user_token(user)}",
            "X-Audit-Reason": "staff console",
        }
        return await self._call("cases", method, path, headers, **kw)

    async def service(self, service: str, method: str, path: str, **kw: Any) -> Any:
        """Call notifier, rules or ingest with the service token (callers check access first)."""
        token = self.settings.service_token.get_secret_value()
        return await self._call(service, method, path, {"Authorization": f"Bearer {token}"}, **kw)

    async def _call(
        self, service: str, method: str, path: str, headers: dict[str, str], **kw: Any
    ) -> Any:
        try:
            response = await self.http[service].request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise BackendError(service, 503, f"{service} unreachable") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:300]
            raise BackendError(service, response.status_code, detail)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text
