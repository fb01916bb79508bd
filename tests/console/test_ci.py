"""In CI a missing browser fails the browser tests; on a laptop it skips them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROWSER_TEST = "tests/console/test_browser.py"


def run_without_browser(*, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["BOKVAR_TEST_CHROMIUM"] = "/nonexistent/chromium"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", BROWSER_TEST, "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_missing_browser_fails_in_ci_and_skips_elsewhere() -> None:
    in_ci = run_without_browser(ci=True)
    assert in_ci.returncode == 1, in_ci.stdout[-2000:]
    assert "1 error" in in_ci.stdout and "Chromium not found" in in_ci.stdout
    local = run_without_browser(ci=False)
    assert local.returncode == 0, local.stdout[-2000:]
    assert "1 skipped" in local.stdout and "Chromium not found" in local.stdout
