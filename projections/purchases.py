"""Who received what: the reviews context's own record of verified purchases, kept from
`orders.events` in the reviews database (the `purchases` consumer group), so a review
command never reads another context's tables.

`order.placed` says who bought which products; `order.delivered` or `order.completed` of
that order (later on the same partition: per-order order) makes each of its lines a
verified purchase. Idempotent: every row is keyed, every insert is ON CONFLICT DO NOTHING,
and the group's tracking drops a re-published event anyway.

A refund does not take a purchase back: the buyer received the product, so what they wrote
about it stays a verified review (docs/reviews.md). Orders are refunded only when
cancelled before shipment here, and those never reach `delivered`.
"""

from __future__ import annotations

from typing import Any

import psycopg

from eventmart.contracts import Envelope
from projections.tracking import Handler

GROUP = "purchases"
TOPICS = ["orders.events"]

DDL = """
CREATE TABLE IF NOT EXISTS review_order_lines (
    order_id uuid NOT NULL,
    product_id uuid NOT NULL,
    buyer_id uuid NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE TABLE IF NOT EXISTS verified_purchases (
    buyer_id uuid NOT NULL,
    product_id uuid NOT NULL,
    order_id uuid NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (buyer_id, product_id)
);
"""


def order_placed(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    payload = event.payload
    cursor.execute(
        "INSERT INTO review_order_lines (order_id, product_id, buyer_id) "
        "SELECT %s, product_id, %s FROM unnest(%s::uuid[]) AS product_id ON CONFLICT DO NOTHING",
        (
            payload["order_id"],
            payload["buyer_id"],
            [line["product_id"] for line in payload["lines"]],
        ),
    )


def order_received(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """Delivered, or completed (a completion without a delivery seen counts too)."""
    cursor.execute(
        "INSERT INTO verified_purchases (buyer_id, product_id, order_id, received_at) "
        "SELECT buyer_id, product_id, order_id, %s FROM review_order_lines WHERE order_id = %s "
        "ON CONFLICT DO NOTHING",
        (event.occurred_at, event.payload["order_id"]),
    )


# Nothing else of an order changes who received what: cancellations and refunds happen
# before shipment, so they never meet a received order (see the module's docstring).
HANDLERS: dict[str, Handler] = {
    "order.placed": order_placed,
    "order.delivered": order_received,
    "order.completed": order_received,
}


def has_received(conn: psycopg.Connection[Any], buyer_id: str, product_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM verified_purchases WHERE buyer_id = %s AND product_id = %s",
        (buyer_id, product_id),
    ).fetchone()
    return row is not None
