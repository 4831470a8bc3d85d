"""Shipping's part in the order saga: a shipment for every confirmed order, moved along
by the carrier's tracking updates."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from uuid import UUID

from domain.orders import Orders
from domain.shipping import SandboxCarrier, Shipment, Shipping
from eventmart.contracts import Envelope
from eventmart.settings import Settings
from workers.due import act_on_each, due_orders
from workers.saga import Context, Participant


def create_shipment(ctx: Context, event: Envelope) -> None:
    order = ctx.reads["orders"].get_order(event.aggregate_id)
    ctx.application.create_shipment(
        order.id, order.shipping_address, now=ctx.now(), caused_by=event.event_id
    )


def track_shipments(ctx: Context) -> int:
    """Ask the carrier about parcels still on their way whose last news is at least one
    carrier step old (newer ones cannot have a tracking update due yet). A parcel just asked
    about is left alone for one step: the read model may not show its news for a while, and
    asking again meanwhile is only load."""
    step = timedelta(seconds=ctx.settings.carrier_step_seconds)
    asked: dict[UUID, float] = ctx.memory.setdefault("carrier_asked", {})
    clock = time.monotonic()
    for order_id in [
        order_id for order_id, at in asked.items() if clock - at >= step.total_seconds()
    ]:
        del asked[order_id]
    in_flight = due_orders(
        ctx,
        "status IN ('confirmed', 'shipped') AND updated_at <= now() - %s "
        "AND NOT (order_id = ANY(%s))",
        step,
        list(asked),
    )
    carrier, now = ctx.adapters["carrier"], ctx.now()

    def advance(order_id: UUID) -> bool:
        asked[order_id] = clock
        if ctx.application.find_shipment(order_id) is None:
            return False  # order.confirmed not consumed yet
        return bool(ctx.application.advance(order_id, now, carrier))

    return act_on_each(ctx, in_flight, advance, touches=touches_order)


def adapters(settings: Settings) -> dict[str, Any]:
    return {"carrier": SandboxCarrier(step_seconds=settings.carrier_step_seconds)}


def touches_order(order_id: UUID) -> list[UUID]:
    return [Shipment.create_id(order_id)]


def touches(event: Envelope) -> list[UUID]:
    return touches_order(event.aggregate_id)


PARTICIPANT = Participant(
    group="shipping-saga",
    topics=["orders.events"],
    application=Shipping,
    reads={"orders": Orders},
    policies={"order.confirmed": create_shipment},
    timers={"track_shipments": track_shipments},
    adapters=adapters,
    touches=touches,
)
