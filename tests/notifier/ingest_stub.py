"""A stand-in for ingest's internal contacts API, implementing the documented contract.

`GET /internal/v1/leases/{lease_id}/contacts` with `Authorization: Bearer <token>` ->
200 {"lease_id", "org_id", "tenants": [{"tenant_id", "phone", "language", "opted_out"}]},
404 for an unknown lease, 401 for a bad token. (Ingest is built in parallel; the notifier
must not import it.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.notifier.servers import serve_in_thread

TOKEN = "test-service-token"


@dataclass
class IngestStub:
    """Contacts per lease, editable by tests; and the calls seen."""

    token: str = TOKEN
    base_url: str = ""
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def add_lease(
        self,
        lease_id: str,
        *,
        org_id: str = "org1",
        tenants: list[dict[str, Any]] | None = None,
    ) -> None:
        """Register a lease's contacts (default: one Swedish tenant with a phone)."""
        self.leases[lease_id] = {
            "lease_id": lease_id,
            "org_id": org_id,
            "tenants": tenants
            if tenants is not None
            else [
                {"tenant_id": "T1", "phone": "+46701234567", "language": "sv", "opted_out": False}
            ],
        }


def build_app(state: IngestStub) -> FastAPI:
    """Build the stub app."""
    app = FastAPI()

    @app.get("/internal/v1/leases/{lease_id}/contacts")
    async def contacts(lease_id: str, request: Request) -> JSONResponse:
        state.calls.append(lease_id)
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return JSONResponse({"error": "Unauthorized", "detail": "bad token"}, 401)
        if lease_id not in state.leases:
            return JSONResponse({"error": "NotFound", "detail": "unknown lease"}, 404)
        return JSONResponse(state.leases[lease_id])

    return app


@contextmanager
def running_ingest() -> Iterator[IngestStub]:
    """Start the stub on a free port; yield its state."""
    state = IngestStub()
    with serve_in_thread(build_app(state)) as base_url:
        state.base_url = base_url
        yield state
