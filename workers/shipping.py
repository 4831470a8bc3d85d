"""Shipping's part in the order saga: where each order goes (kept from `order.placed`), a
shipment for every confirmed order, moved along by the carrier's tracking updates."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from uuid import UUID

from domain.shipping import Destination, SandboxCarrier, Shipment, Shipping
from eventmart.contracts import Envelope
from eventmart.settings import Settings
from workers.deadlines import Deadline
from workers.due import act_on_each
from workers.saga import Context, Participant

TRACK_SHIPMENTS = "track_shipments"


def record_destination(ctx: Context, event: Envelope) -> None:
    ctx.application.record_destination(event.aggregate_id, event.payload["shipping_address"])


def create_shipment(ctx: Context, event: Envelope) -> None:
    """order.placed comes before order.confirmed on the order's partition, so its
    destination is known (an order never seen placed is parked: DestinationNotFound)."""
    destination = ctx.application.get_destination(event.aggregate_id)
    ctx.application.create_shipment(
        event.aggregate_id, destination.address, now=ctx.now(), caused_by=event.event_id
    )


def track_shipments(ctx: Context) -> int:
    """Ask the carrier about parcels still on their way whose last news is at least one
    carrier step old (shipping's own deadlines; newer ones cannot have a tracking update due
    yet). A parcel just asked about without news is left alone for one step: asking again
    meanwhile is only load."""
    step = timedelta(seconds=ctx.settings.carrier_step_seconds)
    asked: dict[UUID, float] = ctx.memory.setdefault("carrier_asked", {})
    clock = time.monotonic()
    for order_id in [
        order_id for order_id, at in asked.items() if clock - at >= step.total_seconds()
    ]:
        del asked[order_id]
    carrier, now = ctx.adapters["carrier"], ctx.now()
    in_flight = ctx.application.recorder.due_order_ids(TRACK_SHIPMENTS, now, excluding=asked)

    def advance(order_id: UUID) -> bool:
        asked[order_id] = clock
        return bool(ctx.application.advance(order_id, now, carrier))

    return act_on_each(ctx, in_flight, advance, touches=touches_order)


def deadlines(settings: Settings, aggregate: Any) -> Iterable[Deadline]:
    """A parcel on its way is due for the carrier one step after its last news."""
    if not isinstance(aggregate, Shipment):
        return ()
    step = timedelta(seconds=settings.carrier_step_seconds)
    due = None if aggregate.status == "delivered" else aggregate.modified_on + step
    return [Deadline(TRACK_SHIPMENTS, aggregate.order_id, due)]


def adapters(settings: Settings) -> dict[str, Any]:
    return {"carrier": SandboxCarrier(step_seconds=settings.carrier_step_seconds)}


def touches_order(order_id: UUID) -> list[UUID]:
    return [Shipment.create_id(order_id)]


def touches(event: Envelope) -> list[UUID]:
    return [Destination.create_id(event.aggregate_id), *touches_order(event.aggregate_id)]


PARTICIPANT = Participant(
    group="shipping-saga",
    topics=["orders.events"],
    application=Shipping,
    policies={"order.placed": record_destination, "order.confirmed": create_shipment},
    timers={TRACK_SHIPMENTS: track_shipments},
    adapters=adapters,
    touches=touches,
    deadlines=deadlines,
)
