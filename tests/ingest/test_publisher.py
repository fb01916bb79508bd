"""The batch publisher encodes exactly like the shared envelope."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ingest.publisher import encode_fast
from shared.events import (
    ComplaintReceived,
    LeaseRegistered,
    RentCharged,
    TenantRef,
    encode,
    new_event,
)

NOW = datetime(2026, 3, 2, 8, 0, 0, 123456, tzinfo=UTC)


def test_fast_encoding_equals_the_shared_envelope() -> None:
    samples = [
        RentCharged.model_construct(
            lease_id="L-1",
            org_id="o",
            invoice_id="I",
            ocr=None,
            period="2026-03",
            amount_ore=850000,
            due_date=date(2026, 2, 27),
            due_date_source="jb_12_20",
        ),
        ComplaintReceived(
            lease_id="L-1",
            org_id="o",
            complaint_id="K",
            category="other",
            occurred_at=datetime.fromisoformat("2026-03-01T23:30:00+01:00"),
        ),
        LeaseRegistered(
            lease_id="L-2",
            org_id="o",
            property_id="P",
            area="Söder",
            municipality_code="0180",
            monthly_rent_ore=1,
            start_date=date(2024, 1, 1),
            team="t",
            tenants=(
                TenantRef(
                    tenant_id="T",
                    pseudonym="a" * 64,
                    birth_year=1981,
                    age_band="40-49",
                    gender="male",
                ),
            ),
        ),
    ]
    for data in samples:
        event = new_event(data, id="o:e1", source="ingest/o", time=NOW)
        assert encode_fast(event) == encode(event)
