"""The escalation policy as data: pydantic models, validated when a YAML/JSON file is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.events.signal import SignalType

POLICY_DIR = Path(__file__).parent
DEFAULT_POLICY = POLICY_DIR / "default.yaml"
OVERRIDES_DIR = POLICY_DIR / "overrides"

LadderSignal = Literal[
    "pre_due_reminder",
    "late_rent_detected",
    "personal_contact_needed",
    "forfeiture_possible",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(_Strict):
    """One rung of the late-rent ladder, evaluated per rent charge."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    signal: LadderSignal
    offset_days: int = Field(
        ge=-31, le=366, description="Days after the due date (negative: before)."
    )
    unit: Literal["calendar", "working"] = "calendar"
    min_arrears_ore: int = Field(0, ge=0)
    min_unpaid_charges: int = Field(0, ge=0)
    min_risk_score: int = Field(0, ge=0, le=100)
    min_late_payments_12m: int = Field(0, ge=0)
    legal_basis: str | None = None
    statutory_period: bool = Field(
        False,
        description="The stage fires the day after a statutory period of offset_days - 1 "
        "days whose last day follows lag (1930:173): a Saturday, Sunday or holiday moves it "
        "to the next working day (JB 12:42: 'more than a week' after the due date).",
    )

    @model_validator(mode="after")
    def _statutory_needs_positive_offset(self) -> Stage:
        if self.statutory_period and self.offset_days < 1:
            raise ValueError("statutory_period needs offset_days >= 1")
        return self


class Settlement(_Strict):
    """When the ledger is complete enough for a late-rent stage to fire.

    A stage due on day S fires only once every payment booked before S can be known: the
    organisation's ledger watermark covers S - 1 (`LedgerWatermarkAdvanced`), or, for an
    organisation that sends none, `lag_banking_days` banking days have passed after S - 1
    (and after the day the charge arrived, so a backfilled history waits for its payments).
    A watermark that stalls holds a stage at most `watermark_stale_after_banking_days`
    banking days longer than the lag would.
    """

    lag_banking_days: int = Field(
        1, ge=0, le=10, description="Banking days an ERP may take to deliver a booked payment."
    )
    watermark_stale_after_banking_days: int | None = Field(
        2,
        ge=0,
        le=20,
        description="A watermark that has not covered a stage this many banking days after "
        "the lag would have released it no longer holds it: the lag decides (a stalled ERP "
        "export must not silence late rent). None: wait for the watermark however long.",
    )


class Recovery(_Strict):
    """The JB 12:44 recovery period after a recorded termination."""

    length_days: int = Field(21, ge=1, le=90)
    reminder_every_days: int = Field(7, ge=1, le=90)
    ending_warning_days: int = Field(3, ge=0, le=90)
    legal_basis: str = "JB 12:44"


class Plans(_Strict):
    """Payment-plan monitoring."""

    grace_days: int = Field(0, ge=0, le=31)


class ComplaintPattern(_Strict):
    """`count` complaints of `categories` within `window_days` raise `signal`."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    categories: tuple[Literal["disturbance", "neglect", "other"], ...] = Field(min_length=1)
    count: int = Field(ge=1, le=100)
    window_days: int = Field(ge=1, le=3650)
    signal: SignalType = "complaint_pattern"


class WarningRule(_Strict):
    """A warning of `categories` raises `signal` (e.g. the JB 12:25 notice to social services)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    categories: tuple[Literal["disturbance", "neglect", "late_payment"], ...] = Field(min_length=1)
    signal: SignalType = "social_services_notice_due"
    legal_basis: str | None = None


class FactorWeight(_Strict):
    """A risk factor contributes `weight * min(value / saturation, 1)` points."""

    weight: float = Field(ge=0, le=100)
    saturation: float = Field(gt=0)


FactorName = Literal[
    "days_late", "arrears_months", "late_payments_12m", "complaints_90d", "broken_plans"
]


class Risk(_Strict):
    """Risk score weights (they must add up to 100) and the high-risk threshold."""

    high_risk_threshold: int = Field(60, ge=1, le=100)
    factors: dict[FactorName, FactorWeight]

    @model_validator(mode="after")
    def _weights_sum_to_100(self) -> Risk:
        total = sum(f.weight for f in self.factors.values())
        if abs(total - 100) > 1e-6:
            raise ValueError(f"factor weights must add up to 100, got {total:g}")
        return self


class Policy(_Strict):
    """A complete, versioned escalation policy."""

    version: str = Field(min_length=1, max_length=64)
    timezone: str = "Europe/Stockholm"
    ladder: tuple[Stage, ...] = Field(min_length=1)
    settlement: Settlement = Settlement()
    recovery: Recovery = Recovery()
    plans: Plans = Plans()
    complaint_patterns: tuple[ComplaintPattern, ...] = ()
    warning_rules: tuple[WarningRule, ...] = ()
    risk: Risk

    @model_validator(mode="after")
    def _unique_stage_names(self) -> Policy:
        names = [s.name for s in self.ladder]
        if len(set(names)) != len(names):
            raise ValueError("ladder stage names must be unique")
        signals = [s.signal for s in self.ladder]
        if len(set(signals)) != len(signals):
            raise ValueError("each ladder signal may appear once")
        return self


class PolicyError(ValueError):
    """A policy document is invalid; `errors` lists `{"field": path, "reason": text}`."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors


def parse_document(raw: bytes | str) -> dict[str, Any]:
    """Parse YAML or JSON text into a mapping, or raise PolicyError."""
    try:
        loaded = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        try:
            loaded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise PolicyError([{"field": "(document)", "reason": f"not YAML/JSON: {exc}"}]) from exc
    if not isinstance(loaded, dict):
        raise PolicyError([{"field": "(document)", "reason": "must be a mapping"}])
    return loaded


def validate_policy(document: dict[str, Any]) -> Policy:
    """Validate a parsed policy mapping; raise PolicyError with every field path and reason."""
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "(document)",
                "reason": err["msg"],
            }
            for err in exc.errors()
        ]
        raise PolicyError(errors) from exc


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_policy(path: Path = DEFAULT_POLICY) -> Policy:
    """Load and validate a policy file."""
    return validate_policy(parse_document(path.read_bytes()))


def load_policies(
    default: Path = DEFAULT_POLICY, overrides: Path = OVERRIDES_DIR
) -> tuple[Policy, dict[str, Policy]]:
    """Load the default policy and every `<org_id>.yaml` override (deep-merged over it)."""
    base_doc = parse_document(default.read_bytes())
    base = validate_policy(base_doc)
    per_org: dict[str, Policy] = {}
    if overrides.is_dir():
        for path in sorted(overrides.glob("*.yaml")):
            per_org[path.stem] = validate_policy(
                _merge(base_doc, parse_document(path.read_bytes()))
            )
    return base, per_org


class PolicySet:
    """The active default policy and the per-organisation overrides."""

    def __init__(self, default: Policy, per_org: dict[str, Policy] | None = None) -> None:
        self.default = default
        self.per_org = per_org or {}

    def for_org(self, org_id: str) -> Policy:
        """Return the policy that applies to `org_id`."""
        return self.per_org.get(org_id, self.default)

    @classmethod
    def load(cls, default: Path = DEFAULT_POLICY, overrides: Path = OVERRIDES_DIR) -> PolicySet:
        """Load the default file and the override directory."""
        base, per_org = load_policies(default, overrides)
        return cls(base, per_org)
