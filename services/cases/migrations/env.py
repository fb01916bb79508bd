"""Alembic environment of the cases service; run through `bokvar migrate`."""

from services.cases.models import metadata
from shared.db.alembic_env import run_migrations

run_migrations(metadata)
