"""Tenant contacts, looked up at send time from ingest's internal API (never stored)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError


class TenantContact(BaseModel):
    """One tenant's contact details as ingest returns them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    phone: str | None = None
    language: str | None = None
    opted_out: bool = False


class LeaseContacts(BaseModel):
    """The body of `GET /internal/v1/leases/{lease_id}/contacts`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lease_id: str
    org_id: str
    tenants: list[TenantContact]


class ContactsUnavailable(Exception):
    """Ingest could not be asked (down, timeout, bad answer); try again later."""


@dataclass
class IngestContacts:
    """Client of ingest's internal contacts API."""

    client: httpx.AsyncClient
    token: str

    async def get(self, lease_id: str) -> LeaseContacts | None:
        """Return the lease's contacts, None for an unknown lease; raise ContactsUnavailable."""
        try:
            response = await self.client.get(
                f"/internal/v1/leases/{lease_id}/contacts",
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            raise ContactsUnavailable(type(exc).__name__) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ContactsUnavailable(f"http_{response.status_code}")
        try:
            return LeaseContacts.model_validate_json(response.content)
        except ValidationError as exc:
            raise ContactsUnavailable("invalid_body") from exc
