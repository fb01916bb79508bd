"""The queries behind a report: one organisation's cases, households and activity."""

from __future__ import annotations

from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.models import (
    cases,
    households,
    org_settings,
    payment_plans,
    referrals,
    timeline,
)
from services.cases.reports import Activity, Attrs, CaseFact, ReportInput
from services.cases.store.signals import RETRACTED

#: Timeline kinds of an SMS: the notifier's channel (`sms` through Twilio, `log` without).
SMS_KINDS = ("sms", "log")
#: The notifier's templates for staff alerts: SMS to staff, not to the tenant.
STAFF_TEMPLATES = ("staff_alert", "staff_escalation")


class ReportStore:
    """Reads what `reports.build_report` needs."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def report_input(self, org_id: str, start: date, end: date) -> ReportInput:
        """Collect one organisation's rows (figures are filtered by period in the engine)."""
        planned = set(
            (
                await self.session.execute(
                    select(payment_plans.c.case_id)
                    .join(cases, cases.c.id == payment_plans.c.case_id)
                    .where(cases.c.org_id == org_id)
                )
            ).scalars()
        )
        facts = [
            CaseFact(
                case_id=r.id,
                lease_id=r.lease_id,
                status=r.status,
                resolution=r.resolution,
                opened_at=r.opened_at,
                closed_at=r.closed_at,
                attrs=Attrs(r.age_band, r.gender, r.household_type),
                has_plan=r.id in planned,
            )
            for r in await self.session.execute(select(cases).where(cases.c.org_id == org_id))
        ]
        homes = {
            r.lease_id: Attrs(r.age_band, r.gender, r.household_type)
            for r in await self.session.execute(
                select(households).where(households.c.org_id == org_id)
            )
        }
        refs = [
            (r.recipient, r.outcome, r.referred_on)
            for r in await self.session.execute(
                select(referrals.c.recipient, referrals.c.outcome, referrals.c.referred_on)
                .join(cases, cases.c.id == referrals.c.case_id)
                .where(cases.c.org_id == org_id)
            )
        ]
        settings = (
            await self.session.execute(select(org_settings).where(org_settings.c.org_id == org_id))
        ).first()
        return ReportInput(
            org_id=org_id,
            start=start,
            end=end,
            cases=facts,
            households=homes,
            late_signals=await self._activity(
                org_id,
                timeline.c.kind == "signal",
                timeline.c.name == "late_rent_detected",
                # a retracted late signal was a false alarm: nobody was late
                or_(timeline.c.status.is_(None), timeline.c.status != RETRACTED),
            ),
            sms=await self._activity(
                org_id,
                # any tenant SMS that went out, whatever the channel (Twilio `sms` or `log`)
                timeline.c.kind.in_(SMS_KINDS),
                timeline.c.status.in_(("sent", "delivered")),
                or_(timeline.c.name.is_(None), timeline.c.name.not_in(STAFF_TEMPLATES)),
            ),
            reached_calls=await self._activity(
                org_id,
                timeline.c.kind == "task",
                timeline.c.name == "phone_call",
                timeline.c.outcome == "reached",
            ),
            referrals=refs,
            home_count=settings.home_count if settings else None,
            baseline_year=settings.baseline_year if settings else None,
            baseline_evictions=settings.baseline_evictions if settings else None,
        )

    async def _activity(self, org_id: str, *where: object) -> list[Activity]:
        result = await self.session.execute(
            select(timeline.c.lease_id, timeline.c.at, timeline.c.due_date).where(
                timeline.c.org_id == org_id,
                *where,  # type: ignore[arg-type]
            )
        )
        return [Activity(r.lease_id, r.at, r.due_date) for r in result]
