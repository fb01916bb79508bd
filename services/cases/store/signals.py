"""The signals on a lease's timeline as the case rules see them (standing, retracted)."""

from __future__ import annotations

from sqlalchemy import select, update

from services.cases.engine import SignalView
from services.cases.models import timeline
from services.cases.store.cases import CasesStore

RETRACTED = "retracted"


async def signal_views(store: CasesStore, case_id: str) -> list[SignalView]:
    """Return a case's signal entries in the order they arrived (retraction marks included)."""
    await store.flush_entries()
    result = await store.session.execute(
        select(timeline.c.signal_id, timeline.c.name, timeline.c.status, timeline.c.data)
        .where(
            timeline.c.case_id == case_id,
            timeline.c.kind == "signal",
            timeline.c.name != "signal_retracted",
        )
        .order_by(timeline.c.id)
    )
    return [
        SignalView(
            signal_id=row.signal_id or "",
            signal=row.name or "",
            retracted=row.status == RETRACTED,
            arrears_ore=(row.data or {}).get("arrears_ore"),
        )
        for row in result
    ]


async def mark_retracted(store: CasesStore, signal_id: str) -> str | None:
    """Mark a signal's timeline entries retracted; return the case they belong to, if any."""
    await store.flush_entries()
    result = await store.session.execute(
        update(timeline)
        .where(
            timeline.c.signal_id == signal_id,
            timeline.c.kind == "signal",
            timeline.c.name != "signal_retracted",
        )
        .values(status=RETRACTED)
        .returning(timeline.c.case_id)
    )
    case_ids = [c for c in result.scalars() if c is not None]
    return case_ids[0] if case_ids else None
