"""`python -m notifier` / `bokvar serve notifier`: run the notifier service."""

from __future__ import annotations

from notifier.api import create_app
from notifier.config import NotifierSettings
from shared.serve import serve


def main() -> None:
    """Run the notifier service until SIGTERM."""
    settings = NotifierSettings()
    serve(create_app(settings), settings, port=settings.notifier_port)


if __name__ == "__main__":
    main()
