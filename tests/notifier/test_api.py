"""Webhooks (signed with the SDK's own scheme) and staff endpoints, through ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from notifier.api import install_routes
from notifier.config import NotifierSettings
from notifier.deps import NotifierState
from notifier.workflow import Context, on_signal
from shared.bus import Producer
from shared.clock import ManualClock
from shared.db import Database
from shared.runtime import Runtime
from tests.notifier.conftest import (
    CALLBACK,
    PHONE_KEY,
    SenderFactory,
    add_lease,
    add_staff,
    in_tx,
    make_signal,
)
from tests.notifier.ingest_stub import TOKEN
from tests.notifier.twilio_server import AUTH_TOKEN, FakeTwilio

PUBLIC = "https://notifier.example.se"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TENANT_PHONE = "+46701234567"


@pytest.fixture
async def client(
    db: Database, clock: ManualClock, ctx: Context
) -> AsyncIterator[httpx.AsyncClient]:
    """The notifier's routes on a test database, reached as an internal host (behind a proxy)."""
    settings = NotifierSettings(
        notifier_twilio_account_sid="AC" + "0" * 32,
        notifier_twilio_auth_token=SecretStr(AUTH_TOKEN),
        notifier_public_url=PUBLIC,
        service_token=SecretStr(TOKEN),
        notifier_phone_hash_key=SecretStr(PHONE_KEY.decode()),
    )
    rt = Runtime(
        service="notifier",
        settings=settings,
        clock=clock,
        database=db,
        producer=Producer("127.0.0.1:9"),
        bootstrap_servers="127.0.0.1:9",
    )
    app = FastAPI()
    install_routes(app)
    app.state.notifier = NotifierState(rt=rt, settings=settings, ctx=ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.7:8003") as c:
        yield c


def _signed(url: str, params: dict[str, str], *, token: str = AUTH_TOKEN) -> dict[str, str]:
    return {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(url, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def _post_signed(
    client: httpx.AsyncClient, path: str, params: dict[str, str], **kw: Any
) -> httpx.Response:
    signed_url = kw.pop("signed_url", PUBLIC + path)
    body = kw.pop("body", None) or urlencode(params)
    return await client.post(path, content=body, headers=_signed(signed_url, params))


async def _send_one(
    db: Database, clock: ManualClock, ctx: Context, make_sender: SenderFactory
) -> str:
    """Queue and send a late-rent SMS; return the status-callback path Twilio was given."""
    await add_lease(db, clock)
    await in_tx(db, clock, lambda s: on_signal(s, ctx, make_signal(), clock.now()))
    await make_sender().run_once()
    [row] = await in_tx(db, clock, lambda s: s.list_notifications("L-1"))
    return f"/webhooks/twilio/status?attempt={row.attempt_id}"


async def test_status_callback_applies_monotonically(
    client: httpx.AsyncClient,
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
) -> None:
    path = await _send_one(db, clock, ctx, make_sender)
    assert twilio.messages[0]["status_callback"] == CALLBACK + path.removeprefix(
        "/webhooks/twilio/status"
    )
    sid = twilio.messages[0]["sid"]
    delivered = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    assert (await _post_signed(client, path, delivered)).status_code == 204
    late_sent = {**delivered, "MessageStatus": "sent"}
    assert (await _post_signed(client, path, late_sent)).status_code == 204
    [row] = await in_tx(db, clock, lambda s: s.list_notifications("L-1"))
    assert row.status == "delivered"


async def test_webhook_signatures_are_enforced(
    client: httpx.AsyncClient,
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
) -> None:
    path = await _send_one(db, clock, ctx, make_sender)
    params = {"MessageSid": twilio.messages[0]["sid"], "MessageStatus": "failed"}
    tampered = urlencode({**params, "MessageStatus": "delivered"})
    assert (await _post_signed(client, path, params, body=tampered)).status_code == 403
    wrong_url = "http://10.0.0.7:8003" + path  # what the app sees, not what Twilio signed
    assert (await _post_signed(client, path, params, signed_url=wrong_url)).status_code == 403
    missing = await client.post(path, data=params)
    assert missing.status_code == 403
    other_token = _signed(PUBLIC + path, params, token="someone-elses-token")
    assert (await client.post(path, data=params, headers=other_token)).status_code == 403
    [row] = await in_tx(db, clock, lambda s: s.list_notifications("L-1"))
    assert row.status == "sent"
    resp = await _post_signed(client, path, params)
    assert resp.status_code == 204
    [row] = await in_tx(db, clock, lambda s: s.list_notifications("L-1"))
    assert row.status == "failed"


@pytest.mark.parametrize("word", ["STOP", "stopp", "Avsluta"])
async def test_inbound_stop_then_start(
    word: str,
    client: httpx.AsyncClient,
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    twilio: FakeTwilio,
) -> None:
    await _send_one(db, clock, ctx, make_sender)
    path = "/webhooks/twilio/inbound"
    stop = {"From": TENANT_PHONE, "Body": word, "MessageSid": "SMin1"}
    resp = await _post_signed(client, path, stop)
    assert resp.status_code == 200 and "<Response>" in resp.text
    opts = (await client.get("/v1/opt-outs", headers=AUTH)).json()
    assert opts[0]["opted_out"] is True and opts[0]["tenant_id"] == "T1"
    assert TENANT_PHONE not in str(opts)
    # a new signal for the opted-out tenant is not sent
    sig = make_signal(signal="recovery_period_reminder")
    await in_tx(db, clock, lambda s: on_signal(s, ctx, sig, clock.now()))
    await make_sender().run_once()
    assert len(twilio.messages) == 1
    start = {"From": TENANT_PHONE, "Body": "BÖRJA", "MessageSid": "SMin2"}
    assert (await _post_signed(client, path, start)).status_code == 200
    opts = (await client.get("/v1/opt-outs", headers=AUTH)).json()
    assert opts[0]["opted_out"] is False


async def test_inbound_reply_becomes_a_task_and_stays_out_of_logs(
    client: httpx.AsyncClient,
    db: Database,
    clock: ManualClock,
    ctx: Context,
    make_sender: SenderFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await add_staff(db, clock, "s1")
    await _send_one(db, clock, ctx, make_sender)
    text = "Jag har förlorat jobbet och kan betala på fredag"
    reply = {"From": TENANT_PHONE, "Body": text, "MessageSid": "SMin3"}
    assert (await _post_signed(client, "/webhooks/twilio/inbound", reply)).status_code == 200
    tasks = (await client.get("/v1/tasks", params={"team": "team-a"}, headers=AUTH)).json()
    assert [t["kind"] for t in tasks] == ["tenant_replied"]
    assert tasks[0]["note"] == text and tasks[0]["lease_id"] == "L-1"
    assert tasks[0]["assignee_id"] == "s1"
    out = capsys.readouterr()
    assert text not in out.out + out.err
    assert TENANT_PHONE not in out.out + out.err


async def test_staff_endpoints_need_the_bearer_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/tasks")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.get("/v1/staff", headers=bad)).status_code == 401
    assert (await client.get("/v1/policy", headers=AUTH)).json()["version"]


async def test_staff_directory_and_task_lifecycle(
    client: httpx.AsyncClient, db: Database, clock: ManualClock, ctx: Context
) -> None:
    bad = {"name": "A", "phone": "0701234567", "team": "team-a"}
    resp = await client.put("/v1/staff/s1", json=bad, headers=AUTH)
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "body.phone"
    member = {"name": "Anna", "phone": "+46701112223", "team": "team-a", "is_lead": True}
    assert (await client.put("/v1/staff/s1", json=member, headers=AUTH)).status_code == 200
    assert [s["id"] for s in (await client.get("/v1/staff", headers=AUTH)).json()] == ["s1"]
    await add_lease(db, clock)
    sig = make_signal(signal="personal_contact_needed")
    await in_tx(db, clock, lambda s: on_signal(s, ctx, sig, clock.now()))
    [task] = (await client.get("/v1/tasks", params={"assignee": "s1"}, headers=AUTH)).json()
    task_id = task["id"]
    ack = await client.post(
        f"/v1/tasks/{task_id}/acknowledge", json={"staff_id": "s1"}, headers=AUTH
    )
    assert ack.json()["status"] == "acknowledged"
    no_date = {"outcome": "payment_promised"}
    resp = await client.post(f"/v1/tasks/{task_id}/complete", json=no_date, headers=AUTH)
    assert resp.status_code == 422 and "promised_date" in resp.text
    done = {"outcome": "payment_promised", "promised_date": "2026-03-06"}
    resp = await client.post(f"/v1/tasks/{task_id}/complete", json=done, headers=AUTH)
    assert resp.json()["status"] == "completed" and resp.json()["promised_date"] == "2026-03-06"
    again = await client.post(f"/v1/tasks/{task_id}/complete", json=done, headers=AUTH)
    assert again.status_code == 409 and again.json()["error"] == "Conflict"
    assert (
        await client.post("/v1/tasks/nope/acknowledge", json={"staff_id": "s1"}, headers=AUTH)
    ).status_code == 404
    notes = (await client.get("/v1/leases/L-1/notifications", headers=AUTH)).json()
    assert [n["recipient_kind"] for n in notes] == ["staff"]  # the alert to s1
    bad_status = await client.get("/v1/tasks", params={"status": "done"}, headers=AUTH)
    assert (
        bad_status.status_code == 422 and bad_status.json()["detail"][0]["field"] == "query.status"
    )
    bad_id = await client.put("/v1/staff/a b", json=member, headers=AUTH)
    assert bad_id.status_code == 422 and bad_id.json()["detail"][0]["field"] == "path.staff_id"
    assert (await client.delete("/v1/staff/s1", headers=AUTH)).status_code == 204
    assert (await client.get("/v1/staff/s1", headers=AUTH)).json()["active"] is False


async def test_acknowledge_names_who_takes_the_task(
    client: httpx.AsyncClient, db: Database, clock: ManualClock, ctx: Context
) -> None:
    member = {"name": "Anna", "phone": "+46701112223", "team": "team-a", "is_lead": True}
    assert (await client.put("/v1/staff/s1", json=member, headers=AUTH)).status_code == 200
    assert (await client.put("/v1/staff/gone", json=member, headers=AUTH)).status_code == 200
    assert (await client.delete("/v1/staff/gone", headers=AUTH)).status_code == 204
    await add_lease(db, clock)
    sig = make_signal(signal="personal_contact_needed")
    await in_tx(db, clock, lambda s: on_signal(s, ctx, sig, clock.now()))
    [task] = (await client.get("/v1/tasks", params={"assignee": "s1"}, headers=AUTH)).json()
    url = f"/v1/tasks/{task['id']}/acknowledge"
    for body in ({}, {"staff_id": "nobody"}, {"staff_id": "gone"}, {"staff_id": ""}):
        refused = await client.post(url, json=body, headers=AUTH)
        assert refused.status_code == 422, body
        assert [d["field"] for d in refused.json()["detail"]] == ["body.staff_id"], body
    empty = await client.post(url, content=b"", headers=AUTH)
    assert empty.status_code == 422
    task_now = (await client.get(f"/v1/tasks/{task['id']}", headers=AUTH)).json()
    assert task_now["status"] == "created"
    taken = await client.post(url, json={"staff_id": "s1"}, headers=AUTH)
    assert taken.status_code == 200 and taken.json()["assignee_id"] == "s1"
