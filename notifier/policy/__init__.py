"""The notification policy and SMS templates: versioned data files, validated when loaded."""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from notifier import variables
from shared.events.signal import SignalType

Action = Literal["sms_tenant", "call_task", "staff_alert_sms", "none"]

POLICY_DIR = Path(__file__).parent
DEFAULT_POLICY = POLICY_DIR / "default.yaml"
TEMPLATES_DIR = POLICY_DIR.parent / "templates"

#: Variables a template may use; anything else is a load error naming it.
TEMPLATE_VARIABLES = variables.ALL
#: Templates the service itself uses besides those the policy names.
REQUIRED_TEMPLATES = frozenset({"staff_alert", "staff_escalation"})


class PolicyError(ValueError):
    """The policy or a template file is invalid; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHours(_Model):
    """When tenant SMS may not be sent (local time)."""

    timezone: str = "Europe/Stockholm"
    start: time = time(8, 0)
    end: time = time(20, 0)
    allow_sundays: bool = Field(False, description="Whether tenant SMS may go out on Sundays.")
    allow_public_holidays: bool = Field(False, description="Whether SMS may go out on holidays.")

    @model_validator(mode="after")
    def _order(self) -> QuietHours:
        if self.start >= self.end:
            raise ValueError("quiet_hours.start must be before quiet_hours.end")
        return self


class RetryPolicy(_Model):
    """Exponential backoff for transient provider errors."""

    max_attempts: int = Field(6, ge=1, le=50)
    base_seconds: float = Field(30, gt=0)
    max_seconds: float = Field(3600, gt=0)


class SignalRule(_Model):
    """What to do for one signal type."""

    actions: tuple[Action, ...] = Field(min_length=1)
    template: str | None = None

    @model_validator(mode="after")
    def _template_when_sms(self) -> SignalRule:
        if "sms_tenant" in self.actions and not self.template:
            raise ValueError("sms_tenant needs a template")
        if "none" in self.actions and len(self.actions) > 1:
            raise ValueError("'none' cannot be combined with other actions")
        return self


class WelcomeSms(_Model):
    """The welcome SMS sent when a lease is registered."""

    enabled: bool = False
    template: str = "welcome"
    max_days_since_start: int = Field(
        30,
        ge=0,
        description="Only leases that started at most this many days before the event "
        "(or start later) are welcomed; older ones are existing stock, not new tenants.",
    )


class LandlordContact(_Model):
    """How a tenant reaches the landlord; goes into every tenant SMS."""

    name: str = Field(min_length=1, max_length=80)
    phone: str = Field(min_length=3, max_length=40)
    email: str | None = Field(None, max_length=120)


class OrgOverride(_Model):
    """Per-organisation changes to the defaults."""

    signals: dict[SignalType, SignalRule] = Field(default_factory=dict)
    welcome_sms: WelcomeSms | None = None
    landlord_contact: LandlordContact | None = None
    weekly_cap_per_tenant: int | None = Field(None, ge=0)
    quiet_hours: QuietHours | None = None


class Policy(_Model):
    """The whole notification policy."""

    version: str = Field(min_length=1, max_length=64)
    default_language: str = Field("sv", min_length=2, max_length=8)
    quiet_hours: QuietHours = QuietHours()
    weekly_cap_per_tenant: int = Field(3, ge=0)
    sender_rate_per_second: float = Field(5.0, gt=0)
    task_due_hours: float = Field(24, gt=0)
    retry: RetryPolicy = RetryPolicy()
    welcome_sms: WelcomeSms = WelcomeSms()
    landlord_contact: LandlordContact
    signals: dict[SignalType, SignalRule]
    organisations: dict[str, OrgOverride] = Field(default_factory=dict)
    #: language -> template name -> text; filled from the templates directory.
    templates: dict[str, dict[str, str]] = Field(default_factory=dict)

    def rule(self, org_id: str, signal: str) -> SignalRule:
        """Return the rule for `signal` in `org_id` (the org override wins)."""
        override = self.organisations.get(org_id)
        chosen: Mapping[Any, SignalRule] = self.signals
        if override is not None and signal in override.signals:
            chosen = override.signals
        return chosen.get(signal) or SignalRule(actions=("none",))

    def welcome(self, org_id: str) -> WelcomeSms:
        """Return the welcome-SMS setting of `org_id`."""
        override = self.organisations.get(org_id)
        return (override.welcome_sms if override else None) or self.welcome_sms

    def contact(self, org_id: str) -> LandlordContact:
        """Return the landlord contact of `org_id`."""
        override = self.organisations.get(org_id)
        return (override.landlord_contact if override else None) or self.landlord_contact

    def weekly_cap(self, org_id: str) -> int:
        """Return the weekly SMS cap per tenant in `org_id`."""
        override = self.organisations.get(org_id)
        cap = override.weekly_cap_per_tenant if override else None
        return self.weekly_cap_per_tenant if cap is None else cap

    def quiet(self, org_id: str) -> QuietHours:
        """Return the quiet hours of `org_id`."""
        override = self.organisations.get(org_id)
        return (override.quiet_hours if override else None) or self.quiet_hours

    def template(self, language: str, name: str) -> tuple[str, str]:
        """Return (language actually used, text): falls back to the default language."""
        lang = language if name in self.templates.get(language, {}) else self.default_language
        return lang, self.templates[lang][name]


def template_variables(text: str) -> set[str]:
    """Return the `{names}` a template uses."""
    names: set[str] = set()
    for _, field, _, _ in string.Formatter().parse(text):
        if field is not None:
            if not field.isidentifier():
                raise PolicyError(f"template field {field!r} is not a plain variable name")
            names.add(field)
    return names


def load_templates(directory: Path) -> dict[str, dict[str, str]]:
    """Read every `<language>.yaml` in `directory` and check each template's variables."""
    result: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise PolicyError(f"{path.name}: expected a mapping of template name to text")
        for name, text in raw.items():
            try:
                unknown = template_variables(text) - TEMPLATE_VARIABLES
            except (PolicyError, ValueError) as exc:
                raise PolicyError(f"{path.name}: template {name!r}: {exc}") from exc
            if unknown:
                raise PolicyError(
                    f"{path.name}: template {name!r} uses unknown variable(s) "
                    + ", ".join(sorted(unknown))
                )
        result[path.stem] = dict(raw)
    return result


