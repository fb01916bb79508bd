"""Test harness: a real embedded broker per test and an isolated, migrated database.

Databases are SQLite files by default. With BOKVAR_TEST_DATABASE_URL pointing at a
PostgreSQL server (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) a fresh
database is created for the run and dropped after it; each test gets its tables emptied.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.bus import Producer, create_topics
from shared.bus.broker import EmbeddedBroker
from shared.db import Database
from shared.db.migrate import migrate
from tests.pii import scan_broker

PG_ENV = "BOKVAR_TEST_DATABASE_URL"

MakeDatabase = Callable[[str], Awaitable[Database]]


def _pg_admin_dsn(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    return (
        parsed.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False
        ),
        parsed.database or "postgres",
    )


async def _create_pg_database(url: str, name: str) -> None:
    dsn, _ = _pg_admin_dsn(url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_pg_database(url: str, name: str) -> None:
    dsn, _ = _pg_admin_dsn(url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def backend() -> str:
    """Return `postgresql` when the run uses PostgreSQL, else `sqlite`."""
    return "postgresql" if os.environ.get(PG_ENV) else "sqlite"


@pytest.fixture(scope="session")
def test_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Return the run's database URL: a fresh PostgreSQL database, or a SQLite path."""
    pg = os.environ.get(PG_ENV)
    if not pg:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('templates')}/bokvar.db"
        return
    name = f"bokvar_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_pg_database(pg, name))
    try:
        yield make_url(pg).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_drop_pg_database(pg, name))


_migrated: set[str] = set()


@pytest.fixture
async def make_database(test_database_url: str, tmp_path: Path) -> AsyncIterator[MakeDatabase]:
    """Give a test an isolated, migrated database for a service: `await make_database("rules")`."""
    opened: list[Database] = []

    async def make(service: str) -> Database:
        template = Database(test_database_url, service)
        if service not in _migrated:
            await migrate(template)
            _migrated.add(service)
        if template.sqlite:
            await template.dispose()
            source = Path(template.url.database or "")
            shutil.copyfile(source, tmp_path / source.name)
            db = Database(f"sqlite+aiosqlite:///{tmp_path}/bokvar.db", service)
        else:
            db = template
            await _truncate(db)
        opened.append(db)
        return db

    yield make
    for db in opened:
        await db.dispose()


async def _truncate(db: Database) -> None:
    async with db.engine.begin() as conn:
        names = (
            (
                await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = :s "
                        "AND tablename NOT LIKE 'alembic_version%'"
                    ),
                    {"s": db.schema},
                )
            )
            .scalars()
            .all()
        )
        if names:
            joined = ", ".join(f'"{db.schema}"."{n}"' for n in names)
            await conn.execute(text(f"TRUNCATE {joined} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def raw_database(test_database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database (schema created, no migrations) for tests of the shared layer."""
    service = f"t{uuid.uuid4().hex[:8]}"
    if test_database_url.startswith("sqlite"):
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/raw.db", service)
    else:
        db = Database(test_database_url, service)
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{service}"'))
    yield db
    if not db.sqlite:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{service}" CASCADE'))
    await db.dispose()


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    """A fresh embedded broker (real Kafka protocol) with the catalog's topics."""
    embedded = EmbeddedBroker()
    embedded.start()
    findings: list[str] = []
    try:
        await create_topics(embedded.bootstrap_servers, partitions=3)
        yield embedded
        if embedded.alive():
            # the PII guard: every message of every test is checked (see tests/pii.py)
            findings = await scan_broker(embedded.bootstrap_servers)
    finally:
        embedded.stop()
    if findings:
        pytest.fail("personal data in Kafka messages: " + "; ".join(findings[:20]))


@pytest.fixture
async def producer(broker: EmbeddedBroker) -> AsyncIterator[Producer]:
    """A started acks=all producer on the test broker."""
    prod = Producer(broker.bootstrap_servers)
    await prod.start()
    yield prod
    await prod.stop()


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(PG_ENV)
    if url:
        return f"bokvar test database: PostgreSQL at {make_url(url).host}:{make_url(url).port}"
    return "bokvar test database: SQLite files (set BOKVAR_TEST_DATABASE_URL for PostgreSQL)"


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("BOKVAR_REQUIRE_POSTGRES") and not os.environ.get(PG_ENV):
        pytest.exit("BOKVAR_REQUIRE_POSTGRES is set but BOKVAR_TEST_DATABASE_URL is not", 1)


_pg_outcomes: dict[str, int] = {"passed": 0, "skipped": 0, "failed": 0}
_db_outcomes: dict[str, int] = {"passed": 0, "skipped": 0, "failed": 0}
_DB_FIXTURES = frozenset({"make_database", "raw_database", "test_database_url"})
_db_tests: set[str] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            _db_tests.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.skipped:
        if "postgres" in report.keywords:
            _pg_outcomes[report.outcome] = _pg_outcomes.get(report.outcome, 0) + 1
        if report.nodeid in _db_tests:
            _db_outcomes[report.outcome] = _db_outcomes.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    url = os.environ.get(PG_ENV)
    backend = f"PostgreSQL at {make_url(url).host}:{make_url(url).port}" if url else "SQLite"
    terminalreporter.write_line(
        "Database-backed tests on {backend}: {passed} passed, {skipped} skipped, "
        "{failed} failed".format(backend=backend, **_db_outcomes)
    )
    terminalreporter.write_line(
        "PostgreSQL-only tests: {passed} passed, {skipped} skipped, {failed} failed".format(
            **_pg_outcomes
        )
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("BOKVAR_REQUIRE_POSTGRES") and _pg_outcomes["skipped"]:
        session.exitstatus = 1
