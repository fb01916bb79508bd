"""Twilio webhooks: delivery receipts and inbound SMS, both signature-checked.

Twilio signs the exact URL it was given plus the POSTed form fields. Behind a proxy the
URL the app sees differs, so the signature is checked against `notifier_public_url` +
the request path and query.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request, Response
from twilio.request_validator import RequestValidator

from notifier import engine
from notifier.deps import State, Store
from notifier.workflow import apply_provider_status, open_task
from shared.http import ErrorBody, Forbidden

log = structlog.get_logger(__name__)
router = APIRouter(
    prefix="/webhooks/twilio",
    tags=["webhooks"],
    responses={403: {"model": ErrorBody, "description": "Missing or invalid X-Twilio-Signature."}},
)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def _validated_form(request: Request, state: State) -> dict[str, str]:
    """Return the form fields if X-Twilio-Signature is valid for the public URL; else 403."""
    token = state.settings.notifier_twilio_auth_token
    signature = request.headers.get("x-twilio-signature")
    if token is None or not signature:
        raise Forbidden("missing or unverifiable X-Twilio-Signature")
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    url = state.settings.notifier_public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not RequestValidator(token.get_secret_value()).validate(url, params, signature):
        log.warning("notifier.webhook_bad_signature", path=request.url.path)
        raise Forbidden("invalid X-Twilio-Signature")
    return params


@router.post("/status", status_code=204)
async def status_callback(request: Request, state: State, store: Store) -> Response:
    """Apply a Twilio delivery receipt (monotonically: a late `sent` never undoes `delivered`)."""
    form = await _validated_form(request, state)
    result = await apply_provider_status(
        store,
        state.ctx,
        attempt_id=request.query_params.get("attempt"),
        sid=form.get("MessageSid") or form.get("SmsSid"),
        provider_status=(form.get("MessageStatus") or form.get("SmsStatus") or "").lower(),
        error_code=form.get("ErrorCode") or None,
        now=state.rt.clock.now(),
    )
    log.info("notifier.delivery_receipt", applied=result is not None, status=result)
    return Response(status_code=204)


@router.post("/inbound")
async def inbound_sms(request: Request, state: State, store: Store) -> Response:
    """Handle a tenant's reply: STOP/START words update the opt-out, anything else a task."""
    form = await _validated_form(request, state)
    sender, body = form.get("From", ""), form.get("Body", "")
    now = state.rt.clock.now()
    hashed = engine.phone_hash(
        sender, state.settings.notifier_phone_hash_key.get_secret_value().encode()
    )
    latest = await store.latest_for_phone(hashed)
    keyword = engine.opt_keyword(body)
    tenant_id = (
        latest.recipient_id if latest is not None and latest.recipient_kind == "tenant" else None
    )
    if keyword is not None:
        await store.set_opt_out(
            phone_hash=hashed,
            tenant_id=tenant_id if tenant_id != "*" else None,
            lease_id=latest.lease_id if latest is not None else None,
            opted_out=keyword == "stop",
            keyword=body.strip().upper()[:16],
            now=now,
        )
        log.info("notifier.opt_out_changed", opted_out=keyword == "stop")
    else:
        lease = await store.get_lease(latest.lease_id) if latest is not None else None
        await open_task(
            store,
            state.ctx,
            task_id=f"tenant_replied:{form.get('MessageSid') or now.isoformat()}",
            kind="tenant_replied",
            lease_id=latest.lease_id if latest is not None else "unknown",
            org_id=latest.org_id if latest is not None else "unknown",
            team=lease.team if lease is not None else None,
            signal_id=latest.signal_id if latest is not None else None,
            notification_id=latest.id if latest is not None else None,
            note=body[:2000],
            now=now,
        )
        log.info("notifier.tenant_replied", length=len(body))  # the text stays out of logs
    return Response(EMPTY_TWIML, media_type="application/xml")
