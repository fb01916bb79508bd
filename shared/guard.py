"""ASGI middleware every service runs: refuse control characters, contain unexpected errors.

Both answer in the one error format, `{"error": ..., "detail": ...}`. Neither logs a request
body, an exception's message or a traceback's values: those may hold personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import orjson
import sqlalchemy.exc
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

# C0 controls but tab, newline and carriage return; DEL. NUL is what PostgreSQL refuses.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_REASON = "control characters (such as NUL) are not allowed"
# SQLSTATE classes of a database that is away: connection exception, insufficient
# resources, operator intervention (shutdown, cannot connect now), and 55000 as PostgreSQL
# answers a connection to a database that does not accept connections.
OUTAGE_SQLSTATES = ("08", "53", "57", "55000")


def control_fields(value: Any, path: str) -> Iterator[str]:
    """Yield the dotted path of every string in a JSON value holding a control character."""
    if isinstance(value, str):
        if CONTROL.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}"
            if CONTROL.search(str(key)):
                yield name
            yield from control_fields(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from control_fields(item, f"{path}.{index}")


def is_database_outage(exc: BaseException) -> bool:
    """Tell whether `exc` means the database cannot be reached (not a bad statement)."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc.orig, OSError):
            return True
        state = str(getattr(exc.orig, "sqlstate", "") or getattr(exc.orig, "pgcode", "") or "")
        return state.startswith(OUTAGE_SQLSTATES)
    return isinstance(exc, OSError)


async def _json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    raw = orjson.dumps(body)
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def _validation(fields: list[str]) -> dict[str, Any]:
    detail = [{"field": f, "reason": CONTROL_REASON, "type": "control_character"} for f in fields]
    return {"error": "ValidationError", "detail": detail}


class RejectControlCharacters:
    """Answer 422 naming the field when the path, query or a JSON body holds a control char."""

    def __init__(self, app: ASGIApp, *, check_json_bodies: bool = True) -> None:
        self.app = app
        self.check_json_bodies = check_json_bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = ["path"] if CONTROL.search(scope.get("path", "")) else []
        query = scope.get("query_string", b"").decode("latin-1")
        for key, value in parse_qsl(query, keep_blank_values=True):
            if CONTROL.search(key) or CONTROL.search(value):
                fields.append(f"query.{CONTROL.sub('?', key)}")
        if fields:
            await _json(send, 422, _validation(fields))
            return
        if self.check_json_bodies and _is_json(scope):
            body, receive = await _buffer(receive)
            if b"\\u00" in body or b"\x7f" in body:
                try:
                    found = list(control_fields(orjson.loads(body), "body"))
                except orjson.JSONDecodeError:
                    found = []  # the route's own validation answers malformed JSON
                if found:
                    await _json(send, 422, _validation(found))
                    return
        await self.app(scope, receive, send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body, sent = b"".join(chunks), False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


class ErrorBoundary:
    """Turn an unexpected exception into 503 + Retry-After (database away) or a plain 500.

    Logs the exception's type and where it was raised, never its message or values.
    """

    def __init__(self, app: ASGIApp, *, retry_after_seconds: int = 5) -> None:
        self.app = app
        self.retry_after = str(retry_after_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            outage = is_database_outage(exc)
            log.error(
                "http.database_unavailable" if outage else "http.unexpected_error",
                error=type(exc).__name__,
                at=_origin(exc),
                method=scope.get("method"),
                route=_route(scope),
            )
            if started:
                return
            if outage:
                body = {"error": "ServiceUnavailable", "detail": "the database is unavailable"}
                await _json(send, 503, body, {"Retry-After": self.retry_after})
            else:
                await _json(send, 500, {"error": "InternalError", "detail": "internal error"})


def _origin(exc: BaseException) -> str:
    """Return file:line of the innermost frame of Bokvar's own code (not a library's)."""
    tb, where = exc.__traceback__, "?"
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "site-packages" not in name:
            where = f"{name.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "?"))
