"""A local Twilio-compatible Messages API for tests, driven through the real `twilio` SDK.

It answers `POST /2010-04-01/Accounts/{sid}/Messages.json` (create), `GET .../Messages.json`
(list, with To and DateSent filters) and `GET .../Messages/{MessageSid}.json` (fetch),
checks HTTP basic auth, records every request, and can be told to fail the next calls
with 429, 500 or a permanent error such as 21211. A create can be made to take `delay`
seconds (Twilio's latency); `max_in_flight` is the most creates it served at once.
Reusable by end-to-end tests:
`with running_twilio() as twilio: ... twilio.base_url ... twilio.messages`.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from notifier.channels import TwilioChannel
from tests.notifier.servers import serve_in_thread

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
MESSAGING_SERVICE_SID = "MG" + "1" * 32

ERROR_MESSAGES = {
    20429: "Too Many Requests",
    21211: "The 'To' number is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    20500: "Internal Server Error",
}


@dataclass
class FakeTwilio:
    """State of the fake: messages created, requests seen, failures to serve."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    base_url: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[int, int]] = field(default_factory=list)
    hide_from_list: bool = False
    #: seconds each create call takes (Twilio's latency), and the most calls seen at once
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def channel(self, *, workers: int = 4) -> TwilioChannel:
        """The notifier's Twilio channel (the real SDK) pointed at this server."""
        return TwilioChannel(
            account_sid=self.account_sid,
            auth_token=self.auth_token,
            messaging_service_sid=MESSAGING_SERVICE_SID,
            from_number=None,
            api_base_url=self.base_url,
            workers=workers,
        )

    def fail_next(self, status: int, code: int, *, times: int = 1) -> None:
        """Answer the next `times` create calls with HTTP `status` and Twilio error `code`."""
        with self.lock:
            self.failures.extend([(status, code)] * times)

    def resource(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Render a message the way Twilio's API does."""
        return {
            "sid": msg["sid"],
            "account_sid": self.account_sid,
            "messaging_service_sid": msg.get("messaging_service_sid"),
            "to": msg["to"],
            "from": msg.get("from"),
            "body": msg["body"],
            "status": msg["status"],
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "date_created": format_datetime(msg["created"]),
            "date_updated": format_datetime(msg["created"]),
            "date_sent": format_datetime(msg["created"]),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{msg['sid']}.json",
            "subresource_uris": {},
        }


def _error(status: int, code: int) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": ERROR_MESSAGES.get(code, "error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def build_app(state: FakeTwilio) -> FastAPI:
    """Build the fake Messages API over `state`."""
    app = FastAPI()
    prefix = "/2010-04-01/Accounts/{account_sid}"

    def authorised(request: Request, account_sid: str) -> bool:
        expected = base64.b64encode(f"{state.account_sid}:{state.auth_token}".encode()).decode()
        return (
            account_sid == state.account_sid
            and request.headers.get("authorization") == f"Basic {expected}"
        )

    @app.post(prefix + "/Messages.json")
    async def create(account_sid: str, request: Request) -> JSONResponse:
        with state.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.delay:
                await asyncio.sleep(state.delay)
            return await created(account_sid, request)
        finally:
            with state.lock:
                state.in_flight -= 1

    async def created(account_sid: str, request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        with state.lock:
            state.requests.append(("POST", str(request.url)))
            if not authorised(request, account_sid):
                return _error(401, 20003)
            if state.failures:
                status, code = state.failures.pop(0)
                return _error(status, code)
            msg = {
                "sid": "SM" + uuid.uuid4().hex,
                "to": form.get("To", ""),
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form.get("Body", ""),
                "status_callback": form.get("StatusCallback"),
                "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                "created": datetime.now(UTC),
            }
            state.messages.append(msg)
        return JSONResponse(state.resource(msg), status_code=201)

    @app.get(prefix + "/Messages.json")
    async def list_messages(account_sid: str, request: Request) -> JSONResponse:
        with state.lock:
            state.requests.append(("GET", str(request.url)))
            if not authorised(request, account_sid):
                return _error(401, 20003)
            to = request.query_params.get("To")
            found = (
                []
                if state.hide_from_list
                else [state.resource(m) for m in state.messages if to is None or m["to"] == to]
            )
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        return JSONResponse(
            {
                "messages": found,
                "end": max(len(found) - 1, 0),
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
                "page": 0,
                "page_size": 50,
                "start": 0,
                "uri": uri,
            }
        )

    @app.get(prefix + "/Messages/{message_sid}.json")
    async def fetch(account_sid: str, message_sid: str, request: Request) -> JSONResponse:
        with state.lock:
            state.requests.append(("GET", str(request.url)))
            for m in state.messages:
                if m["sid"] == message_sid:
                    return JSONResponse(state.resource(m))
        return _error(404, 20404)

    return app


@contextmanager
def running_twilio() -> Iterator[FakeTwilio]:
    """Start the fake Twilio on a free port; yield its state (with `base_url`)."""
    state = FakeTwilio()
    with serve_in_thread(build_app(state)) as base_url:
        state.base_url = base_url
        yield state
