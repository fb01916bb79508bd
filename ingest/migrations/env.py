"""Alembic environment of the ingest service; run through `bokvar migrate`."""

from ingest.models import metadata
from shared.db.alembic_env import run_migrations

run_migrations(metadata)
