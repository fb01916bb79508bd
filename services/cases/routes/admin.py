"""Organisation settings, audit verification and retention (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from services.cases.deps import Admin, Staff
from services.cases.retention import purge_expired
from services.cases.schemas import (
    AuditVerification,
    OrgIdPath,
    OrgSettingsBody,
    OrgSettingsRead,
    PurgeResult,
)
from services.cases.store import AuditStore
from shared.http import Forbidden, NotFound

router = APIRouter(tags=["administration"])


@router.get("/v1/orgs/{org_id}/settings", response_model=OrgSettingsRead)
async def get_org_settings(ctx: Staff, org_id: OrgIdPath) -> OrgSettingsRead:
    """Read an organisation's home count and baseline."""
    if ctx.principal.role != "admin" and ctx.principal.org != org_id:
        raise Forbidden("another organisation's settings")
    await ctx.audit("org_settings.read", case_id=None)
    row = await ctx.store.org_settings(org_id)
    if row is None:
        raise NotFound(f"no settings for organisation {org_id}")
    return OrgSettingsRead.model_validate(row)


@router.put("/v1/orgs/{org_id}/settings", response_model=OrgSettingsRead)
async def put_org_settings(ctx: Admin, org_id: OrgIdPath, body: OrgSettingsBody) -> OrgSettingsRead:
    """Set an organisation's home count (for per-1,000 figures) and baseline year."""
    await ctx.audit("org_settings.write", case_id=None)
    values = {"org_id": org_id, **body.model_dump(), "updated_at": ctx.now}
    await ctx.store.put_org_settings(values)
    return OrgSettingsRead.model_validate(values)


@router.get("/v1/audit/verify", response_model=AuditVerification)
async def verify_audit(ctx: Admin) -> AuditVerification:
    """Verify the audit chain; name the first broken row."""
    await ctx.audit("audit.verify", case_id=None)
    verdict = await AuditStore(ctx.session).check()
    return AuditVerification(
        ok=verdict.first_broken is None,
        rows=verdict.rows,
        first_broken_id=verdict.first_broken,
        problem=verdict.problem,
    )


@router.post("/v1/admin/retention/purge", response_model=PurgeResult)
async def purge(ctx: Admin) -> PurgeResult:
    """Purge personal data of closed cases past retention now (also runs on a schedule)."""
    await ctx.audit("retention.run", case_id=None)
    days = ctx.rt.settings.cases_retention_days  # type: ignore[attr-defined]
    ids = await purge_expired(
        ctx.session, now=ctx.now, retention_days=days, actor=ctx.principal.sub
    )
    return PurgeResult(purged_cases=ids)
