"""API clients: keys are random, shown once, stored only as a hash."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from ingest import cli
from ingest.clients import create_client, hash_key, list_clients, revoke_client
from ingest.models import api_clients
from tests.conftest import MakeDatabase
from tests.ingest.conftest import Ingest, lease_body


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


def test_cli_lists_and_revokes_clients_without_showing_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOKVAR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/bokvar.db")
    assert cli.run(argparse.Namespace(action="create", org="acme", name="ERP one")) == 0
    assert cli.run(argparse.Namespace(action="create", org="other", name="ERP two")) == 0
    keys = [line for line in capsys.readouterr().out.splitlines() if line.startswith("bkv_")]
    assert cli.run(argparse.Namespace(action="list", org=None)) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:3] for line in listed[1:]] == [
        ["1", "acme", "ERP one"],
        ["2", "other", "ERP two"],
    ]
    assert [line.split("\t")[3] for line in listed[1:]] == [f"{k[:12]}…" for k in keys]
    assert all(k not in "\n".join(listed) for k in keys)  # a prefix, never the key
    assert cli.run(argparse.Namespace(action="revoke", id=1)) == 0
    assert "revoked API client 1 of acme (ERP one" in capsys.readouterr().out
    assert cli.run(argparse.Namespace(action="list", org="acme")) == 0
    [row] = capsys.readouterr().out.splitlines()[1:]
    assert row.split("\t")[5] != "-"  # revoked at
    assert cli.run(argparse.Namespace(action="revoke", id=9)) == 2
    assert "no API client with id 9" in capsys.readouterr().out
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert parser.parse_args(["revoke", "2"]).id == 2
    for bad in ("0", "-1", "x", str(2**63)):  # never a traceback from the database
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["revoke", bad])
        assert exited.value.code == 2
        assert f"{bad!r} is not a client id" in capsys.readouterr().err


async def test_a_revoked_key_is_refused_and_the_others_still_work(ingest: Ingest) -> None:
    [first, second] = await list_clients(ingest.database)
    assert (first.org_id, second.org_id) == ("org1", "org2")
    revoked = await revoke_client(ingest.database, first.id)
    assert revoked is not None and revoked.revoked_at is not None
    again = await revoke_client(ingest.database, first.id)  # the first revocation stands
    assert again is not None and again.revoked_at == revoked.revoked_at
    refused = await ingest.post("/v1/leases", lease_body())
    assert refused.status_code == 401 and refused.json()["error"] == "Unauthorized"
    other = await ingest.post("/v1/leases", lease_body("L-2", "e-2"), key=ingest.other_key)
    assert other.status_code == 202
    assert await revoke_client(ingest.database, 999) is None
