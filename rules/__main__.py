"""`python -m rules` / `bokvar serve rules`: run the rules service."""

from __future__ import annotations

from rules.api import create_app
from rules.config import RulesSettings
from shared.serve import serve


def main() -> None:
    """Run the rules service until SIGTERM."""
    settings = RulesSettings()
    serve(create_app(settings), settings, port=settings.rules_port)


if __name__ == "__main__":
    main()
