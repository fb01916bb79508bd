"""`python -m rules` / `bokvar serve rules`: run the rules service."""

from __future__ import annotations

from rules.api import create_app
from rules.config import RulesSettings
from shared.calendar import preload
from shared.clock import clock_from_settings
from shared.serve import serve, tune_gc


def main() -> None:
    """Run the rules service until SIGTERM."""
    settings = RulesSettings()
    clock = clock_from_settings(settings.clock_start, settings.clock_epoch, settings.clock_speed)
    preload(clock.now().date())
    tune_gc()
    serve(create_app(settings), settings, port=settings.rules_port)


if __name__ == "__main__":
    main()
