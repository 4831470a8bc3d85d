"""Inventory scenarios: all-or-nothing reservations, no oversell, idempotent saga steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from domain.catalog import NotProductOwner
from domain.errors import ConcurrentUpdate, InvalidInput
from domain.inventory import Inventory
from domain.reservations import ReservationLine
from domain.stock import InvalidQuantity, Stock, StockNotFound

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=15)
SELLER = uuid4()


def stocked(inventory: Inventory, quantity: int) -> UUID:
    product_id = uuid4()
    inventory.register_product(product_id, SELLER)
    if quantity:
        inventory.receive_stock(product_id, SELLER, quantity, NOW)
    return product_id


def line(product_id: UUID, quantity: int) -> ReservationLine:
    return ReservationLine(product_id, quantity)


def counts(inventory: Inventory, product_id: UUID) -> tuple[int, int, int]:
    stock = inventory.get_stock(product_id)
    return stock.on_hand, stock.reserved, stock.sold


def test_stock_rules_given_registered_when_received_then_on_hand_grows() -> None:
    stock = Stock(product_id=uuid4(), seller_id=SELLER)
    stock.collect_events()
    stock.receive(SELLER, 5, NOW)
    [received] = stock.collect_events()
    assert type(received).__name__ == "Received"
    assert (received.quantity, received.on_hand, stock.available) == (5, 5, 5)
    with pytest.raises(NotProductOwner):
        stock.receive(uuid4(), 5, NOW)
    with pytest.raises(InvalidQuantity):
        stock.receive(SELLER, 0, NOW)


def test_register_is_idempotent_and_receiving_unknown_product_is_not_found() -> None:
    inventory = Inventory()
    product_id = uuid4()
    first = inventory.register_product(product_id, SELLER)
    again = inventory.register_product(product_id, uuid4())
    assert again.id == first.id and again.seller_id == SELLER
    assert inventory.receive_stock(product_id, SELLER, 3, NOW) == 3
    assert inventory.receive_stock(product_id, SELLER, 2, NOW) == 5
    with pytest.raises(StockNotFound) as raised:
        inventory.receive_stock(uuid4(), SELLER, 1, NOW)
    assert raised.value.code == "product_not_found"


def test_reserving_every_line_confirms_and_holds_stock() -> None:
    inventory = Inventory()
    mug, cup = stocked(inventory, 5), stocked(inventory, 3)
    order_id, cause = uuid4(), uuid4()
    reservation = inventory.reserve_order(order_id, [line(mug, 2), line(cup, 3)], EXPIRES, cause)
    assert reservation.status == "confirmed"
    assert reservation.expires_at == EXPIRES
    assert counts(inventory, mug) == (5, 2, 0)
    assert inventory.get_stock(cup).available == 0
    [*_, reserved] = inventory.repository.event_store.get(Stock.create_id(mug))
    assert type(reserved).__name__ == "Reserved"
    assert (reserved.correlation_id, reserved.causation_id) == (order_id, cause)


def test_reservation_is_all_or_nothing() -> None:
    inventory = Inventory()
    mug, cup = stocked(inventory, 5), stocked(inventory, 1)
    reservation = inventory.reserve_order(uuid4(), [line(mug, 2), line(cup, 2)], EXPIRES)
    assert reservation.status == "failed"
    assert (reservation.reason, reservation.failed_product_id) == ("insufficient_stock", cup)
    assert counts(inventory, mug) == (5, 0, 0)
    assert counts(inventory, cup) == (1, 0, 0)


@pytest.mark.parametrize(
    ("lines_of", "reason"),
    [
        (lambda known: [line(uuid4(), 1)], "unknown_product"),
        (lambda known: [], "invalid_lines"),
        (lambda known: [line(known, 0)], "invalid_lines"),
        (lambda known: [{"product_id": "not-a-uuid", "quantity": 1}], "invalid_lines"),
    ],
)
def test_bad_lines_fail_the_reservation_instead_of_raising(lines_of, reason) -> None:
    inventory = Inventory()
    known = stocked(inventory, 5)
    reservation = inventory.reserve_order(uuid4(), lines_of(known), EXPIRES)
    assert (reservation.status, reservation.reason) == ("failed", reason)


def test_duplicate_lines_are_merged_and_payload_dicts_accepted() -> None:
    inventory = Inventory()
    mug = stocked(inventory, 5)
    raw = [{"product_id": str(mug), "quantity": 2}, {"product_id": mug, "quantity": 1}]
    reservation = inventory.reserve_order(uuid4(), raw, EXPIRES)
    assert reservation.lines == [line(mug, 3)]
    assert counts(inventory, mug) == (5, 3, 0)


def test_reserve_is_idempotent() -> None:
    inventory = Inventory()
    mug = stocked(inventory, 5)
    order_id = uuid4()
    first = inventory.reserve_order(order_id, [line(mug, 2)], EXPIRES)
    again = inventory.reserve_order(order_id, [line(mug, 2)], EXPIRES)
    assert again.id == first.id and again.version == first.version
    assert counts(inventory, mug) == (5, 2, 0)


def test_failed_reservation_stays_failed_when_redelivered_after_restock() -> None:
    inventory = Inventory()
    mug = stocked(inventory, 1)
    order_id = uuid4()
    inventory.reserve_order(order_id, [line(mug, 2)], EXPIRES)
    inventory.receive_stock(mug, SELLER, 10, NOW)
    assert inventory.reserve_order(order_id, [line(mug, 2)], EXPIRES).status == "failed"


def test_never_oversells_across_many_orders() -> None:
    inventory = Inventory()
    mug, cup = stocked(inventory, 10), stocked(inventory, 7)
    outcomes = [
        inventory.reserve_order(uuid4(), [line(mug, 1 + n % 3), line(cup, 1)], EXPIRES).status
        for n in range(30)
    ]
    for product_id in (mug, cup):
        on_hand, reserved, _ = counts(inventory, product_id)
        assert 0 <= reserved <= on_hand
    assert "failed" in outcomes
    assert outcomes.count("confirmed") <= 7


def test_stale_stock_save_is_a_concurrent_update_and_stores_nothing() -> None:
    inventory = Inventory()
    mug = stocked(inventory, 1)
    stale = inventory.get_stock(mug)
    inventory.reserve_order(uuid4(), [line(mug, 1)], EXPIRES)
    inventory.find_stock = lambda product_id: stale
    loser = uuid4()
    with pytest.raises(ConcurrentUpdate) as raised:
        inventory.reserve_order(loser, [line(mug, 1)], EXPIRES)
    assert raised.value.code == "concurrent_update"
    assert inventory.find_reservation(loser) is None
    del inventory.find_stock
    assert counts(inventory, mug) == (1, 1, 0)


def test_commit_moves_reserved_to_sold_once() -> None:
    inventory = Inventory()
    mug = stocked(inventory, 5)
    order_id = uuid4()
    inventory.reserve_order(order_id, [line(mug, 2)], EXPIRES)
    committed = inventory.commit_order(order_id)
    assert committed is not None and committed.status == "committed"
    assert counts(inventory, mug) == (3, 0, 2)
    inventory.commit_order(order_id)
    inventory.release_order(order_id, "cancelled")
    assert counts(inventory, mug) == (3, 0, 2)


def test_release_returns_stock_once_and_blocks_commit() -> None:
    inventory = Inventory()
    mug = stocked(inventory, 5)
    order_id = uuid4()
    inventory.reserve_order(order_id, [line(mug, 2)], EXPIRES)
    released = inventory.release_order(order_id, "expired")
    assert released is not None and (released.status, released.reason) == ("released", "expired")
    version = released.version
    inventory.release_order(order_id, "expired")
    inventory.commit_order(order_id)
    reservation = inventory.find_reservation(order_id)
    assert reservation is not None and reservation.version == version
    assert counts(inventory, mug) == (5, 0, 0)


def test_commit_and_release_without_reservation_are_no_ops() -> None:
    inventory = Inventory()
    assert inventory.commit_order(uuid4()) is None
    assert inventory.release_order(uuid4(), "cancelled") is None
    with pytest.raises(InvalidInput):
        inventory.release_order(uuid4(), "bored")


def test_expiry_is_visible_on_confirmed_reservations_only() -> None:
    inventory = Inventory()
    mug = stocked(inventory, 5)
    order_id = uuid4()
    reservation = inventory.reserve_order(order_id, [line(mug, 1)], EXPIRES)
    assert not reservation.is_expired(EXPIRES - timedelta(seconds=1))
    assert reservation.is_expired(EXPIRES)
    released = inventory.release_order(order_id, "expired")
    assert released is not None and not released.is_expired(EXPIRES)
    with pytest.raises(InvalidInput):
        inventory.reserve_order(uuid4(), [line(mug, 1)], datetime(2026, 1, 1))


def test_a_hold_of_a_paid_order_never_expires() -> None:
    """Inventory learns from `order.confirmed` that the order is paid: from then on its own
    store answers whether a hold may expire, with no look at the orders context."""
    inventory = Inventory()
    mug = stocked(inventory, 5)
    unpaid, paid = uuid4(), uuid4()
    for order_id in (unpaid, paid):
        inventory.reserve_order(order_id, [line(mug, 1)], EXPIRES)
    assert inventory.mark_order_paid(paid) and not inventory.mark_order_paid(paid)
    assert inventory.expire_reservation(unpaid, EXPIRES - timedelta(seconds=1)) is False

    assert inventory.expire_reservation(unpaid, EXPIRES) is True
    assert inventory.expire_reservation(paid, EXPIRES + timedelta(days=1)) is False
    assert inventory.expire_reservation(uuid4(), EXPIRES) is False
    assert (inventory.find_reservation(unpaid).status, inventory.find_reservation(paid).status) == (
        "released",
        "confirmed",
    )
    assert inventory.find_reservation(paid).expiry is None
    assert counts(inventory, mug) == (5, 1, 0)
    assert not inventory.mark_order_paid(unpaid)  # released: nothing to mark
