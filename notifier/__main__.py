"""`python -m notifier` / `bokvar serve notifier`: run the notifier service."""

from __future__ import annotations

from notifier.api import create_app
from notifier.config import NotifierSettings
from shared.calendar import preload
from shared.clock import clock_from_settings
from shared.serve import serve, tune_gc


def main() -> None:
    """Run the notifier service until SIGTERM."""
    settings = NotifierSettings()
    clock = clock_from_settings(settings.clock_start, settings.clock_epoch, settings.clock_speed)
    preload(clock.now().date())  # quiet hours look up holidays for every tenant SMS
    tune_gc()
    serve(create_app(settings), settings, port=settings.notifier_port)


if __name__ == "__main__":
    main()
