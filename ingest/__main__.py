"""`python -m ingest` / `bokvar serve ingest`: run the ingest service."""

from __future__ import annotations

from ingest.api import create_app
from ingest.config import IngestSettings
from shared.calendar import preload
from shared.clock import clock_from_settings
from shared.serve import serve, tune_gc


def main() -> None:
    """Run the ingest service until SIGTERM."""
    settings = IngestSettings()
    clock = clock_from_settings(settings.clock_start, settings.clock_epoch, settings.clock_speed)
    preload(clock.now().date())
    tune_gc()
    serve(create_app(settings), settings, port=settings.ingest_port)


if __name__ == "__main__":
    main()
