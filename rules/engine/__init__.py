"""The pure rules engine: ledger, stages, recovery period, plans, complaints, risk.

No I/O, no clock: every function takes `now`/`today` and plain data.
"""

from rules.engine.evaluate import (
    Evaluation,
    evaluate,
    plan_status,
    quiet,
    recovery_window,
    stage_date,
)
from rules.engine.ledger import ChargeStatus, Ledger, apply_entries
from rules.engine.state import (
    Complaint,
    Deadline,
    LeaseState,
    LedgerEntry,
    LegalStep,
    Plan,
    RetractionDraft,
    SignalDraft,
    Warning,
    Watermark,
)

__all__ = [
    "ChargeStatus",
    "Complaint",
    "Deadline",
    "Evaluation",
    "LeaseState",
    "Ledger",
    "LedgerEntry",
    "LegalStep",
    "Plan",
    "RetractionDraft",
    "SignalDraft",
    "Warning",
    "Watermark",
    "apply_entries",
    "evaluate",
    "plan_status",
    "quiet",
    "recovery_window",
    "stage_date",
]
