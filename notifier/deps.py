"""FastAPI dependencies of the notifier: the service state, DB session, bearer token."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.config import NotifierSettings
from notifier.store import NotifierStore
from notifier.workflow import Context
from shared.http import Unauthorized
from shared.runtime import Runtime


@dataclass
class NotifierState:
    """What the lifespan built and requests use."""

    rt: Runtime
    settings: NotifierSettings
    ctx: Context


def get_state(request: Request) -> NotifierState:
    """Return the service state the lifespan stored on the app."""
    state: NotifierState = request.app.state.notifier
    return state


State = Annotated[NotifierState, Depends(get_state)]


async def get_store(state: State) -> AsyncIterator[NotifierStore]:
    """Open a transaction for the request; commit when the endpoint returns."""
    session: AsyncSession
    async with state.rt.database.sessionmaker.begin() as session:
        yield NotifierStore(session, clock=state.rt.clock)
    if state.rt.relay is not None:
        state.rt.relay.wake()


Store = Annotated[NotifierStore, Depends(get_store)]


# Declares the scheme in OpenAPI (Swagger UI's Authorize); the check reads the header itself.
SERVICE_TOKEN = HTTPBearer(
    auto_error=False,
    scheme_name="ServiceToken",
    description="The service token (BOKVAR_SERVICE_TOKEN).",
)


def require_service_token(
    request: Request,
    state: State,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(SERVICE_TOKEN)] = None,
) -> None:
    """Require `Authorization: Bearer <service token>` on staff endpoints."""
    expected = state.settings.service_token.get_secret_value()
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), expected):
        raise Unauthorized(
            "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
