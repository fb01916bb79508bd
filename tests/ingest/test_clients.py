"""API clients: keys are random, shown once, stored only as a hash."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from ingest import cli
from ingest.clients import create_client, hash_key
from ingest.models import api_clients
from tests.conftest import MakeDatabase


async def test_create_client_stores_only_the_hash(make_database: MakeDatabase) -> None:
    db = await make_database("ingest")
    key = await create_client(db, "org1", "ERP one")
    other = await create_client(db, "org1", "ERP one")
    assert key.startswith("bkv_") and len(key) > 40 and key != other
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(api_clients))).all()
    assert {r.key_hash for r in rows} == {hash_key(key), hash_key(other)}
    assert all(key not in str(tuple(r)) for r in rows)
    assert {r.org_id for r in rows} == {"org1"}


async def test_create_client_rejects_a_bad_org(make_database: MakeDatabase) -> None:
    db = await make_database("ingest")
    with pytest.raises(ValidationError):
        await create_client(db, "not an org!", "x")


def test_cli_prints_the_key_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOKVAR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/bokvar.db")
    assert cli.run(argparse.Namespace(action="create", org="acme", name="ERP")) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("bkv_")
    assert cli.run(argparse.Namespace(action="create", org="no spaces", name="ERP")) == 2
