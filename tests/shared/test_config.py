"""Secrets: published development values only on a loopback, SQLite machine; 32 bytes or more."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ingest.config import IngestSettings
from notifier.config import NotifierSettings
from rules.config import RulesSettings
from services.cases.config import CasesSettings
from shared.config import CommonSettings, InsecureSettings, check_secrets

CLASSES: list[type[CommonSettings]] = [
    IngestSettings,
    RulesSettings,
    NotifierSettings,
    CasesSettings,
]
PG = "postgresql+asyncpg://bokvar@db.example:5432/bokvar"
STRONG = "x" * 32


@pytest.mark.parametrize("cls", CLASSES)
def test_the_embedded_default_starts_out_of_the_box_on_loopback(cls: type[CommonSettings]) -> None:
    check_secrets(cls())
    check_secrets(cls(host="localhost"))
    check_secrets(cls(host="::1"))


@pytest.mark.parametrize("cls", CLASSES)
def test_every_default_secret_is_32_bytes_or_more(cls: type[CommonSettings]) -> None:
    for name, field in cls.model_fields.items():
        if isinstance(field.default, SecretStr):
            assert len(field.default.get_secret_value().encode()) >= 32, name


@pytest.mark.parametrize(
    ("overrides", "why"),
    [({"host": "0.0.0.0"}, "host 0.0.0.0"), ({"database_url": PG}, "database postgresql")],
)
def test_published_secrets_are_refused_when_exposed_naming_the_variables(
    overrides: dict[str, str], why: str
) -> None:
    with pytest.raises(InsecureSettings) as caught:
        check_secrets(CasesSettings(**overrides))  # type: ignore[arg-type]
    message = str(caught.value)
    assert "BOKVAR_SERVICE_TOKEN" in message and "BOKVAR_CASES_JWT_SECRET" in message
    assert why in message and "\n" not in message
    check_secrets(CasesSettings(**overrides, dev_mode=True))  # type: ignore[arg-type]


def test_set_secrets_start_anywhere() -> None:
    settings = CasesSettings(
        host="0.0.0.0",
        database_url=PG,
        service_token=SecretStr(STRONG),
        cases_jwt_secret=SecretStr(STRONG),
    )
    check_secrets(settings)


def test_a_placeholder_of_the_deploy_files_is_refused_too() -> None:
    settings = IngestSettings(
        database_url=PG,
        service_token=SecretStr(STRONG),
        ingest_pseudonym_secret=SecretStr("CHANGE-ME-TO-32-BYTES-OR-MORE-OF-RANDOMNESS"),
    )
    with pytest.raises(InsecureSettings, match="BOKVAR_INGEST_PSEUDONYM_SECRET"):
        check_secrets(settings)


def test_a_short_secret_is_refused_even_in_development_mode() -> None:
    settings = RulesSettings(service_token=SecretStr("short-token"), dev_mode=True)
    with pytest.raises(InsecureSettings, match="BOKVAR_SERVICE_TOKEN shorter than 32 bytes"):
        check_secrets(settings)
