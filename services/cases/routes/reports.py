"""Reports for an organisation and a period, as JSON or CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response

from services.cases.deps import Staff
from services.cases.reports import Report, build_report, to_csv
from services.cases.schemas import OrgIdPath
from services.cases.store import ReportStore
from shared.http import Forbidden, Unprocessable

router = APIRouter(tags=["reports"])


@router.get(
    "/v1/orgs/{org_id}/report",
    response_model=Report,
    responses={200: {"content": {"text/csv": {}}}},
)
async def report(
    ctx: Staff,
    org_id: OrgIdPath,
    start: date,
    end: date,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Figures for a period: evictions per 1,000 homes vs targets, flags, medians, referrals."""
    if ctx.principal.role != "admin" and ctx.principal.org != org_id:
        raise Forbidden("another organisation's report")
    if end < start:
        raise Unprocessable(
            "end is before start", detail=[{"field": "end", "reason": "before start"}]
        )
    if (end - start).days > 3660:
        raise Unprocessable("period too long", detail=[{"field": "end", "reason": "over 10 years"}])
    await ctx.audit("report.read", case_id=None)
    figures = build_report(await ReportStore(ctx.session).report_input(org_id, start, end))
    wants_csv = format == "csv" or (format is None and "text/csv" in (accept or ""))
    if wants_csv:
        return Response(to_csv(figures), media_type="text/csv")
    return Response(figures.model_dump_json(), media_type="application/json")
