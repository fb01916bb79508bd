"""`bokvar docs [--check]`: regenerate docs/events/*.json and the README settings table."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from pydantic_settings import BaseSettings

from shared.config import CommonSettings
from shared.events import schemas

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- settings:start -->", "<!-- settings:end -->"
SETTINGS_CLASSES = [
    ("shared.config", "CommonSettings"),
    ("ingest.config", "IngestSettings"),
    ("rules.config", "RulesSettings"),
    ("notifier.config", "NotifierSettings"),
    ("services.cases.config", "CasesSettings"),
    ("services.console.config", "ConsoleSettings"),
]


def _plain(value: object) -> object:
    secret = getattr(value, "get_secret_value", None)
    return secret() if callable(secret) else value


def settings_table() -> str:
    """Render every BOKVAR_* setting as a Markdown table."""
    rows = ["| variable | default | used by | meaning |", "|---|---|---|---|"]
    seen: set[str] = set()
    for module_name, class_name in SETTINGS_CLASSES:
        cls: type[BaseSettings] = getattr(importlib.import_module(module_name), class_name)
        owner = "all" if cls is CommonSettings else module_name.split(".")[-2]
        for name, field in cls.model_fields.items():
            if name in seen:
                continue
            seen.add(name)
            default = field.get_default(call_default_factory=True)
            shown = "" if default is None else str(_plain(default))
            if "secret" in name or "token" in name or "key" in name:
                shown = "(dev value; set in production)" if shown else ""
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            rows.append(f"| `BOKVAR_{name.upper()}` | `{shown}` | {owner} | {desc} |")
    return "\n".join(rows)


def render_readme(text: str) -> str:
    """Return README text with the settings block replaced."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{settings_table()}\n{END}{tail}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="fail if anything would change")


def run(args: argparse.Namespace) -> int:
    readme = ROOT / "README.md"
    events_dir = ROOT / "docs" / "events"
    new_readme = render_readme(readme.read_text())
    rendered = schemas.render()
    if args.check:
        stale = [
            n
            for n, c in rendered.items()
            if not (events_dir / n).exists() or (events_dir / n).read_bytes() != c
        ]
        extra = [p.name for p in events_dir.glob("se.bokvar.*.json") if p.name not in rendered]
        drift = (
            stale
            + extra
            + (["README.md settings table"] if new_readme != readme.read_text() else [])
        )
        if drift:
            print("out of date (run `bokvar docs`): " + ", ".join(drift))
            return 1
        print("docs are current")
        return 0
    schemas.write(events_dir)
    readme.write_text(new_readme)
    print(f"wrote {len(rendered)} event schemas to {events_dir} and the README settings table")
    return 0
