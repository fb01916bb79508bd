"""Event contracts: every CloudEvent type Bokvar publishes, as pydantic models."""

from shared.events.base import REGISTRY, EventData, class_kind, event_class
from shared.events.case import (
    CaseOpened,
    CaseStatusChanged,
    Installment,
    LegalStepRecorded,
    PaymentPlanAgreed,
    ReferralRecorded,
)
from shared.events.complaint import ComplaintReceived, ComplaintResolved, WarningIssued
from shared.events.envelope import (
    CloudEvent,
    EnvelopeError,
    built_event,
    decode,
    encode,
    new_event,
)
from shared.events.lease import LeaseEnded, LeaseRegistered, LeaseUpdated, TenantRef
from shared.events.ledger import (
    CreditIssued,
    LedgerWatermarkAdvanced,
    PaymentReceived,
    PaymentReversed,
    RentCharged,
)
from shared.events.notification import NotificationStatusChanged, TaskChanged
from shared.events.signal import RiskFactor, RiskScore, SignalRaised, SignalRetracted

__all__ = [
    "REGISTRY",
    "CaseOpened",
    "CaseStatusChanged",
    "CloudEvent",
    "ComplaintReceived",
    "ComplaintResolved",
    "CreditIssued",
    "EnvelopeError",
    "EventData",
    "Installment",
    "LeaseEnded",
    "LeaseRegistered",
    "LeaseUpdated",
    "LedgerWatermarkAdvanced",
    "LegalStepRecorded",
    "NotificationStatusChanged",
    "PaymentPlanAgreed",
    "PaymentReceived",
    "PaymentReversed",
    "ReferralRecorded",
    "RentCharged",
    "RiskFactor",
    "RiskScore",
    "SignalRaised",
    "SignalRetracted",
    "TaskChanged",
    "TenantRef",
    "WarningIssued",
    "built_event",
    "class_kind",
    "decode",
    "encode",
    "event_class",
    "new_event",
]
