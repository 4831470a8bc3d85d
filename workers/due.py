"""Deadlines the saga keeps: found in the orders read model, acted on through the
aggregates (which decide whether the deadline still matters)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from domain.errors import NotFound
from domain.inventory import ConcurrentUpdate
from workers.saga import Context


def due_orders(context: Context, where: str, *params: Any, limit: int = 500) -> list[UUID]:
    with context.pool.connection() as conn:
        rows = conn.execute(
            f"SELECT order_id FROM orders_view WHERE {where} ORDER BY updated_at LIMIT {limit}",
            params,
        ).fetchall()
    return [row[0] for row in rows]


def act_on_each(order_ids: list[UUID], command: Callable[[UUID], object]) -> int:
    """Run the command per order; a conflict leaves the order for the next tick, and an order
    the read model knows but the event store does not (a hand-made event) is skipped."""
    done = 0
    for order_id in order_ids:
        try:
            if command(order_id):
                done += 1
        except (ConcurrentUpdate, NotFound):
            continue
    return done
