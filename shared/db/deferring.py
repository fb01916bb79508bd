"""A session that writes a store's deferred rows before any statement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession


class _Deferring:
    def __init__(self, session: AsyncSession, flush: Callable[[], Awaitable[None]]) -> None:
        self._session = session
        self._flush = flush

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        await self._flush()
        return await self._session.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def deferring(session: AsyncSession, flush: Callable[[], Awaitable[None]]) -> AsyncSession:
    """`session`, but every `execute` first awaits `flush`: a batching store keeps rows in
    memory and writes them together, and whatever runs a statement through this session
    (the store itself or a caller handed `store.session`) sees them written. The store
    writes its deferred rows through the plain session. Only `execute` is wrapped: the
    stores run every statement through it."""
    return cast(AsyncSession, _Deferring(session, flush))
