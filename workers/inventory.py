"""Inventory's part in the order saga: hold stock for an order (all lines or none),
hand it over on shipment, give it back on cancellation, rejection or expiry."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from uuid import UUID

from domain.inventory import Inventory
from domain.reservations import Reservation
from domain.stock import Stock
from eventmart.contracts import Envelope
from eventmart.settings import Settings
from workers.deadlines import Deadline
from workers.due import act_on_each
from workers.saga import Context, Participant

EXPIRE_RESERVATIONS = "expire_reservations"


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
        coupon=order_coupon(event.payload),
    )


def order_coupon(placed: dict[str, Any]) -> dict[str, Any] | None:
    """The coupon and limited promotions an order was placed with, for the pricing context
    to lock a use of each with the hold (None: nothing to lock, payments charges at once)."""
    code = placed.get("coupon_code")
    promotion_ids = placed.get("limited_promotion_ids") or []
    if code is None and not promotion_ids:
        return None
    return {"code": code, "buyer_id": placed["buyer_id"], "promotion_ids": promotion_ids}


def note_order_paid(ctx: Context, event: Envelope) -> None:
    """The order is confirmed (paid): its hold stops expiring."""
    ctx.application.mark_order_paid(event.aggregate_id, caused_by=event.event_id)


def commit_stock(ctx: Context, event: Envelope) -> None:
    """Units leave the shelf when the parcel does: until shipment the buyer may still cancel."""
    ctx.application.commit_order(event.aggregate_id, caused_by=event.event_id)


def release_for_cancellation(ctx: Context, event: Envelope) -> None:
    ctx.application.release_order(event.aggregate_id, "cancelled", caused_by=event.event_id)


def release_for_rejection(ctx: Context, event: Envelope) -> None:
    ctx.application.release_order(event.aggregate_id, "rejected", caused_by=event.event_id)


def expire_reservations(ctx: Context) -> int:
    """Holds of unpaid orders past their expiry go back on the shelf. Inventory's own
    deadlines find them; the reservation decides, knowing from `order.confirmed` whether
    its order was paid. (The hold outlives the order's payment deadline, by 15 minutes with
    the defaults: inventory would have to lag that long behind a paid order for its hold to
    expire, and then the order is cancelled and refunded, never oversold.)"""
    now = ctx.now()
    overdue = ctx.application.recorder.due_order_ids(EXPIRE_RESERVATIONS, now)
    return act_on_each(
        ctx,
        overdue,
        lambda order_id: ctx.application.expire_reservation(order_id, now),
        touches=touches_order,
    )


def deadlines(settings: Settings, aggregate: Any) -> Iterable[Deadline]:
    if not isinstance(aggregate, Reservation):
        return ()
    return [Deadline(EXPIRE_RESERVATIONS, aggregate.order_id, aggregate.expiry)]


def touches_order(order_id: UUID) -> list[UUID]:
    """The order's reservation (the stocks it holds are loaded if it is settled)."""
    return [Reservation.create_id(order_id)]


def touches(event: Envelope) -> list[UUID]:
    """The order's reservation; for a new order, the stock of each of its products too."""
    stocks = [Stock.create_id(line["product_id"]) for line in event.payload.get("lines", ())]
    return [*touches_order(event.aggregate_id), *stocks]


PARTICIPANT = Participant(
    group="inventory-saga",
    topics=["orders.events"],
    application=Inventory,
    policies={
        "order.placed": reserve_stock,
        "order.confirmed": note_order_paid,
        "order.shipped": commit_stock,
        "order.cancelled": release_for_cancellation,
        "order.rejected": release_for_rejection,
    },
    timers={EXPIRE_RESERVATIONS: expire_reservations},
    touches=touches,
    deadlines=deadlines,
)
