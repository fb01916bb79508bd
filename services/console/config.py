"""Settings of the staff console."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from shared.config import DEV_CASES_JWT_SECRET, CommonSettings

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEV_SESSION_SECRET = "dev-console-session-secret-change-me-0123456789"


class ConsoleSettings(CommonSettings):
    """Settings of the staff console (environment variables `BOKVAR_*`)."""

    console_port: int = Field(8005, description="HTTP port of the staff console.")
    console_session_secret: SecretStr = Field(
        SecretStr(DEV_SESSION_SECRET),
        description="Key that signs the console's session cookies (at least 32 bytes).",
    )
    console_cases_url: str = Field(
        "http://127.0.0.1:8004", description="Base URL of the cases API the console calls."
    )
    console_notifier_url: str = Field(
        "http://127.0.0.1:8003", description="Base URL of the notifier API (tasks, SMS)."
    )
    console_rules_url: str = Field(
        "http://127.0.0.1:8002", description="Base URL of the rules API (ledger, stage)."
    )
    console_ingest_url: str = Field(
        "http://127.0.0.1:8001",
        description="Base URL of ingest; phone numbers for call links are read there at "
        "render time and never stored.",
    )
    console_oidc_issuer: str = Field(
        "",
        description="OpenID Connect issuer URL of the organisation's identity provider. "
        "Unset: the marked dev sign-in (loopback or BOKVAR_CONSOLE_DEV_SIGNIN only).",
    )
    console_oidc_client_id: str = Field("", description="OIDC client id of the console.")
    console_oidc_client_secret: SecretStr | None = Field(
        None, description="OIDC client secret of the console (unset: a public client, PKCE only)."
    )
    console_oidc_scope: str = Field("openid profile", description="OIDC scopes requested.")
    console_oidc_role_claim: str = Field(
        "bokvar_role", description="Claim that carries the user's Bokvar role."
    )
    console_oidc_org_claim: str = Field(
        "bokvar_org", description="Claim that carries the user's organisation id."
    )
    console_oidc_municipality_claim: str = Field(
        "bokvar_municipality",
        description="Claim that carries a social-services user's municipality code.",
    )
    console_public_url: str = Field(
        "",
        description="Public base URL of the console (OIDC redirect URI base); unset: taken "
        "from the request.",
    )
    console_dev_signin: bool = Field(
        False,
        description="Allow the dev sign-in off loopback (laptop stacks only; ignored when an "
        "OIDC issuer is set).",
    )
    console_session_hours: float = Field(
        8.0, gt=0, le=24, description="Hours a console sign-in lasts."
    )
    console_http_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of the console's calls to the other services."
    )
    # Same variable as the cases service: the console mints the signed-in user's cases token.
    cases_jwt_secret: SecretStr = Field(
        SecretStr(DEV_CASES_JWT_SECRET),
        description="HS256 signing key of the bearer JWTs the cases API accepts.",
    )

    @model_validator(mode="after")
    def _session_secret(self) -> ConsoleSettings:
        if len(self.console_session_secret.get_secret_value().encode()) < 32:
            raise ValueError("console_session_secret must be at least 32 bytes")
        dev_key = self.console_session_secret.get_secret_value() == DEV_SESSION_SECRET
        if dev_key and not self.loopback:
            raise ValueError("set console_session_secret: the dev value is refused off loopback")
        if self.console_oidc_issuer and not self.console_oidc_client_id:
            raise ValueError("console_oidc_client_id is required with console_oidc_issuer")
        return self

    @property
    def loopback(self) -> bool:
        """Tell whether the console listens on loopback only (cookies may go without TLS)."""
        return self.host in LOOPBACK

    @property
    def dev_signin(self) -> bool:
        """Tell whether the marked dev sign-in is offered."""
        return not self.console_oidc_issuer and (self.loopback or self.console_dev_signin)
