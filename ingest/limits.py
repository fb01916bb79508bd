"""ASGI middleware: 415 for a wrong content type, 413 for a body over the limit.

Runs before routing and authentication, so an oversized body is refused after at most
`limit + 1` bytes were read, whether or not it announced its Content-Length.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_PATHS = frozenset({"/v1/events/batch", "/v1/ledger/import"})
MEDIA_TYPES: dict[str, frozenset[str]] = {
    "/v1/events/batch": frozenset(
        {"application/json", "application/x-ndjson", "application/ndjson", "application/jsonl"}
    ),
    "/v1/ledger/import": frozenset({"text/csv"}),
}
JSON_ONLY = frozenset({"application/json"})


def media_type(raw: str) -> str:
    """Return the bare media type of a Content-Type header value, lower case."""
    return raw.split(";", 1)[0].strip().lower()


class BodyLimits:
    """Enforce content types and body sizes on POST requests under /v1."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_single_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_single_body = max_single_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        allowed = MEDIA_TYPES.get(path, JSON_ONLY)
        got = media_type(headers.get("content-type", ""))
        if got not in allowed:
            reason = (
                f"Content-Type must be one of {', '.join(sorted(allowed))}, got {got or 'none'}"
            )
            await _error(send, 415, "UnsupportedMediaType", reason)
            return
        limit = self.max_body if path in BATCH_PATHS else self.max_single_body
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _error(send, 413, "PayloadTooLarge", f"the body exceeds {limit} bytes")
            return
        body = await _read(receive, limit)
        if body is None:
            await _error(send, 413, "PayloadTooLarge", f"the body exceeds {limit} bytes")
            return
        await self.app(scope, _replay(body, receive), send)


async def _read(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _error(send: Send, status: int, error: str, detail: str) -> None:
    payload = orjson.dumps({"error": error, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
