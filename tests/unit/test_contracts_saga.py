"""The saga contexts' public contracts: every example validates, and the events a whole
saga stores travel through envelope_from_domain and parse unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application

from domain.catalog import Catalog
from domain.inventory import Inventory, ReservationLine
from domain.orders import OrderLine, Orders
from domain.payments import Payments, SandboxGateway
from domain.shipping import SandboxCarrier, Shipping
from eventmart.contracts import CONTRACTS, envelope_from_domain, parse

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ADDRESS = {
    "name": "Ada",
    "line1": "1 Way",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}
SAGA_TYPES = {
    "catalog.events": ["product.created", "product.updated", "product.price_changed"],
    "inventory.events": [
        "stock.received",
        "stock.reserved",
        "stock.committed",
        "stock.released",
        "reservation.confirmed",
        "reservation.failed",
        "reservation.committed",
        "reservation.released",
    ],
    "orders.events": [
        "order.placed",
        "order.reserved",
        "order.paid",
        "order.confirmed",
        "order.shipped",
        "order.delivered",
        "order.completed",
        "order.cancelled",
        "order.rejected",
    ],
    "payments.events": [
        "payment.captured",
        "payment.declined",
        "payment.pending",
        "payment.refunded",
        "payment.voided",
    ],
    "shipping.events": [
        "shipment.created",
        "shipment.picked_up",
        "shipment.in_transit",
        "shipment.out_for_delivery",
        "shipment.delivered",
    ],
}
ALL_SAGA_TYPES = [(topic, t) for topic, types in SAGA_TYPES.items() for t in types]


@pytest.mark.parametrize(("topic", "event_type"), ALL_SAGA_TYPES)
def test_every_public_type_is_registered_with_an_example_that_parses(
    topic: str, event_type: str
) -> None:
    contract = CONTRACTS[event_type]
    assert (contract.topic, contract.schema_version) == (topic, 1)
    assert contract.domain_event is not None and contract.to_payload is not None
    envelope = parse(contract.example)
    assert envelope.type == event_type
    assert parse(envelope.to_bytes()) == envelope


def stored_events(app: Application[UUID]) -> list[Any]:
    notifications = app.recorder.select_notifications(start=1, limit=10_000)
    return [app.mapper.to_domain_event(n) for n in notifications]


def run_saga() -> dict[str, list[Any]]:
    """Drive the five contexts through a paid, delivered order, a cancelled one,
    a rejected one and an expired one, as the workers would."""
    catalog, inventory, orders = Catalog(), Inventory(), Orders()
    payments, shipping, gateway = Payments(), Shipping(), SandboxGateway()
    seller, buyer = uuid4(), uuid4()
    product_id = catalog.create_product(seller, "MUG-1", "Mug", "", "kitchen", 4900, "CNY")
    catalog.update_product(product_id, seller, name="Mug II", price_amount=3900)
    inventory.register_product(product_id, seller)
    inventory.receive_stock(product_id, seller, 3, NOW)
    lines = [OrderLine(product_id, 1, 3900)]

    def place(token: str) -> UUID:
        order_id, _ = orders.place_order(
            buyer,
            lines,
            ADDRESS,
            {"method": "card", "token": token},
            None,
            "fp",
            NOW,
            timedelta(minutes=15),
        )
        return order_id

    def reserve(order_id: UUID, quantity: int = 1) -> None:
        cause = uuid4()
        reservation = inventory.reserve_order(
            order_id, [ReservationLine(product_id, quantity)], NOW + timedelta(minutes=15), cause
        )
        if reservation.status == "confirmed":
            orders.mark_reserved(order_id, cause)
        else:
            orders.reject(order_id, reservation.reason or "rejected", cause)

    happy = place("tok_ok")
    reserve(happy)
    payments.charge_order(happy, 3900, "CNY", "card", "tok_ok", gateway, uuid4())
    orders.mark_paid_and_confirm(happy, 3900, uuid4())
    inventory.commit_order(happy, uuid4())
    shipping.create_shipment(happy, ADDRESS, NOW, uuid4())
    shipping.advance(happy, NOW + timedelta(hours=1), SandboxCarrier(step_seconds=60))
    orders.mark_shipped(happy, shipping.get_shipment(happy).id)
    orders.mark_delivered(happy, shipping.get_shipment(happy).id, NOW + timedelta(hours=1))
    orders.complete(happy)

    cancelled = place("tok_ok")
    reserve(cancelled)
    payments.charge_order(cancelled, 3900, "CNY", "card", "tok_ok", gateway)
    orders.mark_paid_and_confirm(cancelled, 3900)
    orders.cancel(cancelled, "changed my mind", by_buyer_id=buyer)
    payments.cancel_payment(cancelled, gateway)
    inventory.release_order(cancelled, "cancelled")

    for token, outcome in (("tok_declined", "payment_declined"), ("tok_timeout", "expired")):
        order_id = place(token)
        reserve(order_id)
        payments.charge_order(order_id, 3900, "CNY", "card", token, gateway)
        orders.cancel(order_id, outcome)
        payments.cancel_payment(order_id, gateway)
        inventory.release_order(order_id, "expired")

    reserve(place("tok_ok"), quantity=99)
    return {
        "catalog.events": stored_events(catalog),
        "inventory.events": stored_events(inventory),
        "orders.events": stored_events(orders),
        "payments.events": stored_events(payments),
        "shipping.events": stored_events(shipping),
    }


def test_a_whole_saga_round_trips_through_envelopes() -> None:
    published: dict[str, set[str]] = {topic: set() for topic in SAGA_TYPES}
    for topic, events in run_saga().items():
        for domain_event in events:
            envelope = envelope_from_domain(domain_event)
            if envelope is None:
                continue  # private: index claims, registrations, "Opened"
            assert CONTRACTS[envelope.type].topic == topic
            assert parse(envelope.to_bytes()) == envelope
            published[topic].add(envelope.type)
            order_id = envelope.payload.get("order_id")
            if order_id is not None:
                assert str(envelope.correlation_id) == order_id, envelope.type
    assert published == {topic: set(types) for topic, types in SAGA_TYPES.items()}


def test_saga_events_name_their_cause() -> None:
    events = run_saga()["orders.events"]
    reserved = [e for e in events if type(e).__name__ == "Reserved"]
    assert reserved and all(e.causation_id is not None for e in reserved)
    envelope = envelope_from_domain(reserved[0])
    assert envelope is not None and envelope.causation_id == reserved[0].causation_id
