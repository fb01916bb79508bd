"""Cases: list, read, status, assignment, notes, timeline."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.cases import actions, engine
from services.cases.deps import Anyone, Ctx, Staff, case_for
from services.cases.engine import CaseStatus
from services.cases.schemas import (
    Assignment,
    CaseId,
    CaseList,
    CaseRead,
    NoteCreate,
    StatusChange,
    Timeline,
    TimelineEntry,
)
from shared.clock import local_date
from shared.http import NotFound

router = APIRouter(prefix="/v1/cases", tags=["cases"])
Row = dict[str, Any]


def case_read(row: Row) -> CaseRead:
    """Return the API view of a case row."""
    return CaseRead.model_validate({**row, "purged": row["purged_at"] is not None})


async def _visible(ctx: Ctx, rows: list[Row]) -> list[Row]:
    """Keep the cases the caller may see at all (consent or statutory notice for authorities)."""
    if ctx.principal.role in ("admin", "landlord_staff", "bosocial"):
        return rows
    ids = [r["id"] for r in rows]
    consents = await ctx.store.consent_views_for(ids)
    statutory = await ctx.store.statutory_notice_cases(ids)
    today = local_date(ctx.now)
    out: list[Row] = []
    for r in rows:
        sections = engine.case_sections(
            ctx.principal,
            org_id=r["org_id"],
            municipality_code=r["municipality_code"],
            consents=consents[r["id"]],
            has_statutory_notice=r["id"] in statutory,
            today=today,
            now=ctx.now,
        )
        if sections:
            out.append(_limited(r, sections))
    return out


def _limited(case: Row, sections: frozenset[engine.Section]) -> Row:
    """Blank staff free text and names when only a statutory notice covers the case."""
    if sections == engine.STATUTORY_SECTIONS:
        return {**case, "reason": "", "assignee": None}
    return case


@router.get("", response_model=CaseList)
async def list_cases(
    ctx: Anyone,
    status: CaseStatus | None = None,
    org_id: Annotated[
        str | None, Query(max_length=64, description="Admin only: one organisation's cases.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CaseList:
    """List the cases the caller may see, newest first; `total` counts all of them."""
    p = ctx.principal
    await ctx.audit("cases.list", case_id=None)
    filters = await _list_filters(ctx, org_id)
    if filters is None:
        return CaseList(items=[], total=0)
    if p.role in ("admin", "landlord_staff", "bosocial"):  # the filters are the access
        total = await ctx.store.count_cases(**filters, status=status)
        rows = await ctx.store.list_cases(**filters, status=status, limit=limit, offset=offset)
        return CaseList(items=[case_read(r) for r in rows], total=total)
    # Authorities see a case by its consents or statutory notices: decide per case first.
    visible = await _visible(ctx, await ctx.store.list_cases(**filters, status=status, limit=None))
    page = visible[offset : offset + limit]
    return CaseList(items=[case_read(r) for r in page], total=len(visible))


async def _list_filters(ctx: Ctx, org_id: str | None) -> dict[str, Any] | None:
    """Return the store filters that bound what the caller may list (None: nothing)."""
    p = ctx.principal
    if p.role in ("landlord_staff", "bosocial"):
        return None if p.org is None else {"org_id": p.org}
    if p.role == "social_services":
        return None if p.municipality is None else {"municipality_code": p.municipality}
    if p.role == "budget_debt_advice":
        return {"ids": await ctx.store.cases_with_consent()}
    return {"org_id": org_id}


@router.get("/{case_id}", response_model=CaseRead)
async def get_case(ctx: Anyone, case_id: CaseId) -> CaseRead:
    """Read one case."""
    case, sections = await case_for(ctx, case_id, section="case", action="case.read")
    return case_read(_limited(case, sections))


@router.post("/{case_id}/status", response_model=CaseRead)
async def change_status(ctx: Staff, case_id: CaseId, body: StatusChange) -> CaseRead:
    """Move a case to another status with a one-line reason."""
    case, _ = await case_for(ctx, case_id, section="case", action="case.status")
    await actions.change_status(
        ctx.store,
        case,
        status=body.status,
        resolution=body.resolution,
        reason=body.reason,
        actor=ctx.principal.sub,
        now=ctx.now,
        emit=ctx.emit,
    )
    return case_read(await _reload(ctx, case_id))


@router.post("/{case_id}/assign", response_model=CaseRead)
async def assign(ctx: Staff, case_id: CaseId, body: Assignment) -> CaseRead:
    """Assign a case to a staff member and optionally set its priority."""
    case, _ = await case_for(ctx, case_id, section="case", action="case.assign")
    values: Row = {"assignee": body.assignee, "updated_at": ctx.now}
    if body.priority is not None:
        values["priority"] = body.priority
    await ctx.store.update(case_id, **values)
    await ctx.store.add_entry(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case_id,
        at=ctx.now,
        kind="assigned",
        ref_id=actions.new_id("A"),
        name=body.priority,
        summary=body.reason,
        actor=ctx.principal.sub,
        data={"assignee": body.assignee},
    )
    return case_read(await _reload(ctx, case_id))


@router.post("/{case_id}/notes", response_model=TimelineEntry, status_code=201)
async def add_note(ctx: Staff, case_id: CaseId, body: NoteCreate) -> TimelineEntry:
    """Add a factual note to the case timeline."""
    case, _ = await case_for(ctx, case_id, section="notes", action="note.create")
    note_id = actions.new_id("N")
    await ctx.store.add_entry(
        lease_id=case["lease_id"],
        org_id=case["org_id"],
        case_id=case_id,
        at=ctx.now,
        kind="note",
        ref_id=note_id,
        text=body.text,
        actor=ctx.principal.sub,
    )
    entries = await ctx.store.entries(case_id)
    return TimelineEntry.model_validate(next(e for e in entries if e["ref_id"] == note_id))


@router.get("/{case_id}/notes", response_model=list[TimelineEntry])
async def list_notes(ctx: Anyone, case_id: CaseId) -> list[TimelineEntry]:
    """List the notes of a case."""
    await case_for(ctx, case_id, section="notes", action="note.read")
    entries = await ctx.store.entries(case_id)
    return [TimelineEntry.model_validate(e) for e in entries if e["kind"] == "note"]


@router.get("/{case_id}/timeline", response_model=Timeline)
async def get_timeline(ctx: Anyone, case_id: CaseId) -> Timeline:
    """Read a case's timeline (signals, SMS, tasks, notes, plans, referrals, legal steps)."""
    _, sections = await case_for(ctx, case_id, section="case", action="timeline.read")
    entries = [
        TimelineEntry.model_validate(e)
        for e in await ctx.store.entries(case_id)
        if engine.timeline_visible(e["kind"], (e["data"] or {}).get("statutory"), sections)
    ]
    return Timeline(case_id=case_id, entries=entries)


async def _reload(ctx: Ctx, case_id: str) -> Row:
    row = await ctx.store.get(case_id)
    if row is None:
        raise NotFound(f"no case {case_id}")
    return row
