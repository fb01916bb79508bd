"""SQLAlchemy 2 async engines: SQLite (aiosqlite) or PostgreSQL (asyncpg) from one URL.

Services own their data. On PostgreSQL each service lives in a schema of its own (the
connection's search_path); on SQLite each service gets its own file beside the configured
path (`./var/bokvar.db` -> `./var/bokvar.rules.db`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite(url: str | URL) -> bool:
    """Tell whether `url` points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def service_url(url: str, service: str) -> URL:
    """Return the URL `service` uses: its own SQLite file, or the same PostgreSQL database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ValueError("SQLite needs a file path; in-memory databases are not shared")
        path = Path(database)
        return parsed.set(database=str(path.with_name(f"{path.stem}.{service}{path.suffix}")))
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """One service's engine and session factory. Created in a lifespan, disposed on exit."""

    def __init__(self, url: str, service: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.service = service
        self.url = service_url(url, service)
        self.sqlite = is_sqlite(self.url)
        # hide_parameters: an error's message never carries the values (names, phones)
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.sqlite:
            Path(self.url.database or "").parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["pool_size"] = pool_size
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"server_settings": {"search_path": service}}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @property
    def schema(self) -> str | None:
        """Return the PostgreSQL schema of the service (None on SQLite)."""
        return None if self.sqlite else self.service

    async def ping(self) -> None:
        """Run a trivial query; raises when the database is unreachable."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
