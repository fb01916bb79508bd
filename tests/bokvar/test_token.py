"""`bokvar token` mints a JWT the cases API accepts, with the secret from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bokvar.cli import main
from shared.bus.broker import EmbeddedBroker
from tests.cases.conftest import NOW, SECRET, database_url, open_case, running_app
from tests.conftest import MakeDatabase


def _token(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as done:
        main(["token", *args])
    assert done.value.code == 0
    return capsys.readouterr().out.strip()


async def test_minted_tokens_work_against_the_cases_api(
    make_database: MakeDatabase,
    test_database_url: str,
    tmp_path: Path,
    broker: EmbeddedBroker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOKVAR_CASES_JWT_SECRET", SECRET)
    # the cases app under test stands at NOW; the token follows the services' clock setting
    monkeypatch.setenv("BOKVAR_CLOCK_START", NOW.isoformat())
    db = await make_database("cases")
    case_id = await open_case(db, "L-1", org="org1")
    staff = _token(capsys, "--role", "landlord_staff", "--org", "org1")
    other = _token(capsys, "--role", "landlord_staff", "--org", "org2")
    admin = _token(capsys, "--role", "admin")
    url = database_url(test_database_url, tmp_path)
    async with running_app(url, broker.bootstrap_servers) as cases:
        for token, seen in ((admin, 1), (other, 0)):
            got = await cases.client.get("/v1/cases", headers={"Authorization": f"Bearer {token}"})
            assert got.status_code == 200, got.text
            assert len(got.json()["items"]) == seen
        one = await cases.client.get(
            f"/v1/cases/{case_id}", headers={"Authorization": f"Bearer {staff}"}
        )
        assert one.status_code == 200 and one.json()["lease_id"] == "L-1"


def test_token_needs_the_claims_its_role_is_checked_by(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["token", "--role", "landlord_staff"])
    assert done.value.code == "bokvar token: --org is required for role landlord_staff"
    with pytest.raises(SystemExit) as done:
        main(["token", "--role", "social_services"])
    assert "--municipality is required" in str(done.value.code)


def test_service_token_is_the_configured_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOKVAR_SERVICE_TOKEN", "a-service-token-for-this-test-0123456789")
    assert _token(capsys, "--service") == "a-service-token-for-this-test-0123456789"
