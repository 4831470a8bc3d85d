"""Pricing's part in the order saga (and its dynamic prices): once an order's stock is held,
lock one use of its coupon and of each promotion with `max_uses` or `per_user_limit` it
took (all or none); redeem them when the order is confirmed, give them back when it is
cancelled or rejected. A refused lock (no use left, overall or for the buyer) is
`coupon_use.refused`, which rejects the order (`coupon_unavailable`, or
`promotion_unavailable` for a promotion) and so releases its stock: the uses and the stock
are held together or not at all. Stock events move `stock_level` rules' prices.

The limits hold whatever the concurrency: every use is an event of the one coupon (or
promotion) aggregate, and a racing save of the same version is refused by the event
store."""

from __future__ import annotations

from uuid import UUID

from domain.coupons import Coupon, CouponUse
from domain.pricing_context import Pricing
from domain.promotions import PricingIndex
from eventmart.contracts import Envelope
from workers.saga import Context, Participant


def lock_coupon(ctx: Context, event: Envelope) -> None:
    coupon = event.payload.get("coupon")
    if coupon is None:
        return  # nothing limited to lock: payments charges at once
    ctx.application.lock_coupon(
        UUID(event.payload["order_id"]),
        coupon.get("code"),
        UUID(coupon["buyer_id"]),
        caused_by=event.event_id,
        promotion_ids=[UUID(str(i)) for i in coupon.get("promotion_ids") or ()],
    )


def redeem_coupon(ctx: Context, event: Envelope) -> None:
    ctx.application.redeem_coupon(event.aggregate_id, caused_by=event.event_id)


def release_for_cancellation(ctx: Context, event: Envelope) -> None:
    ctx.application.release_coupon(event.aggregate_id, "cancelled", caused_by=event.event_id)


def release_for_rejection(ctx: Context, event: Envelope) -> None:
    """A rejected order held stock only if its coupon was refused: nothing to give back
    then; an order rejected for its stock never had a use locked."""
    if ctx.application.find_coupon_use(event.aggregate_id) is not None:
        ctx.application.release_coupon(event.aggregate_id, "rejected", caused_by=event.event_id)


def reprice_for_stock(ctx: Context, event: Envelope) -> None:
    """A stock_level rule's price follows the product's available stock."""
    ctx.application.reprice_for_stock(
        UUID(event.payload["product_id"]), event.payload["available"], caused_by=event.event_id
    )


def touches(event: Envelope) -> list[UUID]:
    """The order's coupon use, and the coupon a hold names (loaded together in a batch);
    for a stock event, the product's pricing index."""
    if event.type.startswith("stock."):
        return [PricingIndex.create_id(f"product:{event.payload['product_id']}")]
    order_id = UUID(event.payload["order_id"])
    coupon = event.payload.get("coupon") or {}
    named = [Coupon.create_id(coupon["code"])] if coupon.get("code") else []
    promotions = [UUID(str(i)) for i in coupon.get("promotion_ids") or ()]
    return [CouponUse.create_id(order_id), *named, *promotions]


PARTICIPANT = Participant(
    group="pricing-saga",
    topics=["inventory.events", "orders.events"],
    application=Pricing,
    policies={
        "reservation.confirmed": lock_coupon,
        "order.confirmed": redeem_coupon,
        "order.cancelled": release_for_cancellation,
        "order.rejected": release_for_rejection,
        **dict.fromkeys(
            ("stock.received", "stock.reserved", "stock.released", "stock.committed"),
            reprice_for_stock,
        ),
    },
    touches=touches,
)
