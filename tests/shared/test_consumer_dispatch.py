"""The notifier's and cases' handlers pick an event's action by its class in one dict
lookup; any other class (a subclass, say) gets what the isinstance chain gave it."""

from __future__ import annotations

from typing import Any

import pytest

from notifier.consumer import kind_of as notifier_kind
from services.cases.consumer import kind_of as cases_kind
from shared.events import (
    REGISTRY,
    LeaseEnded,
    LeaseRegistered,
    LeaseUpdated,
    NotificationStatusChanged,
    SignalRaised,
    SignalRetracted,
    TaskChanged,
)


def _chain_notifier(data: Any) -> str | None:  # the handler's isinstance chain before
    if isinstance(data, SignalRaised):
        return "signal"
    if isinstance(data, SignalRetracted):
        return "retracted"
    if isinstance(data, LeaseRegistered | LeaseUpdated):
        return "lease"
    if isinstance(data, LeaseEnded):
        return "lease_ended"
    return None


def _chain_cases(data: Any) -> str | None:
    if isinstance(data, SignalRaised):
        return "signal"
    if isinstance(data, SignalRetracted):
        return "retracted"
    if isinstance(data, NotificationStatusChanged | TaskChanged):
        return "notification"
    if isinstance(data, LeaseRegistered | LeaseUpdated | LeaseEnded):
        return "lease"
    return None


class _Ended(LeaseEnded):  # no event_type: not registered
    pass


class _Raised(SignalRaised):
    pass


@pytest.mark.parametrize("model", [*REGISTRY.values(), _Ended, _Raised], ids=lambda m: m.__name__)
def test_kind_of_is_what_the_isinstance_chain_gave(model: Any) -> None:
    data = model.model_construct()
    assert notifier_kind(data) == _chain_notifier(data)
    assert cases_kind(data) == _chain_cases(data)
    if model in (_Ended, _Raised):
        assert cases_kind(data) is not None  # found through isinstance
