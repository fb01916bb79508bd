#!/usr/bin/env python3
"""Bootstrap and run Bokvar with nothing but Python 3.11+ and access to PyPI.

    python3 dev.py up        # install into .venv if needed, then `bokvar up`
    python3 dev.py test      # install into .venv if needed, then the whole test suite
    python3 dev.py lint      # ruff check + ruff format --check
    python3 dev.py typecheck # mypy (strict)
    python3 dev.py bench     # run every benchmark in bench/
    python3 dev.py bokvar ARGS...  # any bokvar command inside the venv

Installation is pinned by constraints.txt and redone when pyproject.toml or
constraints.txt change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".bokvar-installed"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        path = ROOT / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_installed() -> None:
    """Create .venv and install the project with its dev tools, once per change."""
    if sys.version_info < (3, 11):
        sys.exit(f"Bokvar needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print("installing Bokvar and its dependencies into .venv ...", flush=True)
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    constraints = (
        ["-c", str(ROOT / "constraints.txt")] if (ROOT / "constraints.txt").exists() else []
    )
    subprocess.run([*pip, *constraints, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(_fingerprint())


def ensure_browser() -> None:
    """Install Debian's Chromium for the console's browser tests where this machine allows.

    Only as root on a Debian-like system (CI and these project machines): a browser is
    never downloaded from anywhere but the system's package registry. Elsewhere the
    browser tests skip (and fail under CI=true), and this says how to get them.
    """
    if shutil.which("chromium") or os.environ.get("BOKVAR_TEST_CHROMIUM"):
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        print(
            "note: no chromium: the console's browser tests will be skipped "
            "(sudo apt-get install chromium)",
            flush=True,
        )
        return
    print("installing Debian's chromium for the console's browser tests ...", flush=True)
    quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], check=True, env=quiet)
    subprocess.run([apt, "install", "-y", "-qq", "chromium"], check=True, env=quiet)


def run(*args: str) -> int:
    """Run a program from the venv in the project root; return its exit code."""
    return subprocess.call([str(BIN / args[0]), *args[1:]], cwd=ROOT)


def become(*args: str) -> int:
    """Replace this process with a program from the venv, run in the project root.

    On POSIX dev.py execs, so Ctrl-C and SIGTERM reach the program itself (`bokvar up`
    then drains and stops in order) and no dev.py is left waiting in between.
    """
    if os.name != "posix":
        return run(*args)
    program = str(BIN / args[0])
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(program, [program, *args[1:]])


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    ensure_installed()
    if command == "install":
        return 0
    if command == "up":
        return become("bokvar", "up", *rest)
    if command == "test":
        ensure_browser()
        return become("pytest", *rest)
    if command == "lint":
        return run("ruff", "check", ".") or run("ruff", "format", "--check", ".")
    if command == "typecheck":
        return become("mypy")
    if command == "bench":
        code = 0
        for script in sorted((ROOT / "bench").glob("*.py")):
            print(f"== {script.name}", flush=True)
            code = code or run("python", str(script), *rest)
        return code
    if command == "bokvar":
        return become("bokvar", *rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
