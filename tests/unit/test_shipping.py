"""Shipping scenarios: the sandbox carrier's timetable and tracking recorded once, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.errors import InvalidInput
from domain.shipping import (
    DestinationNotFound,
    SandboxCarrier,
    Shipment,
    ShipmentNotFound,
    Shipping,
    TrackingOutOfOrder,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ADDRESS = {
    "name": "Ada",
    "line1": "1 Way",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}
CARRIER = SandboxCarrier(step_seconds=60)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("seconds", "due"),
    [
        (-5, ()),
        (0, ()),
        (59, ()),
        (60, ("picked_up",)),
        (150, ("picked_up", "in_transit")),
        (180, ("picked_up", "in_transit", "out_for_delivery")),
        (240, ("picked_up", "in_transit", "out_for_delivery", "delivered")),
        (10_000, ("picked_up", "in_transit", "out_for_delivery", "delivered")),
    ],
)
def test_sandbox_carrier_moves_one_step_per_interval(seconds: float, due: tuple[str, ...]) -> None:
    assert tuple(CARRIER.statuses_due(uuid4(), NOW, later(seconds))) == due


def test_a_late_carrier_starts_after_its_delay() -> None:
    late = SandboxCarrier(step_seconds=60, delay_seconds=3600)
    assert tuple(late.statuses_due(uuid4(), NOW, later(3600 + 59))) == ()
    assert tuple(late.statuses_due(uuid4(), NOW, later(3600 + 60))) == ("picked_up",)


def test_tracking_is_recorded_in_order_once() -> None:
    shipment = Shipment(
        order_id=uuid4(), address=ADDRESS, created_at=NOW, correlation_id=None, causation_id=None
    )
    shipment.collect_events()
    assert shipment.track("picked_up")
    assert not shipment.track("picked_up")
    with pytest.raises(TrackingOutOfOrder):
        shipment.track("delivered")
    with pytest.raises(InvalidInput):
        shipment.track("lost")
    assert [type(e).__name__ for e in shipment.collect_events()] == ["PickedUp"]


def test_create_shipment_is_idempotent_and_derived_from_the_order() -> None:
    shipping, order_id = Shipping(), uuid4()
    shipment_id = shipping.create_shipment(order_id, ADDRESS, NOW)
    assert shipping.create_shipment(order_id, ADDRESS, later(500)) == shipment_id
    assert shipment_id == Shipment.create_id(order_id)
    shipment = shipping.get_shipment(order_id)
    assert (shipment.version, shipment.created_at, shipment.status) == (1, NOW, "created")
    with pytest.raises(InvalidInput):
        shipping.create_shipment(uuid4(), {**ADDRESS, "line1": ""})


def test_advance_records_every_due_status_once() -> None:
    shipping, order_id, cause = Shipping(), uuid4(), uuid4()
    shipping.create_shipment(order_id, ADDRESS, NOW, caused_by=cause)
    assert shipping.advance(order_id, later(30), CARRIER) == []
    assert shipping.advance(order_id, later(130), CARRIER) == ["picked_up", "in_transit"]
    assert shipping.advance(order_id, later(130), CARRIER) == []
    assert shipping.advance(order_id, later(999), CARRIER) == ["out_for_delivery", "delivered"]
    assert shipping.advance(order_id, later(9999), CARRIER) == []
    shipment = shipping.get_shipment(order_id)
    events = list(shipping.repository.event_store.get(shipment.id))
    assert [type(e).__name__ for e in events] == [
        "Created",
        "PickedUp",
        "InTransit",
        "OutForDelivery",
        "Delivered",
    ]
    assert all(e.correlation_id == order_id for e in events)
    assert events[0].causation_id == cause


def test_advancing_an_unknown_shipment_is_not_found() -> None:
    with pytest.raises(ShipmentNotFound):
        Shipping().advance(uuid4(), NOW, CARRIER)


def test_shipping_keeps_each_orders_destination_from_its_placing() -> None:
    shipping, order_id = Shipping(), uuid4()
    with pytest.raises(DestinationNotFound):
        shipping.get_destination(order_id)
    first = shipping.record_destination(order_id, ADDRESS)
    assert shipping.record_destination(order_id, {**ADDRESS, "city": "Elsewhere"}) == first
    assert shipping.get_destination(order_id).address == ADDRESS
    with pytest.raises(InvalidInput):
        shipping.record_destination(uuid4(), {**ADDRESS, "city": " "})
