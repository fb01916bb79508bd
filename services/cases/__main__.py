"""`python -m services.cases` / `bokvar serve cases`: run the cases service."""

from __future__ import annotations

from services.cases.api import create_app
from services.cases.config import CasesSettings
from shared.serve import serve, tune_gc


def main() -> None:
    """Run the cases service until SIGTERM."""
    settings = CasesSettings()
    tune_gc()
    serve(create_app(settings), settings, port=settings.cases_port)


if __name__ == "__main__":
    main()
