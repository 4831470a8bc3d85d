"""Events stored before a module split name their aggregate's old module in their topic;
they still resolve to the aggregate where it lives now."""

from __future__ import annotations

import pytest
from eventsourcing.utils import resolve_topic

from domain.order import Order
from domain.reservations import Reservation
from domain.stock import Stock

MOVED = [
    ("domain.inventory:Stock", Stock),
    ("domain.inventory:Reservation", Reservation),
    ("domain.orders:Order", Order),
]


@pytest.mark.parametrize(("old", "aggregate"), MOVED)
def test_an_old_topic_resolves_to_the_moved_aggregate_and_its_events(
    old: str, aggregate: type
) -> None:
    assert resolve_topic(old) is aggregate
    events = [v for v in vars(aggregate).values() if isinstance(v, type) and hasattr(v, "mutate")]
    assert events, aggregate
    for event_class in events:
        assert resolve_topic(f"{old}.{event_class.__name__}") is event_class
