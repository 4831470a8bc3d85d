"""Payments' part in the order saga: charge once stock is held, refund or void when the
order is cancelled. The charge goes through the PaymentGateway port, on the terms and with
the token of the order's payment intent, which only this context keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from domain.payments import Payment, PaymentIntentNotFound, Payments, SandboxGateway
from eventmart.contracts import Envelope
from eventmart.database import make_pool
from eventmart.payment_intents import PostgresPaymentIntents
from eventmart.settings import Settings
from workers.saga import Context, Participant


def charge_for_held_stock(ctx: Context, event: Envelope) -> None:
    """Stock held: charge, unless the order has a coupon, whose use must be locked first
    (the charge then follows `coupon_use.locked`)."""
    if event.payload.get("coupon") is None:
        charge_for_order(ctx, event)


def charge_for_order(ctx: Context, event: Envelope) -> None:
    """The intent was stored before the order was, so it is there for every reservation.
    An order cancelled meanwhile had its payment voided first: the charge is then skipped
    (or, if the cancellation comes after, refunded)."""
    order_id = UUID(event.payload["order_id"])
    intent = ctx.adapters["intents"].find(order_id)
    if intent is None:
        raise PaymentIntentNotFound(f"order {order_id} has no payment intent")
    ctx.application.charge_order(intent, ctx.adapters["gateway"], caused_by=event.event_id)


def read_intents_ahead(ctx: Context, events: Sequence[Envelope]) -> None:
    """The intents of the batch's charges, with one query instead of one each."""
    charges = [
        UUID(event.payload["order_id"])
        for event in events
        if event.type == "coupon_use.locked"
        or (event.type == "reservation.confirmed" and event.payload.get("coupon") is None)
    ]
    if len(charges) > 1:
        ctx.adapters["intents"].read_ahead(charges)


def refund_or_void(ctx: Context, event: Envelope) -> None:
    ctx.application.cancel_payment(
        event.aggregate_id, ctx.adapters["gateway"], caused_by=event.event_id
    )


def adapters(settings: Settings) -> dict[str, Any]:
    return {
        "gateway": SandboxGateway(),
        "intents": PostgresPaymentIntents(make_pool(settings.context_dsn("payments"), max_size=2)),
    }


def touches(event: Envelope) -> list[UUID]:
    return [Payment.create_id(event.payload["order_id"])]


PARTICIPANT = Participant(
    group="payments-saga",
    topics=["inventory.events", "orders.events", "pricing.events"],
    application=Payments,
    policies={
        "reservation.confirmed": charge_for_held_stock,
        "coupon_use.locked": charge_for_order,
        "order.cancelled": refund_or_void,
    },
    adapters=adapters,
    touches=touches,
    prepare=read_intents_ahead,
)
