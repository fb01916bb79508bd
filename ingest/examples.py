"""Worked examples for every request body (shown in OpenAPI /docs)."""

from __future__ import annotations

from typing import Any

LEASE: dict[str, Any] = {
    "event_id": "erp-2026-000101",
    "lease_id": "L-1001",
    "property_id": "P-77",
    "area": "Rinkeby",
    "municipality_code": "0180",
    "monthly_rent_ore": 850000,
    "start_date": "2024-04-01",
    "end_date": None,
    "team": "team-north",
    "household_type": "single_with_children",
    "due_day": None,
    "tenants": [
        {
            "tenant_id": "T-1",
            "personnummer": "811228-9874",
            "phone": "070-123 45 67",
            "language": "sv",
            "name": "Anna Andersson",
        }
    ],
}
LEASE_END: dict[str, Any] = {"event_id": "erp-2026-000102", "end_date": "2026-06-30"}
CHARGE: dict[str, Any] = {
    "event_id": "erp-2026-000103",
    "lease_id": "L-1001",
    "invoice_id": "INV-2026-03-1001",
    "ocr": "100120260301",
    "period": "2026-03",
    "amount_ore": 850000,
}
PAYMENT: dict[str, Any] = {
    "event_id": "erp-2026-000104",
    "payment_id": "BG-998877",
    "amount_ore": 850000,
    "booked_date": "2026-02-27",
    "reference": "100120260301",
}
REVERSAL: dict[str, Any] = {
    "event_id": "erp-2026-000105",
    "lease_id": "L-1001",
    "reversal_id": "R-1",
    "payment_id": "BG-998877",
    "amount_ore": 850000,
    "booked_date": "2026-03-02",
    "reason": "autogiro rejected",
}
CREDIT: dict[str, Any] = {
    "event_id": "erp-2026-000106",
    "lease_id": "L-1001",
    "credit_id": "C-1",
    "amount_ore": 20000,
    "booked_date": "2026-03-03",
    "invoice_id": "INV-2026-03-1001",
    "reason": "rent reduction for repairs",
}
COMPLAINT: dict[str, Any] = {
    "event_id": "erp-2026-000107",
    "lease_id": "L-1001",
    "complaint_id": "K-55",
    "category": "disturbance",
    "occurred_at": "2026-03-01T23:30:00+01:00",
    "description": "Loud music after 22:00 reported by two neighbours.",
}
COMPLAINT_RESOLVE: dict[str, Any] = {
    "event_id": "erp-2026-000108",
    "resolved_at": "2026-03-10T10:00:00+01:00",
    "resolution": "corrected",
}
WARNING: dict[str, Any] = {
    "event_id": "erp-2026-000109",
    "lease_id": "L-1001",
    "warning_id": "W-3",
    "category": "disturbance",
    "issued_date": "2026-03-04",
}
WATERMARK: dict[str, Any] = {"event_id": "erp-2027-000401", "booked_through": "2027-01-04"}
BATCH: list[dict[str, Any]] = [
    {"type": "lease", **LEASE},
    {"type": "charge", **CHARGE},
    {"type": "payment", **PAYMENT},
    {"type": "lease_end", "lease_id": "L-1001", **LEASE_END},
    {"type": "complaint_resolved", "complaint_id": "K-55", **COMPLAINT_RESOLVE},
]
NDJSON = (
    '{"type": "charge", "event_id": "e1", "lease_id": "L-1001", "invoice_id": "I1",'
    ' "period": "2026-04", "amount_ore": 850000}\n'
)
CSV = (
    "type,event_id,lease_id,invoice_id,ocr,period,amount_ore,due_date,payment_id,"
    "booked_date,reference\n"
    "charge,e-201,L-1001,INV-4,100120260401,2026-04,850000,,,,\n"
    "payment,e-202,,,,,850000,,BG-1,2026-03-31,100120260401\n"
)


def example(value: Any, summary: str) -> dict[str, Any]:
    """Return an OpenAPI `examples` mapping with one worked example."""
    return {"worked": {"summary": summary, "value": value}}
