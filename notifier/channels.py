"""Where SMS go: Twilio through the official SDK, or the log channel when Twilio is unset.

The SDK call is blocking (`requests` under the hood); we run it in a worker thread of the
channel's own pool, as many as the sender has SMS in flight (`BOKVAR_NOTIFIER_SENDER_CONCURRENCY`).
The SDK's `AsyncTwilioHttpClient` would pull in an aiohttp session with its own retry layer
(aiohttp-retry) that hides 429/5xx from our own classification and backoff; at tens of
messages per second a worker thread per call costs nothing and keeps the SDK's default,
most-used transport.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from notifier.engine import body_hash, mask_phone

log = structlog.get_logger(__name__)
#: The SDK logs request URLs and query parameters (a `To` number on a lookup) at INFO.
_sdk_log = logging.getLogger("notifier.twilio_sdk")
_sdk_log.setLevel(logging.WARNING)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider accepted a message."""

    sid: str
    status: str


class ChannelError(Exception):
    """The provider refused or could not be reached: HTTP status and provider error code."""

    def __init__(self, status: int | None, code: int | None, message: str = "") -> None:
        super().__init__(message or f"status={status} code={code}")
        self.status = status
        self.code = code


class Channel(Protocol):
    """Something that sends an SMS and can look a sent one up."""

    name: Literal["sms", "log"]

    async def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        """Send `body` to `to`; raise ChannelError on failure."""
        ...

    async def find_sent(self, *, to: str, since: datetime, body_sha: str) -> SendResult | None:
        """Return the message with this body sent to `to` since `since`, if the provider has one."""
        ...


@dataclass
class LogChannel:
    """Records what would have been sent; nothing leaves the machine (channel `log`)."""

    name: Literal["sms", "log"] = "log"
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # sid, to, body

    async def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        """Record the message and log that it WOULD have been sent (no phone in the log)."""
        sid = f"LOG{len(self.sent) + 1:08d}"
        self.sent.append((sid, to, body))
        log.info(
            "notifier.log_channel.would_send",
            channel="log",
            sid=sid,
            to=mask_phone(to),
            length=len(body),
        )
        return SendResult(sid=sid, status="sent")

    async def find_sent(self, *, to: str, since: datetime, body_sha: str) -> SendResult | None:
        """Look the message up in this process's record."""
        for sid, number, body in self.sent:
            if number == to and body_hash(body) == body_sha:
                return SendResult(sid=sid, status="sent")
        return None


class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The SDK's own HTTP client, sending to another host (the SDK's `http_client` hook)."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_sdk_log)
        self._base = urlsplit(base_url)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """Rewrite scheme and host of `url` to the configured base, then send."""
        parts = urlsplit(url)._replace(scheme=self._base.scheme, netloc=self._base.netloc)
        return super().request(method, urlunsplit(parts), *args, **kwargs)


class TwilioChannel:
    """SMS through Twilio's Messages API with the official SDK."""

    name: Literal["sms", "log"] = "sms"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str | None,
        from_number: str | None,
        api_base_url: str | None = None,
        timeout: float = 10.0,
        workers: int = 4,
    ) -> None:
        if not (messaging_service_sid or from_number):
            raise ValueError("Twilio needs a messaging service SID or a from-number")
        # urllib3 logs every request line (with `?To=<number>` on a lookup) at DEBUG
        logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
        http_client = (
            BaseUrlHttpClient(api_base_url, timeout=timeout)
            if api_base_url
            else TwilioHttpClient(timeout=timeout, logger=_sdk_log)
        )
        # a pooled connection per worker: the SDK's pool holds cpu count + 4 (6 on two
        # cores); a send beyond it would open a connection (and a TLS handshake) of its own
        adapter = HTTPAdapter(pool_maxsize=max(workers, 10))
        for scheme in ("https://", "http://"):
            http_client.session.mount(scheme, adapter)
        self._client = Client(account_sid, auth_token, http_client=http_client)
        # not the loop's default executor (a handful of threads, shared): a call in flight
        # per sender task
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="twilio")
        self._sender: dict[str, str] = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid
            else {"from_": from_number or ""}
        )

    def _create(self, to: str, body: str, status_callback: str | None) -> SendResult:
        extra: dict[str, Any] = {"status_callback": status_callback} if status_callback else {}
        try:
            message = self._client.messages.create(to=to, body=body, **self._sender, **extra)
        except TwilioRestException as exc:
            raise ChannelError(exc.status, exc.code, "twilio rejected the message") from exc
        except (TwilioException, requests.RequestException) as exc:
            raise ChannelError(None, None, type(exc).__name__) from exc
        return SendResult(sid=str(message.sid), status=str(message.status or "queued"))

    async def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        """Send through Twilio in a worker thread; raise ChannelError on failure."""
        return await self._in_thread(partial(self._create, to, body, status_callback))

    def _find(self, to: str, since: datetime, body_sha: str) -> SendResult | None:
        try:
            messages = self._client.messages.list(to=to, date_sent_after=since, limit=50)
        except TwilioRestException as exc:
            raise ChannelError(exc.status, exc.code, "twilio lookup failed") from exc
        except (TwilioException, requests.RequestException) as exc:
            raise ChannelError(None, None, type(exc).__name__) from exc
        for message in messages:
            if body_hash(str(message.body or "")) == body_sha:
                return SendResult(sid=str(message.sid), status=str(message.status))
        return None

    async def find_sent(self, *, to: str, since: datetime, body_sha: str) -> SendResult | None:
        """List messages to `to` since `since` at Twilio and match the body."""
        return await self._in_thread(partial(self._find, to, since, body_sha))

    async def _in_thread(self, call: Callable[[], T]) -> T:
        # with the caller's context (log context), as asyncio.to_thread would
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, partial(context.run, call)
        )
