"""Order scenarios: the status machine, exhaustively, and the saga's tolerance of late events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from domain.errors import DomainError, InvalidInput
from domain.idempotency import IdempotencyKeyReused
from domain.order import Order, OrderNotFound, PaymentAmountMismatch
from domain.order_lines import OrderLine
from domain.order_status import (
    STATUSES,
    TRANSITIONS,
    InvalidOrderTransition,
    OrderNotCancellable,
    OrderNotDelivered,
    OrderNotRejectable,
)
from domain.orders import Orders

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=15)
BUYER, PRODUCT, SHIPMENT = uuid4(), uuid4(), uuid4()
ADDRESS = {
    "name": "Ada",
    "line1": "1 Way",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}
PAYMENT = {"method": "card", "intent_id": str(uuid4())}
LINES = [OrderLine(PRODUCT, 2, 4900)]
TOTAL = 9800


def placed() -> Order:
    order = Order.place(BUYER, LINES, ADDRESS, PAYMENT, "CNY", NOW, TIMEOUT)
    order.collect_events()
    return order


# given: the events that put an order in each status (paid alone only happens mid-save)
GIVEN: dict[str, Callable[[Order], object]] = {
    "pending": lambda o: None,
    "reserved": lambda o: o.mark_reserved(),
    "paid": lambda o: (
        o.mark_reserved(),
        o._paid(order_id=o.id, amount=TOTAL, correlation_id=o.id, causation_id=None),
    ),
    "confirmed": lambda o: o.mark_paid_and_confirm(TOTAL),
    "shipped": lambda o: (o.mark_paid_and_confirm(TOTAL), o.mark_shipped(SHIPMENT)),
    "delivered": lambda o: (o.mark_paid_and_confirm(TOTAL), o.mark_delivered(SHIPMENT, NOW)),
    "completed": lambda o: (
        o.mark_paid_and_confirm(TOTAL),
        o.mark_delivered(SHIPMENT, NOW),
        o.complete(),
    ),
    "cancelled": lambda o: o.cancel("changed my mind"),
    "rejected": lambda o: o.reject("insufficient_stock"),
}

COMMANDS: dict[str, Callable[[Order], bool]] = {
    "mark_reserved": lambda o: o.mark_reserved(),
    "reject": lambda o: o.reject("insufficient_stock"),
    "mark_paid_and_confirm": lambda o: o.mark_paid_and_confirm(TOTAL),
    "cancel": lambda o: o.cancel("changed my mind"),
    "mark_shipped": lambda o: o.mark_shipped(SHIPMENT),
    "mark_delivered": lambda o: o.mark_delivered(SHIPMENT, NOW),
    "confirm_receipt": lambda o: o.confirm_receipt(BUYER),
    "complete": lambda o: o.complete(),
}

A, S = "apply", "skip"
NC, ND, NR, IT = OrderNotCancellable, OrderNotDelivered, OrderNotRejectable, InvalidOrderTransition
# status:            pending reserved paid confirmed shipped delivered completed cancelled rejected
EXPECTED: dict[str, tuple[object, ...]] = {
    "mark_reserved": (A, S, S, S, S, S, S, S, S),
    "reject": (A, A, NR, NR, NR, NR, NR, S, S),
    "mark_paid_and_confirm": (A, A, A, S, S, S, S, S, S),
    "cancel": (A, A, A, A, NC, NC, NC, S, S),
    "mark_shipped": (IT, IT, IT, A, S, S, S, S, IT),
    "mark_delivered": (IT, IT, IT, A, A, S, S, S, IT),
    "confirm_receipt": (ND, ND, ND, ND, ND, A, S, ND, ND),
    "complete": (ND, ND, ND, ND, ND, A, S, ND, ND),
}
THEN_STATUS = {
    "mark_reserved": "reserved",
    "reject": "rejected",
    "mark_paid_and_confirm": "confirmed",
    "cancel": "cancelled",
    "mark_shipped": "shipped",
    "mark_delivered": "delivered",
    "confirm_receipt": "completed",
    "complete": "completed",
}


def test_transition_table_is_the_documented_one() -> None:
    assert set(TRANSITIONS) == set(EXPECTED) == set(COMMANDS)
    for command, row in EXPECTED.items():
        assert tuple(TRANSITIONS[command][status] for status in STATUSES) == row, command


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("command", list(EXPECTED))
def test_every_command_in_every_status(status: str, command: str) -> None:
    order = placed()
    GIVEN[status](order)
    order.collect_events()
    assert order.status == status
    expected = EXPECTED[command][STATUSES.index(status)]
    if expected == A:
        assert COMMANDS[command](order) is True
        assert order.collect_events()
        assert order.status == THEN_STATUS[command]
    elif expected == S:
        assert COMMANDS[command](order) is False
        assert order.collect_events() == []
        assert order.status == status
    else:
        assert isinstance(expected, type) and issubclass(expected, DomainError)
        with pytest.raises(expected):
            COMMANDS[command](order)
        assert order.collect_events() == []


def names(order: Order) -> list[str]:
    return [type(e).__name__ for e in order.collect_events()]


def test_placing_computes_total_and_payment_deadline() -> None:
    order = Order.place(
        BUYER, LINES + [OrderLine(uuid4(), 1, 100)], ADDRESS, PAYMENT, "CNY", NOW, TIMEOUT
    )
    assert names(order) == ["Placed"]
    assert (order.status, order.total, order.payment_deadline) == ("pending", 9900, NOW + TIMEOUT)
    assert order.is_payment_overdue(NOW + TIMEOUT)
    assert not order.is_payment_overdue(NOW + TIMEOUT - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("lines", "address", "payment"),
    [
        ([], ADDRESS, PAYMENT),
        ([OrderLine(PRODUCT, 0, 100)], ADDRESS, PAYMENT),
        ([OrderLine(PRODUCT, 1, 0)], ADDRESS, PAYMENT),
        ([OrderLine(PRODUCT, 1, 10), OrderLine(PRODUCT, 1, 10)], ADDRESS, PAYMENT),
        (LINES, {**ADDRESS, "city": " "}, PAYMENT),
        (LINES, {**ADDRESS, "planet": "Mars"}, PAYMENT),
        (LINES, ADDRESS, {**PAYMENT, "method": "cash"}),
        (LINES, ADDRESS, {"method": "card", "intent_id": "not-an-id"}),
        (LINES, ADDRESS, {"method": "card"}),
        # A token never goes into an order: its events are relayed to the bus.
        (LINES, ADDRESS, {**PAYMENT, "token": "tok_ok"}),
    ],
)
def test_bad_orders_are_refused(lines, address, payment) -> None:
    with pytest.raises(InvalidInput):
        Order.place(BUYER, lines, address, payment, "CNY", NOW, TIMEOUT)


def test_capture_overtaking_reservation_records_reserved_then_confirmed() -> None:
    order = placed()
    assert order.mark_paid_and_confirm(TOTAL)
    assert names(order) == ["Reserved", "Confirmed"]
    assert order.mark_reserved() is False


def test_a_capture_confirms_in_one_event() -> None:
    """`order.paid` always preceded `order.confirmed` in the same transaction and said
    nothing the latter does not: a capture now records Confirmed alone, paid its total."""
    order = placed()
    order.mark_reserved()
    order.collect_events()
    assert order.mark_paid_and_confirm(TOTAL)
    assert names(order) == ["Confirmed"]
    assert (order.status, order.paid_amount) == ("confirmed", TOTAL)


def test_capture_of_wrong_amount_is_refused() -> None:
    order = placed()
    order.mark_reserved()
    with pytest.raises(PaymentAmountMismatch):
        order.mark_paid_and_confirm(TOTAL - 1)


@pytest.mark.parametrize(
    ("status", "refund_due"),
    [
        ("pending", False),
        ("reserved", False),
        ("paid", True),
        ("confirmed", True),
    ],
)
def test_cancel_says_whether_a_refund_is_due(status: str, refund_due: bool) -> None:
    order = placed()
    GIVEN[status](order)
    order.collect_events()
    order.cancel("buyer")
    [cancelled] = order.collect_events()
    assert cancelled.refund_due is refund_due


def test_delivery_overtaking_pickup_records_shipped_then_delivered() -> None:
    order = placed()
    order.mark_paid_and_confirm(TOTAL)
    order.collect_events()
    order.mark_delivered(SHIPMENT, NOW)
    assert names(order) == ["Shipped", "Delivered"]
    assert order.shipment_id == SHIPMENT
    assert order.is_completion_due(NOW + timedelta(days=7), timedelta(days=7))
    assert not order.is_completion_due(NOW + timedelta(days=6), timedelta(days=7))


def test_only_the_buyer_confirms_receipt() -> None:
    order = placed()
    GIVEN["delivered"](order)
    with pytest.raises(OrderNotFound):
        order.confirm_receipt(uuid4())


def test_error_codes_are_the_api_codes() -> None:
    assert OrderNotCancellable.code == "order_not_cancellable"
    assert OrderNotDelivered.code == "order_not_delivered"
    assert IdempotencyKeyReused.code == "idempotency_key_reused"


def place(
    orders: Orders, key: str | None = "key-1", fingerprint: str = "body-1", buyer: UUID = BUYER
) -> tuple[UUID, bool]:
    return orders.place_order(buyer, LINES, ADDRESS, PAYMENT, key, fingerprint, NOW, TIMEOUT)


def test_same_key_and_body_returns_the_same_order() -> None:
    orders = Orders()
    order_id, created = place(orders)
    assert created
    assert place(orders) == (order_id, False)
    assert orders.get_order(order_id).version == 1


def test_same_key_with_another_body_is_refused() -> None:
    orders = Orders()
    place(orders)
    with pytest.raises(IdempotencyKeyReused):
        place(orders, fingerprint="body-2")


def test_keys_are_per_buyer_and_optional() -> None:
    orders = Orders()
    first, _ = place(orders)
    other, created = place(orders, buyer=uuid4())
    assert created and other != first
    assert place(orders, key=None)[0] != place(orders, key=None)[0]
    with pytest.raises(InvalidInput):
        place(orders, key="k" * 256)


def test_a_whole_order_through_the_application() -> None:
    orders = Orders()
    order_id, _ = place(orders)
    cause = uuid4()
    assert orders.mark_reserved(order_id, caused_by=cause)
    assert orders.mark_paid_and_confirm(order_id, TOTAL, caused_by=cause)
    assert not orders.mark_paid_and_confirm(order_id, TOTAL, caused_by=cause)
    assert orders.mark_shipped(order_id, SHIPMENT)
    assert orders.mark_delivered(order_id, SHIPMENT, NOW)
    assert orders.confirm_receipt(order_id, BUYER)
    assert not orders.complete(order_id)
    order = orders.get_order(order_id, buyer_id=BUYER)
    assert (order.status, order.version) == ("completed", 6)
    events = list(orders.repository.event_store.get(order_id))
    assert all(e.correlation_id == order_id for e in events)
    assert [e.causation_id for e in events[1:3]] == [cause] * 2  # reserved, confirmed


def test_capture_for_a_cancelled_order_is_ignored() -> None:
    orders = Orders()
    order_id, _ = place(orders)
    orders.cancel(order_id, "payment_timeout")
    assert orders.mark_paid_and_confirm(order_id, TOTAL) is False
    order = orders.get_order(order_id)
    assert (order.status, order.reason, order.version) == ("cancelled", "payment_timeout", 2)


def test_buyers_see_and_cancel_only_their_own_orders() -> None:
    orders = Orders()
    order_id, _ = place(orders)
    with pytest.raises(OrderNotFound):
        orders.cancel(order_id, "mine?", by_buyer_id=uuid4())
    with pytest.raises(OrderNotFound):
        orders.get_order(order_id, buyer_id=uuid4())
    with pytest.raises(OrderNotFound):
        orders.get_order(uuid4())
    assert orders.cancel(order_id, "changed my mind", by_buyer_id=BUYER)


def test_cancel_after_shipping_is_refused_through_the_application() -> None:
    orders = Orders()
    order_id, _ = place(orders)
    orders.mark_paid_and_confirm(order_id, TOTAL)
    orders.mark_shipped(order_id, SHIPMENT)
    with pytest.raises(OrderNotCancellable):
        orders.cancel(order_id, "too late", by_buyer_id=BUYER)
    with pytest.raises(OrderNotDelivered):
        orders.confirm_receipt(order_id, BUYER)


def test_the_payment_timer_cancels_only_what_the_order_says_is_overdue() -> None:
    """The timer finds orders in the read model, which may lag a payment (it did, after
    PostgreSQL restarted): a confirmed order is not cancelled for a payment timeout."""
    orders = Orders()
    paid, _ = place(orders)
    orders.mark_paid_and_confirm(paid, TOTAL)
    unpaid, _ = place(orders, key="key-2")
    late = NOW + TIMEOUT + timedelta(seconds=1)
    assert orders.cancel_overdue_payment(paid, late) is False
    assert orders.get_order(paid).status == "confirmed"
    assert orders.cancel_overdue_payment(unpaid, NOW + TIMEOUT - timedelta(seconds=1)) is False
    assert orders.cancel_overdue_payment(unpaid, late) is True
    order = orders.get_order(unpaid)
    assert (order.status, order.reason) == ("cancelled", "payment_timeout")
