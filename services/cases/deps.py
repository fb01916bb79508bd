"""Request dependencies: the session (the one place that commits), the caller, access, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import engine
from services.cases.config import CasesSettings
from services.cases.models import outbox
from services.cases.store import AuditStore, CasesStore
from shared.auth import InvalidToken, bearer, verify_token
from shared.bus import add_to_outbox
from shared.clock import local_date
from shared.events import CloudEvent, EventData
from shared.http import Forbidden, NotFound, Unauthorized, Unprocessable
from shared.runtime import Runtime

Row = dict[str, Any]
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bokvar-cases"'}
# Declares the scheme in OpenAPI (Swagger UI's Authorize); `principal` reads the header.
STAFF_JWT = HTTPBearer(
    auto_error=False,
    scheme_name="StaffJWT",
    bearerFormat="JWT",
    description="HS256 JWT signed with BOKVAR_CASES_JWT_SECRET: sub, role, exp (org, "
    "municipality); at most BOKVAR_CASES_JWT_MAX_LIFETIME_HOURS long.",
)


@dataclass
class Ctx:
    """One request: who calls, why, the session, the clock's now, the events to publish."""

    rt: Runtime
    session: AsyncSession
    principal: engine.Principal
    reason: str | None
    now: datetime
    events: list[CloudEvent[EventData]] = field(default_factory=list)

    @property
    def store(self) -> CasesStore:
        """Return the cases store on the request session."""
        return CasesStore(self.session)

    async def emit(self, event: CloudEvent[EventData]) -> None:
        """Stage an event; it goes to the outbox with the request's transaction."""
        self.events.append(event)

    async def audit(self, action: str, *, case_id: str | None, outcome: str = "allowed") -> None:
        """Record this access in the audit chain (its own transaction, before the action)."""
        p = self.principal
        async with self.rt.database.sessionmaker() as session, session.begin():
            await AuditStore(session).append(
                at=self.now,
                actor=p.sub,
                role=p.role,
                org_id=p.org,
                action=action,
                outcome=outcome,
                case_id=case_id,
                reason=self.reason,
            )


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def _settings(request: Request) -> CasesSettings:
    settings: CasesSettings = request.app.state.settings
    return settings


async def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(STAFF_JWT)] = None,
) -> engine.Principal:
    """Return the caller from a valid bearer JWT; 401 otherwise."""
    settings = _settings(request)
    try:
        claims = verify_token(
            bearer(request.headers.get("authorization")),
            settings.cases_jwt_secret.get_secret_value(),
            now=_rt(request).clock.now(),
            required=("sub", "role", "exp"),
            max_lifetime=timedelta(hours=settings.cases_jwt_max_lifetime_hours),
        )
    except InvalidToken as exc:
        raise Unauthorized(str(exc), headers=_CHALLENGE) from exc
    role, sub = claims.get("role"), claims.get("sub")
    if role not in engine.ROLES or not isinstance(sub, str) or not sub:
        raise Unauthorized("token has an unknown role or no subject", headers=_CHALLENGE)
    org, municipality = claims.get("org"), claims.get("municipality")
    return engine.Principal(
        sub=sub,
        role=role,
        org=org if isinstance(org, str) else None,
        municipality=municipality if isinstance(municipality, str) else None,
    )


def require(*roles: engine.Role) -> Callable[..., Coroutine[Any, Any, AsyncIterator[Ctx]]]:
    """Return a dependency: 401 without a valid token, 403 for other roles, else a Ctx."""
    allowed = frozenset(roles)

    async def dependency(
        request: Request,
        who: Annotated[engine.Principal, Depends(principal)],
        x_audit_reason: Annotated[
            str | None, Header(max_length=300, description="Why you access this (audited).")
        ] = None,
    ) -> AsyncIterator[Ctx]:
        rt = _rt(request)
        if who.role not in allowed:
            raise Forbidden(f"role {who.role} may not use this endpoint")
        if x_audit_reason is not None and not x_audit_reason.isprintable():
            raise Unprocessable(
                "bad audit reason",
                detail=[{"field": "header.x-audit-reason", "reason": "control characters"}],
            )
        async with rt.database.sessionmaker() as session:
            async with session.begin():
                ctx = Ctx(rt, session, who, x_audit_reason, rt.clock.now())
                yield ctx
                await add_to_outbox(session, outbox, ctx.events, clock=rt.clock)
            if ctx.events and rt.relay is not None:
                rt.relay.wake()

    dependency.__name__ = f"require_{'_'.join(roles)}"
    return dependency  # type: ignore[return-value]


async def case_for(
    ctx: Ctx, case_id: str, *, section: engine.Section, action: str
) -> tuple[Row, frozenset[engine.Section]]:
    """Load a case the caller may access in `section`; audit the access (or the denial)."""
    store = ctx.store
    case = await store.get(case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    sections = engine.case_sections(
        ctx.principal,
        org_id=case["org_id"],
        municipality_code=case["municipality_code"],
        consents=await store.consent_views(case_id),
        has_statutory_notice=bool(await store.statutory_notice_cases([case_id])),
        today=local_date(ctx.now),
        now=ctx.now,
    )
    if section not in sections:
        await ctx.audit(action, case_id=case_id, outcome="denied")
        what = "this case" if section == "case" else f"the {section} of this case"
        raise Forbidden(f"no access to {what} for role {ctx.principal.role}")
    await ctx.audit(action, case_id=case_id)
    return case, sections


STAFF: tuple[engine.Role, ...] = ("landlord_staff", "bosocial", "admin")
EVERYONE: tuple[engine.Role, ...] = engine.ROLES
# scope="function": the transaction commits before the response is sent.
Staff = Annotated[Ctx, Depends(require(*STAFF), scope="function")]
Anyone = Annotated[Ctx, Depends(require(*EVERYONE), scope="function")]
Admin = Annotated[Ctx, Depends(require("admin"), scope="function")]
