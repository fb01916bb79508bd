"""Quiet logs: one warning per team without a lead, no line per contact lookup."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest
import structlog
from fastapi import FastAPI
from structlog.testing import capture_logs

from notifier.workflow import Context, escalate_overdue, on_signal
from shared.clock import ManualClock
from shared.db import Database
from shared.logging import configure_logging
from tests.notifier.conftest import add_lease, add_staff, in_tx, make_signal


async def test_escalation_without_lead_warns_once_per_team(
    db: Database, clock: ManualClock, ctx: Context
) -> None:
    await add_lease(db, clock, "L-1", team="team-a")
    await add_lease(db, clock, "L-2", team="team-b")
    await add_staff(db, clock, "s1", team="team-a")
    await add_staff(db, clock, "s2", team="team-b")
    for lease, n in (("L-1", 0), ("L-1", 1), ("L-1", 2), ("L-2", 0)):
        sig = make_signal(lease, "personal_contact_needed", signal_id=f"{lease}:p{n}")
        await in_tx(db, clock, lambda s, sig=sig: on_signal(s, ctx, sig, clock.now()))
    clock.advance(timedelta(hours=25))
    with capture_logs() as logs:
        assert await in_tx(db, clock, lambda s: escalate_overdue(s, ctx, clock.now())) == 4
        later = make_signal("L-1", "personal_contact_needed", signal_id="L-1:p3")
        await in_tx(db, clock, lambda s: on_signal(s, ctx, later, clock.now()))
        clock.advance(timedelta(hours=25))
        assert await in_tx(db, clock, lambda s: escalate_overdue(s, ctx, clock.now())) == 1
    warned = [e["team"] for e in logs if e["event"] == "notifier.escalation_without_lead"]
    assert sorted(warned) == ["team-a", "team-b"]


async def test_http_client_requests_are_not_logged_at_info(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = FastAPI()

    @app.get("/internal/v1/leases/{lease_id}/contacts")
    async def contacts(lease_id: str) -> dict[str, str]:
        return {"lease_id": lease_id}

    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    configure_logging("info", "json")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            assert (await client.get("/internal/v1/leases/L-1/contacts")).status_code == 200
        logging.getLogger("notifier.test").info("still logged")
    finally:
        root.handlers, root.level = handlers, level
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "still logged" in err and "HTTP Request" not in err
