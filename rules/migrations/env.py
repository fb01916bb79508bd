"""Alembic environment of the rules service; run through `bokvar migrate`."""

from rules.models import metadata
from shared.db.alembic_env import run_migrations

run_migrations(metadata)