def _usages(policy: Policy) -> list[tuple[str, str]]:
    """Return every (template, source) pair the policy can render; source is what fills it."""
    uses = [(name, "staff") for name in sorted(REQUIRED_TEMPLATES)]
    welcomes = [policy.welcome_sms] + [
        o.welcome_sms for o in policy.organisations.values() if o.welcome_sms is not None
    ]
    uses += [(w.template, "welcome") for w in welcomes]
    rules: list[tuple[str, SignalRule]] = list(policy.signals.items())
    for org in policy.organisations.values():
        rules += list(org.signals.items())
    uses += [
        (r.template, signal) for signal, r in rules if r.template and "sms_tenant" in r.actions
    ]
    return uses


def _check_templates(policy: Policy) -> None:
    default = policy.templates.get(policy.default_language)
    if default is None:
        raise PolicyError(f"no template file for default language {policy.default_language!r}")
    uses = _usages(policy)
    missing = sorted({name for name, _ in uses} - set(default))
    if missing:
        raise PolicyError(
            f"templates missing in {policy.default_language}.yaml: " + ", ".join(missing)
        )
    for name, source in uses:
        for language, texts in sorted(policy.templates.items()):
            if name not in texts:
                continue
            extra = template_variables(texts[name]) - variables.provided(source)
            if extra:
                raise PolicyError(
                    f"{language}.yaml: template {name!r} used for {source} names "
                    + ", ".join(sorted(extra))
                    + f", which {source} does not provide (it provides: "
                    + ", ".join(sorted(variables.provided(source)))
                    + ")"
                )


def load_policy(path: Path | None = None, templates_dir: Path | None = None) -> Policy:
    """Load, validate and return the policy with its templates, or raise PolicyError."""
    source = path or DEFAULT_POLICY
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read policy {source}: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"{source.name}: expected a mapping at the top level")
    raw["templates"] = load_templates(templates_dir or TEMPLATES_DIR)
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{source.name}: {loc}: {first['msg']}") from exc
    _check_templates(policy)
    return policy


__all__ = [
    "TEMPLATE_VARIABLES",
    "Action",
    "LandlordContact",
    "Policy",
    "PolicyError",
    "QuietHours",
    "RetryPolicy",
    "SignalRule",
    "load_policy",
    "load_templates",
]
