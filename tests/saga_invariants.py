"""The order saga's invariants, checked after a load test has run (crashes, scaling):
every order terminal, no reservation left open, stock and money conserved, no effect
stored twice. Orders here are one line of one unit, as the load tests place them."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import psycopg

from eventmart.broker import consumer_groups
from eventmart.settings import Settings
from eventmart.wiring import SAGA_PARTICIPANTS, build_applications
from tests.shop import TERMINAL
from tests.support import wait_for_quiet, wait_until

# (order id, product id): what a load test placed
Placed = list[tuple[str, str]]


def events_by_type(
    db: psycopg.Connection[Any], table: str, order_ids: list[str]
) -> Counter[tuple[str, str]]:
    """(order id, event class) -> how many such events the context stored."""
    stored_ids = [uuid.UUID(order_id).hex for order_id in order_ids]  # stored as uuid_hex
    rows = db.execute(
        f"SELECT topic, convert_from(state, 'UTF8')::jsonb -> 'order_id' ->> '_data_' FROM {table} "
        "WHERE convert_from(state, 'UTF8')::jsonb -> 'order_id' ->> '_data_' = ANY(%s)",
        (stored_ids,),
    ).fetchall()
    return Counter((order_id, topic) for topic, order_id in rows)


def open_orders(db: psycopg.Connection[Any], order_ids: list[str]) -> int:
    """How many of these orders the read model does not show terminal (yet)."""
    row = db.execute(
        "SELECT count(*) FROM unnest(%s::uuid[]) AS placed(order_id) "
        "LEFT JOIN orders_view USING (order_id) "
        "WHERE orders_view.status IS NULL OR orders_view.status <> ALL(%s)",
        (order_ids, list(TERMINAL)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def settle(
    settings: Settings,
    db: psycopg.Connection[Any],
    order_ids: list[str],
    *,
    stall_timeout: float = 300,
) -> dict[str, dict[str, Any]]:
    """Wait until every order is terminal and the saga has nothing left to do; returns
    each order's final row (status, total) from the read model. Fails only if no order
    becomes terminal for `stall_timeout` seconds: a slow machine is not a lost order."""
    remaining = [open_orders(db, order_ids)]

    def progressed() -> bool:
        before = remaining[-1]
        remaining.append(open_orders(db, order_ids))
        return remaining[-1] < before

    while remaining[-1]:
        wait_until(
            progressed,
            timeout=stall_timeout,
            interval=1.0,
            message=f"any of {remaining[-1]} open orders (of {len(order_ids)}) to become terminal",
        )
    wait_for_quiet(
        settings,
        {
            group: topics
            for group, topics in consumer_groups().items()
            if group in SAGA_PARTICIPANTS
        },
    )
    rows = db.execute(
        "SELECT order_id::text, status, total FROM orders_view WHERE order_id = ANY(%s::uuid[])",
        (order_ids,),
    ).fetchall()
    return {order_id: {"status": status, "total": total} for order_id, status, total in rows}


def assert_saga_invariants(
    settings: Settings,
    db: psycopg.Connection[Any],
    placed: Placed,
    finals: dict[str, dict[str, Any]],
    stock_per_product: int,
) -> None:
    order_ids = [order_id for order_id, _ in placed]
    statuses = Counter(view["status"] for view in finals.values())
    assert sum(statuses.values()) == len(placed) and set(statuses) <= TERMINAL, statuses

    applications = build_applications(settings, pool_size=4)
    try:
        # Every reservation is committed, released or failed: none is left open.
        for order_id in order_ids:
            reservation = applications.inventory.find_reservation(uuid.UUID(order_id))
            assert reservation is not None and reservation.status in (
                "committed",
                "released",
                "failed",
            ), (order_id, reservation and reservation.status, finals[order_id]["status"])
        # Stock is conserved: what was received is on the shelf or sold, nothing held.
        completed_units = Counter(
            product for order_id, product in placed if finals[order_id]["status"] == "completed"
        )
        for product in {product for _, product in placed}:
            stock = applications.inventory.get_stock(uuid.UUID(product))
            figures = (product, stock.on_hand, stock.reserved, stock.sold, completed_units[product])
            assert stock.reserved == 0, figures
            assert stock.on_hand + stock.sold == stock_per_product, figures
            assert stock.sold == completed_units[product], figures
        # Money is conserved: captured - refunded = totals of orders that went through.
        payments = [
            applications.payments.find_payment(uuid.UUID(order_id)) for order_id in order_ids
        ]
        captured = sum(
            p.amount for p in payments if p is not None and p.status in ("captured", "refunded")
        )
        refunded = sum(p.amount for p in payments if p is not None and p.status == "refunded")
        confirmed_totals = sum(
            view["total"] for view in finals.values() if view["status"] == "completed"
        )
        assert captured - refunded == confirmed_totals, (captured, refunded, confirmed_totals)
    finally:
        for application in applications.all():
            application.close()

    # No effect twice: one charge, one hold, one shipment per order, whatever was redelivered.
    for table in ("payments_events", "inventory_events", "shipping_events"):
        stored = events_by_type(db, table, order_ids)
        assert not stored or max(stored.values()) == 1, (table, stored.most_common(3))
