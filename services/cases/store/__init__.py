"""Every SQL statement of the cases service. Stores flush, never commit."""

from services.cases.store.audit import AuditStore
from services.cases.store.cases import CasesStore
from services.cases.store.reports import ReportStore

__all__ = ["AuditStore", "CasesStore", "ReportStore"]
