"""The ledger watermark goes into every partition of ledger.events: a barrier. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from shared.events import CloudEvent, EventData, LedgerWatermarkAdvanced, new_event


def fan_out(
    events: Sequence[CloudEvent[EventData]], partitions: int
) -> list[CloudEvent[EventData]]:
    """Replace each watermark with one copy per partition (ids `{id}:p{n}`), in place.

    Each copy follows, in its partition, every payment the ERP sent before it; rules
    applies the watermark only once it has seen all copies, so the watermark cannot
    overtake a payment still queued in another partition.
    """
    out: list[CloudEvent[EventData]] = []
    for ev in events:
        if not isinstance(ev.data, LedgerWatermarkAdvanced):
            out.append(ev)
            continue
        for n in range(partitions):
            copy = ev.data.model_copy(update={"partition": n, "partitions": partitions})
            out.append(new_event(copy, id=f"{ev.id}:p{n}", source=ev.source, time=ev.time))
    return out


def has_watermark(events: Sequence[CloudEvent[EventData]]) -> bool:
    """Tell whether any event is a ledger watermark (to be fanned out)."""
    # per class, not per event: isinstance of a pydantic model goes through ABCMeta
    classes = {type(ev.data) for ev in events}
    return any(issubclass(cls, LedgerWatermarkAdvanced) for cls in classes)
