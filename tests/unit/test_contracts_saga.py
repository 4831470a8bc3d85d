"""The saga contexts' public contracts: every example validates, and the events a whole
saga stores travel through envelope_from_domain and parse unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application

from domain.catalog import Catalog
from domain.inventory import Inventory
from domain.order import Order
from domain.order_lines import OrderLine
from domain.orders import Orders
from domain.payments import MemoryPaymentIntents, PaymentIntent, Payments, SandboxGateway
from domain.reservations import ReservationLine
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
        "order.confirmed",  # order.paid is in old logs only (it always preceded this)
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
# Versions past the first, each with its upcasters from every older one.
CURRENT_VERSIONS = {"order.placed": 4, "reservation.confirmed": 2, "shipment.created": 2}
ALL_SAGA_TYPES = [(topic, t) for topic, types in SAGA_TYPES.items() for t in types]


@pytest.mark.parametrize(("topic", "event_type"), ALL_SAGA_TYPES)
def test_every_public_type_is_registered_with_an_example_that_parses(
    topic: str, event_type: str
) -> None:
    contract = CONTRACTS[event_type]
    assert contract.topic == topic
    assert contract.schema_version == CURRENT_VERSIONS.get(event_type, 1)
    assert contract.domain_event is not None and contract.to_payload is not None
    assert set(contract.upcasters) == set(range(1, contract.schema_version))
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
    intents = MemoryPaymentIntents()
    seller, buyer = uuid4(), uuid4()
    product_id = catalog.create_product(seller, "MUG-1", "Mug", "", "kitchen", 4900, "CNY")
    catalog.update_product(product_id, seller, name="Mug II", price_amount=3900)
    inventory.register_product(product_id, seller)
    inventory.receive_stock(product_id, seller, 3, NOW)
    lines = [OrderLine(product_id, 1, 3900)]

    def place(token: str) -> UUID:
        intent = intents.open(PaymentIntent.open(uuid4(), 3900, "CNY", "card", token))
        order_id, _ = orders.place_order(
            buyer,
            lines,
            ADDRESS,
            intent.reference,
            None,
            "fp",
            NOW,
            timedelta(minutes=15),
            order_id=intent.order_id,
        )
        shipping.record_destination(order_id, ADDRESS)
        return order_id

    def charge(order_id: UUID, cause: UUID | None = None) -> None:
        intent = intents.find(order_id)
        assert intent is not None
        payments.charge_order(intent, gateway, cause)

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
    charge(happy, uuid4())
    orders.mark_paid_and_confirm(happy, 3900, uuid4())
    inventory.mark_order_paid(happy, uuid4())
    inventory.commit_order(happy, uuid4())
    shipping.create_shipment(happy, shipping.get_destination(happy).address, NOW, uuid4())
    shipping.advance(happy, NOW + timedelta(hours=1), SandboxCarrier(step_seconds=60))
    orders.mark_shipped(happy, shipping.get_shipment(happy).id)
    orders.mark_delivered(happy, shipping.get_shipment(happy).id, NOW + timedelta(hours=1))
    orders.complete(happy)

    cancelled = place("tok_ok")
    reserve(cancelled)
    charge(cancelled)
    orders.mark_paid_and_confirm(cancelled, 3900)
    orders.cancel(cancelled, "changed my mind", by_buyer_id=buyer)
    payments.cancel_payment(cancelled, gateway)
    inventory.release_order(cancelled, "cancelled")

    for token, outcome in (("tok_declined", "payment_declined"), ("tok_timeout", "expired")):
        order_id = place(token)
        reserve(order_id)
        charge(order_id)
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


def test_no_stored_event_of_a_whole_saga_holds_a_payment_token() -> None:
    """Not on the bus, and not in any store: an event store is an outbox."""
    for events in run_saga().values():
        for domain_event in events:
            assert "tok_" not in repr(domain_event.__dict__), type(domain_event).__qualname__
            envelope = envelope_from_domain(domain_event)
            assert envelope is None or b"tok_" not in envelope.to_bytes()


def test_order_placed_v1_is_upcast_without_its_token() -> None:
    v2 = CONTRACTS["order.placed"].example
    v1 = {
        **v2,
        "schema_version": 1,
        "payload": {**v2["payload"], "payment": {"method": "alipay", "token": "tok_ok"}},
    }
    envelope = parse(v1)
    assert envelope.schema_version == 4
    assert envelope.payload["payment"] == {"method": "alipay", "intent_id": None}
    assert b"tok_" not in envelope.to_bytes()


def test_order_placed_v2_is_upcast_to_lines_at_their_unit_price_without_discounts() -> None:
    v3 = CONTRACTS["order.placed"].example
    payload = {k: v for k, v in v3["payload"].items() if k not in ("discount_total", "coupon_code")}
    payload["lines"] = [{"product_id": str(uuid4()), "quantity": 2, "unit_price": 4900}]
    payload["total"] = 9800
    envelope = parse({**v3, "schema_version": 2, "payload": payload})
    [line] = envelope.payload["lines"]
    assert (line["list_price"], line["discounts"], line["line_total"]) == (4900, [], 9800)
    assert (envelope.payload["discount_total"], envelope.payload["coupon_code"]) == (0, None)


def placed_event(quantity: int) -> Any:
    """A new order's `Placed` event, for tests to make look as older code stored it."""
    order = Order.place(
        uuid4(),
        [OrderLine(uuid4(), quantity, 500)],
        ADDRESS,
        {"method": "card", "intent_id": str(uuid4())},
        "CNY",
        NOW,
        timedelta(minutes=15),
    )
    [placed] = order.collect_events()
    return placed


def test_an_order_stored_before_pricing_replays_and_publishes_as_v3() -> None:
    """Its stored event has no discount_total or coupon_code, and lines without pricing."""
    placed = placed_event(quantity=2)
    del placed.__dict__["discount_total"], placed.__dict__["coupon_code"]
    placed.__dict__["lines"] = [{"product_id": uuid4(), "quantity": 2, "unit_price": 500}]
    replayed = placed.mutate(None)
    assert replayed is not None and (replayed.discount_total, replayed.coupon_code) == (0, None)
    assert replayed.lines[0].line_total == 1000
    envelope = envelope_from_domain(placed)
    assert envelope is not None and envelope.payload["lines"][0]["line_total"] == 1000


def test_an_order_stored_before_intents_is_published_without_its_token() -> None:
    """Such an order's stored event holds {method, token}; the relay publishes it as v2."""
    placed = placed_event(quantity=1)
    placed.__dict__["payment"] = {"method": "card", "token": "tok_ok"}  # as stored back then
    envelope = envelope_from_domain(placed)
    assert envelope is not None and b"tok_" not in envelope.to_bytes()
    assert envelope.payload["payment"] == {"method": "card", "intent_id": None}


def test_saga_events_name_their_cause() -> None:
    events = run_saga()["orders.events"]
    reserved = [e for e in events if type(e).__name__ == "Reserved"]
    assert reserved and all(e.causation_id is not None for e in reserved)
    envelope = envelope_from_domain(reserved[0])
    assert envelope is not None and envelope.causation_id == reserved[0].causation_id
