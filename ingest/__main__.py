"""`python -m ingest` / `bokvar serve ingest`: run the ingest service."""

from __future__ import annotations

from ingest.api import create_app
from ingest.config import IngestSettings
from shared.serve import serve


def main() -> None:
    """Run the ingest service until SIGTERM."""
    settings = IngestSettings()
    serve(create_app(settings), settings, port=settings.ingest_port)


if __name__ == "__main__":
    main()
