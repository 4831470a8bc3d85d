"""Inventory's part in the order saga: hold stock for an order (all lines or none),
hand it over on shipment, give it back on cancellation, rejection or expiry."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from domain.inventory import Inventory, Reservation, Stock
from domain.orders import Orders
from eventmart.contracts import Envelope
from workers.due import act_on_each, due_orders
from workers.saga import Context, Participant


def reserve_stock(ctx: Context, event: Envelope) -> None:
    expires_at = ctx.now() + timedelta(seconds=ctx.settings.reservation_ttl_seconds)
    ctx.application.reserve_order(
        event.aggregate_id,
        [
            {"product_id": line["product_id"], "quantity": line["quantity"]}
            for line in event.payload["lines"]
        ],
        expires_at,
        caused_by=event.event_id,
    )


def commit_stock(ctx: Context, event: Envelope) -> None:
    """Units leave the shelf when the parcel does: until shipment the buyer may still cancel."""
    ctx.application.commit_order(event.aggregate_id, caused_by=event.event_id)


def release_for_cancellation(ctx: Context, event: Envelope) -> None:
    ctx.application.release_order(event.aggregate_id, "cancelled", caused_by=event.event_id)


def release_for_rejection(ctx: Context, event: Envelope) -> None:
    ctx.application.release_order(event.aggregate_id, "rejected", caused_by=event.event_id)


def expire_reservations(ctx: Context) -> int:
    """Holds of unpaid orders past their expiry go back on the shelf. The read model finds
    candidates; the orders event store (strongly consistent) has the last word, because a
    lagging read model still says `reserved` for an order already paid — releasing its
    stock then would ship units that were never taken off the shelf."""
    overdue = due_orders(
        ctx, "status IN ('pending', 'reserved') AND reservation_expires_at < now()"
    )

    def release_if_unpaid(order_id: UUID) -> object:
        if ctx.reads["orders"].get_order(order_id).status not in ("pending", "reserved"):
            return False
        return ctx.application.release_order(order_id, "expired")

    return act_on_each(ctx, overdue, release_if_unpaid)


def touches(event: Envelope) -> list[UUID]:
    """The order's reservation; for a new order, the stock of each of its products too."""
    stocks = [Stock.create_id(line["product_id"]) for line in event.payload.get("lines", ())]
    return [Reservation.create_id(event.aggregate_id), *stocks]


PARTICIPANT = Participant(
    group="inventory-saga",
    topics=["orders.events"],
    application=Inventory,
    reads={"orders": Orders},
    policies={
        "order.placed": reserve_stock,
        "order.shipped": commit_stock,
        "order.cancelled": release_for_cancellation,
        "order.rejected": release_for_rejection,
    },
    timers={"expire_reservations": expire_reservations},
    touches=touches,
)
