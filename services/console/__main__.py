"""`python -m services.console` / `bokvar serve console`: run the staff console."""

from __future__ import annotations

from services.console.api import create_app
from services.console.config import ConsoleSettings
from shared.serve import serve


def main() -> None:
    """Run the staff console until SIGTERM."""
    settings = ConsoleSettings()
    serve(create_app(settings), settings, port=settings.console_port)


if __name__ == "__main__":
    main()
