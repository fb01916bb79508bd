"""Tables owned by the cases service."""

from __future__ import annotations

from shared.db import inbox_table, new_metadata, outbox_table

metadata = new_metadata()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)
