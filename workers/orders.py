"""The orders participant: moves each order through its status machine as inventory,
payments and shipping report, and keeps the saga's deadlines."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from domain.orders import Orders
from eventmart.contracts import Envelope
from workers.due import act_on_each, due_orders
from workers.saga import Context, Participant


def mark_reserved(ctx: Context, event: Envelope) -> None:
    ctx.application.mark_reserved(event.payload["order_id"], caused_by=event.event_id)


def reject(ctx: Context, event: Envelope) -> None:
    ctx.application.reject(
        event.payload["order_id"], event.payload["reason"], caused_by=event.event_id
    )


def reject_for_coupon(ctx: Context, event: Envelope) -> None:
    """No use of the order's coupon (or of a limited promotion) was left: rejected with
    that reason, and so its stock released."""
    reason = event.payload.get("reason") or "coupon_unavailable"
    ctx.application.reject(event.payload["order_id"], reason, caused_by=event.event_id)


def cancel_on_expiry(ctx: Context, event: Envelope) -> None:
    if event.payload["reason"] == "expired":
        ctx.application.cancel(
            event.payload["order_id"], "reservation_expired", caused_by=event.event_id
        )


def confirm_paid(ctx: Context, event: Envelope) -> None:
    ctx.application.mark_paid_and_confirm(
        event.payload["order_id"], event.payload["amount"], caused_by=event.event_id
    )


def cancel_declined(ctx: Context, event: Envelope) -> None:
    ctx.application.cancel(event.payload["order_id"], "payment_declined", caused_by=event.event_id)


def mark_shipped(ctx: Context, event: Envelope) -> None:
    ctx.application.mark_shipped(
        event.payload["order_id"], event.payload["shipment_id"], caused_by=event.event_id
    )


def mark_delivered(ctx: Context, event: Envelope) -> None:
    ctx.application.mark_delivered(
        event.payload["order_id"],
        event.payload["shipment_id"],
        now=event.occurred_at,
        caused_by=event.event_id,
    )


def cancel_unpaid(ctx: Context) -> int:
    """The payment deadline passed (e.g. the gateway never answered): cancel, compensate."""
    overdue = due_orders(ctx, "status IN ('pending', 'reserved') AND payment_deadline < now()")
    return act_on_each(
        ctx,
        overdue,
        lambda order_id: ctx.application.cancel_overdue_payment(order_id, ctx.now()),
        touches=touches_order,
    )


def complete_delivered(ctx: Context) -> int:
    after = timedelta(seconds=ctx.settings.auto_complete_seconds)
    due = due_orders(ctx, "status = 'delivered' AND delivered_at < now() - %s", after)
    return act_on_each(ctx, due, ctx.application.complete, touches=touches_order)


def touches_order(order_id: UUID) -> list[UUID]:
    return [order_id]  # the order aggregate's id is the order's


def touches(event: Envelope) -> list[UUID]:
    return touches_order(UUID(event.payload["order_id"]))


PARTICIPANT = Participant(
    group="orders-saga",
    topics=["inventory.events", "payments.events", "shipping.events", "pricing.events"],
    application=Orders,
    policies={
        "reservation.confirmed": mark_reserved,
        "reservation.failed": reject,
        "reservation.released": cancel_on_expiry,
        "payment.captured": confirm_paid,
        "payment.declined": cancel_declined,
        "shipment.picked_up": mark_shipped,
        "shipment.delivered": mark_delivered,
        "coupon_use.refused": reject_for_coupon,
    },
    timers={"cancel_unpaid": cancel_unpaid, "complete_delivered": complete_delivered},
    touches=touches,
)
