"""Pricing's part in the order saga (and its dynamic prices): once an order's stock is held,
lock one use of its coupon and of each promotion with `max_uses` or `per_user_limit` it
took (all or none); redeem them when the order is confirmed, give them back when it is
cancelled or rejected. A refused lock (no use left, overall or for the buyer) is
`coupon_use.refused`, which rejects the order (`coupon_unavailable`, or
`promotion_unavailable` for a promotion) and so releases its stock: the uses and the stock
are held together or not at all. Stock events move `stock_level` rules' prices; a
`time_window` rule's start and end are deadlines its timer records (`price_rule.window_*`);
confirmed orders' units move `demand` rules (`price_rule.demand_changed`).

The limits hold whatever the concurrency: every use is an event of the one coupon (or
promotion) aggregate, and a racing save of the same version is refused by the event
store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from domain.coupons import Coupon, CouponUse
from domain.price_rules import DemandHold, PriceRule
from domain.pricing_context import Pricing
from domain.promotions import PricingIndex
from eventmart.contracts import Envelope
from eventmart.settings import Settings
from workers.deadlines import Deadline
from workers.due import act_on_each
from workers.saga import Context, Participant

MOVE_WINDOWS = "move_price_windows"
MOVE_DEMAND = "move_demand_prices"


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


def note_demand(ctx: Context, event: Envelope) -> None:
    """A new order's units of products a demand rule watches, to count if it is paid."""
    ctx.application.note_demand(
        event.aggregate_id,
        [(UUID(line["product_id"]), line["quantity"]) for line in event.payload["lines"]],
    )


def settle_confirmed(ctx: Context, event: Envelope) -> None:
    """The order is confirmed: its coupon and promotion uses redeemed, its units counted as
    sales by the demand rules watching them."""
    ctx.application.redeem_coupon(event.aggregate_id, caused_by=event.event_id)
    ctx.application.count_demand(event.aggregate_id, ctx.now(), caused_by=event.event_id)


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


def schedule_window(ctx: Context, event: Envelope) -> None:
    """A new time_window rule: taken on, its start (then its end) a deadline of ours."""
    if event.payload["kind"] == "time_window":
        ctx.application.move_window(event.aggregate_id, ctx.now(), caused_by=event.event_id)


def move_windows(ctx: Context) -> int:
    """Windows due to open or close: the rule records the change (the quote, reading the
    clock, has already moved to the new price)."""
    now = ctx.now()
    due = ctx.application.recorder.due_order_ids(MOVE_WINDOWS, now)
    return act_on_each(ctx, due, lambda rule_id: ctx.application.move_window(rule_id, now))


def step_demand_down(ctx: Context) -> int:
    """Demand rules whose oldest counted sale has left the hour: steps recounted."""
    now = ctx.now()
    due = ctx.application.recorder.due_order_ids(MOVE_DEMAND, now)
    return act_on_each(ctx, due, lambda rule_id: ctx.application.reprice_for_demand(rule_id, now))


def deadlines(settings: Settings, aggregate: Any) -> Iterable[Deadline]:
    if not isinstance(aggregate, PriceRule):
        return ()
    if aggregate.kind == "time_window":
        return [Deadline(MOVE_WINDOWS, aggregate.id, aggregate.window_due)]
    if aggregate.kind == "demand":
        return [Deadline(MOVE_DEMAND, aggregate.id, aggregate.demand_due)]
    return ()


def touches(event: Envelope) -> list[UUID]:
    """The order's coupon use, and the coupon a hold names (loaded together in a batch);
    for a stock event, the product's pricing index."""
    if event.type.startswith("stock."):
        return [PricingIndex.create_id(f"product:{event.payload['product_id']}")]
    if event.type == "price_rule.created":
        return [event.aggregate_id]
    if event.type == "order.placed":
        products = {line["product_id"] for line in event.payload["lines"]}
        indexes = [PricingIndex.create_id(f"product:{p}") for p in sorted(products)]
        return [DemandHold.create_id(event.aggregate_id), *indexes]
    order_id = UUID(event.payload["order_id"])
    coupon = event.payload.get("coupon") or {}
    named = [Coupon.create_id(coupon["code"])] if coupon.get("code") else []
    promotions = [UUID(str(i)) for i in coupon.get("promotion_ids") or ()]
    held = [DemandHold.create_id(order_id)] if event.type == "order.confirmed" else []
    return [CouponUse.create_id(order_id), *named, *promotions, *held]


PARTICIPANT = Participant(
    group="pricing-saga",
    topics=["inventory.events", "orders.events", "pricing.events"],
    application=Pricing,
    policies={
        "reservation.confirmed": lock_coupon,
        "order.placed": note_demand,
        "order.confirmed": settle_confirmed,
        "order.cancelled": release_for_cancellation,
        "order.rejected": release_for_rejection,
        **dict.fromkeys(
            ("stock.received", "stock.reserved", "stock.released", "stock.committed"),
            reprice_for_stock,
        ),
        "price_rule.created": schedule_window,
    },
    timers={MOVE_WINDOWS: move_windows, MOVE_DEMAND: step_demand_down},
    touches=touches,
    deadlines=deadlines,
)
