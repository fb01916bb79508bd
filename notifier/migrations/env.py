"""Alembic environment of the notifier service; run through `bokvar migrate`."""

from notifier.models import metadata
from shared.db.alembic_env import run_migrations

run_migrations(metadata)
