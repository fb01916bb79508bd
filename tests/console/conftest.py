"""Fixtures of the console tests: the headless browser and where screenshots go."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import start_pipeline, twilio  # noqa: F401  (fixtures the browser tests use)

# Debian's chromium package; never a downloaded browser.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Return the system Chromium (BOKVAR_TEST_CHROMIUM names it instead), or None."""
    wanted = os.environ.get("BOKVAR_TEST_CHROMIUM")
    candidates = (wanted,) if wanted else (*CHROMIUM_CANDIDATES, shutil.which("chromium"))
    for path in candidates:
        if path and Path(path).exists():
            return path
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium driven by Playwright; in CI a missing browser fails the test."""
    path = chromium_path()
    if path is None:
        message = "Chromium not found (apt-get install -y chromium); the console tests need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where the browser tests save their screenshots (BOKVAR_TEST_SCREENSHOT_DIR or tmp)."""
    wanted = os.environ.get("BOKVAR_TEST_SCREENSHOT_DIR")
    path = Path(wanted) if wanted else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
