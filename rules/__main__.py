"""`python -m rules` / `bokvar serve rules`: run the rules service."""

from __future__ import annotations

import gc

from rules.api import create_app
from rules.config import RulesSettings
from shared.calendar import preload
from shared.clock import clock_from_settings
from shared.serve import serve


def tune_gc() -> None:
    """Freeze import-time objects and collect young objects less often.

    A sweep chunk or a consumer batch builds tens of thousands of short-lived objects
    (lease states, ledger views, drafts); with the default thresholds the cyclic collector
    rescans the heap many times per chunk (bench/RESULTS.md, rules section).
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def main() -> None:
    """Run the rules service until SIGTERM."""
    settings = RulesSettings()
    clock = clock_from_settings(settings.clock_start, settings.clock_epoch, settings.clock_speed)
    preload(clock.now().date())
    tune_gc()
    serve(create_app(settings), settings, port=settings.rules_port)


if __name__ == "__main__":
    main()
