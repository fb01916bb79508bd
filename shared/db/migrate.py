"""Alembic migrations, one script directory and one version table per service.

Each service keeps `<package>/migrations/` (env.py calls `run_migrations` below). On
PostgreSQL the migrations run inside the service's schema, which is created first.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.db.engine import Database

# service name -> importable package that holds its `migrations/` folder
SERVICE_PACKAGES: dict[str, str] = {
    "ingest": "ingest",
    "rules": "rules",
    "notifier": "notifier",
    "cases": "services.cases",
}


def script_location(service: str) -> Path:
    """Return the folder of `service`'s Alembic scripts."""
    spec = importlib.util.find_spec(SERVICE_PACKAGES[service])
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"package of service {service!r} not found")
    return Path(next(iter(spec.submodule_search_locations))) / "migrations"


def alembic_config(service: str) -> Config:
    """Return an Alembic Config for `service` with no ini file."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location(service)))
    cfg.attributes["service"] = service
    return cfg


def _upgrade(connection: Connection, cfg: Config, revision: str) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(database: Database, revision: str = "head") -> None:
    """Bring `database` (one service's) up to `revision`."""
    cfg = alembic_config(database.service)
    async with database.engine.begin() as conn:
        if database.schema:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"'))
        await conn.run_sync(_upgrade, cfg, revision)


def _applied(connection: Connection, service: str, schema: str | None) -> set[str]:
    quiet = logging.getLogger("alembic.runtime.migration")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # "Context impl ..." on every check says nothing
    try:
        context = MigrationContext.configure(
            connection,
            opts={"version_table": f"alembic_version_{service}", "version_table_schema": schema},
        )
        return set(context.get_current_heads())
    finally:
        quiet.setLevel(level)


async def is_migrated(database: Database) -> bool:
    """Tell whether the service's tables are at the latest migration this code knows.

    A database ahead of the code (a revision this code has never seen, as during a rolling
    upgrade) counts as migrated; one with no version or an older one does not.
    """
    script = ScriptDirectory.from_config(alembic_config(database.service))
    async with database.engine.connect() as conn:
        applied = await conn.run_sync(_applied, database.service, database.schema)
    if not applied:
        return False
    known = {rev.revision for rev in script.walk_revisions()}
    return applied == set(script.get_heads()) or not applied <= known


async def make_revision(service: str, message: str) -> None:
    """Autogenerate a new migration for `service` against a scratch SQLite database."""
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite+aiosqlite:///{tmp}/scratch.db", service)
        try:
            await migrate(database)
            cfg = alembic_config(service)

            def _revision(connection: Connection) -> None:
                cfg.attributes["connection"] = connection
                command.revision(cfg, message=message, autogenerate=True)

            async with database.engine.begin() as conn:
                await conn.run_sync(_revision)
        finally:
            await database.dispose()
