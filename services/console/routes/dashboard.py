"""Dashboard (the nollvision figures, SVG charts, CSV) and the social services view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from services.console.i18n import translator
from services.console.render import Api, language, render
from services.console.session import NotAllowed, SignedIn, StaffUser, User
from services.console.views import bar_chart

router = APIRouter(tags=["dashboard"], include_in_schema=False)
Row = dict[str, Any]
OrgQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")]


def _org(user: User, org: str | None) -> str:
    if user.role == "admin" and org:
        return org
    if not user.org:
        raise NotAllowed
    return user.org


def charts(report: Row, lang: str) -> tuple[Markup, Markup]:
    """Return the targets chart and the flag-to-action chart as inline SVG."""
    t = translator(lang)
    targets = report["targets"]
    rows = [
        (
            f"{t('dash.baseline')} {targets['baseline_year'] or ''}",
            targets["baseline_per_1000"],
            "base",
        ),
        (t("dash.halve"), targets["halve_target_per_1000"], "target"),
        (t("dash.zero"), targets["zero_target_per_1000"], "zero"),
        (t("dash.now"), targets["annualised_per_1000"], "now"),
    ]
    first = bar_chart(
        [(label, float(v), css) for label, v, css in rows if v is not None],
        title=t("dash.chart"),
    )
    referrals = sum(sum(v.values()) for v in report["referrals"].values())
    share = report["share_with_payment_plan"] or 0.0
    funnel = [
        (t("dash.flagged"), float(report["households_flagged_late"]), "flagged"),
        (t("dash.cases_active"), float(report["cases_active"]), "cases"),
        (t("dash.with_plan"), round(share * report["cases_active"], 2), "plan"),
        (t("dash.referrals"), float(referrals), "referral"),
        (t("dash.evictions"), float(report["evictions"]), "eviction"),
    ]
    second = bar_chart(funnel, title=t("dash.funnel"))
    # Both are built from numbers and escaped labels only.
    return Markup(first), Markup(second)


@dataclass(frozen=True)
class ReportQuery:
    """Which organisation and period a dashboard shows (defaults: mine, the last 30 days)."""

    org_id: str
    start: date
    end: date

    def params(self, **extra: str) -> dict[str, str]:
        """Return the query of the cases report API."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), **extra}


def report_query(
    user: StaffUser,
    api: Api,
    start: date | None = None,
    end: date | None = None,
    org: OrgQuery = None,
) -> ReportQuery:
    """Resolve the period and organisation; only admins pick another organisation."""
    end = end or api.clock.now().date()
    return ReportQuery(_org(user, org), start or end - timedelta(days=30), end)


PeriodOrg = Annotated[ReportQuery, Depends(report_query)]


@router.get("/dashboard")
async def dashboard(request: Request, user: StaffUser, api: Api, q: PeriodOrg) -> Response:
    """Show the figures of a period: evictions per 1,000 vs targets, flags, medians, charts."""
    path = f"/v1/orgs/{q.org_id}/report"
    report = await api.cases(user, "GET", path, params=q.params())
    target_chart, funnel_chart = charts(report, language(request))
    return render(
        request,
        "dashboard.html",
        report=report,
        start=q.start,
        end=q.end,
        org_id=q.org_id,
        target_chart=target_chart,
        funnel_chart=funnel_chart,
    )


@router.get("/dashboard.csv")
async def dashboard_csv(user: StaffUser, api: Api, q: PeriodOrg) -> Response:
    """Download the period's figures as CSV (the cases report API's CSV)."""
    path = f"/v1/orgs/{q.org_id}/report"
    text = await api.cases(user, "GET", path, params=q.params(format="csv"))
    name = f"bokvar-{q.org_id}-{q.start.isoformat()}-{q.end.isoformat()}.csv"
    return Response(
        str(text),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/social")
async def social(request: Request, user: SignedIn, api: Api) -> Response:
    """Social services: the covered cases of their municipality and their statutory notices."""
    if user.role not in ("social_services", "admin"):
        raise NotAllowed
    cases = (await api.cases(user, "GET", "/v1/cases", params={"limit": 500}))["items"]
    notices: dict[str, list[Row]] = {}
    for case in cases:
        rows = await api.cases(user, "GET", f"/v1/cases/{case['id']}/referrals")
        notices[case["id"]] = [r for r in rows if r["statutory"]]
    return render(request, "social.html", cases=cases, notices=notices)
