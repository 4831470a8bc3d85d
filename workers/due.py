"""Deadlines the saga keeps, acted on through the aggregates (which decide whether the
deadline still matters). Each participant finds its due orders in its own context's
tables: the orders timers in the orders read model (`due_orders`), inventory and shipping
in their deadline tables (workers.deadlines)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from domain.errors import ConcurrentUpdate, DomainError, NotFound
from workers.saga import Context
from workers.tracking import UnitOfWork, unit_of_work_context

log = logging.getLogger("eventmart.saga")


def due_orders(context: Context, where: str, *params: Any, limit: int = 500) -> list[UUID]:
    """Orders of the orders read model matching `where`: for the orders context's timers."""
    with context.pool.connection() as conn:
        rows = conn.execute(
            f"SELECT order_id FROM orders_view WHERE {where} ORDER BY updated_at LIMIT {limit}",
            params,
        ).fetchall()
    return [row[0] for row in rows]


def act_on_each(
    context: Context,
    order_ids: list[UUID],
    command: Callable[[UUID], object],
    touches: Callable[[UUID], Iterable[UUID]] = lambda order_id: (),
) -> int:
    """Run the command per order, all in one unit of work (one transaction: a busy tick
    is hundreds of orders), the aggregates each order `touches` loaded first with one
    query. If that cannot be saved — a saga event or a buyer changed one of them
    meanwhile — the orders are taken one at a time instead."""
    if len(order_ids) > 1:
        unit = UnitOfWork()
        try:
            application = context.application
            application.repository.prefetch(
                unit,
                [aggregate_id for order_id in order_ids for aggregate_id in touches(order_id)],
                application.mapper,
            )
            with unit_of_work_context(unit):
                done = sum(1 for order_id in order_ids if _attempt(command, order_id))
            if unit.aggregates:
                context.application.save_unit_of_work(unit)
            return done
        except Exception as error:  # noqa: BLE001 - redone one order at a time below
            log.info("%d due orders not saved together (%s); one at a time", len(order_ids), error)
    return sum(1 for order_id in order_ids if _attempt(command, order_id, conflicts_skip=True))


def _attempt(
    command: Callable[[UUID], object], order_id: UUID, *, conflicts_skip: bool = False
) -> bool:
    """An order the aggregate refuses to act on is skipped: the read model that found it
    lags (already shipped, say), or the event store never had it (a hand-made event).
    One by one, a conflict leaves the order for the next tick. Either way the tick goes
    on to the other due orders."""
    try:
        return bool(command(order_id))
    except ConcurrentUpdate:
        if conflicts_skip:
            return False
        raise
    except (NotFound, DomainError) as refusal:
        log.debug("due order %s skipped: %s", order_id, refusal)
        return False
