"""Starting a service: refused with one line when it cannot work; /docs work offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ingest.api import create_app as ingest_app
from ingest.config import IngestSettings
from notifier.api import create_app as notifier_app
from notifier.config import NotifierSettings
from rules.api import create_app as rules_app
from rules.config import RulesSettings
from services.cases.api import create_app as cases_app
from services.cases.config import CasesSettings
from services.console.api import create_app as console_app
from services.console.config import ConsoleSettings
from shared.bus.broker import EmbeddedBroker
from shared.db import Database
from shared.db.migrate import is_migrated, migrate
from tests.cases.conftest import running_app
from tests.conftest import MakeDatabase


def _serve(service: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOKVAR_")}
    clean.update(
        {
            "BOKVAR_VAR_DIR": str(tmp_path / "var"),
            "BOKVAR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/never-migrated.db",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "bokvar.cli_main", "serve", service],
        env=clean,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.mark.slow
@pytest.mark.parametrize("service", ["ingest", "cases"])
def test_serve_on_a_never_migrated_database_exits_with_one_line(
    service: str, tmp_path: Path
) -> None:
    done = _serve(service, tmp_path, BOKVAR_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "run `bokvar migrate`" in lines[0] and service in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_serve_without_a_broker_prints_the_message_alone(tmp_path: Path) -> None:
    done = _serve("rules", tmp_path)  # embedded, but no broker.addr in the var dir
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "bokvar serve rules: BOKVAR_KAFKA_BOOTSTRAP_SERVERS=embedded but no embedded broker "
        "runs: start `bokvar up` (everything) or `bokvar broker`, or point the setting at a "
        "Kafka."
    ]
    assert "Traceback" not in done.stdout


async def test_readyz_is_not_ready_until_the_database_is_migrated(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    async with running_app(url, broker.bootstrap_servers) as cases:
        ready = await cases.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["migrations"] is False
        await migrate(cases.database)
        ready = await cases.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["migrations"] is True


async def test_is_migrated_after_migrate(make_database: MakeDatabase, tmp_path: Path) -> None:
    fresh = Database(f"sqlite+aiosqlite:///{tmp_path}/empty.db", "rules")
    try:
        assert await is_migrated(fresh) is False
    finally:
        await fresh.dispose()
    assert await is_migrated(await make_database("rules")) is True


def _apps(tmp_path: Path) -> list[FastAPI]:
    url = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/docs.db"}
    return [
        ingest_app(IngestSettings(**url)),  # type: ignore[arg-type]
        rules_app(RulesSettings(**url)),  # type: ignore[arg-type]
        notifier_app(NotifierSettings(**url)),  # type: ignore[arg-type]
        cases_app(CasesSettings(**url)),  # type: ignore[arg-type]
        console_app(ConsoleSettings()),
    ]


async def test_docs_load_every_asset_from_the_service_itself(tmp_path: Path) -> None:
    for app in _apps(tmp_path):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            for page in ("/docs", "/redoc"):
                html = (await client.get(page)).text
                assets = re.findall(r"""(?:src|href)\s*[=:]\s*['"]([^'"]+)['"]""", html)
                assert assets, html
                assert not [a for a in assets if "://" in a or a.startswith("//")], html
                for asset in assets:
                    got = await client.get(asset)
                    assert got.status_code == 200 and len(got.content) > 100, asset


async def test_console_pages_keep_a_strict_csp_and_its_docs_can_start() -> None:
    app = console_app(ConsoleSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        login = await client.get("/login")
        docs = await client.get("/docs")
    assert "'unsafe-inline'" not in login.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in docs.headers["content-security-policy"]
