"""Payments' part in the order saga: charge once stock is held, refund or void when the
order is cancelled. The charge goes through the PaymentGateway port."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.orders import Orders
from domain.payments import Payment, Payments, SandboxGateway
from eventmart.contracts import Envelope
from eventmart.settings import Settings
from workers.saga import Context, Participant


def charge_for_order(ctx: Context, event: Envelope) -> None:
    """The order's terms are read from the orders event store: strongly consistent, and
    order.placed is stored before any reservation it caused."""
    order = ctx.reads["orders"].get_order(event.payload["order_id"])
    if order.status in ("cancelled", "rejected"):
        return  # cancelled while stock was being reserved: nothing to charge
    ctx.application.charge_order(
        order.id,
        order.total,
        order.currency,
        order.payment["method"],
        order.payment["token"],
        ctx.adapters["gateway"],
        caused_by=event.event_id,
    )


def refund_or_void(ctx: Context, event: Envelope) -> None:
    ctx.application.cancel_payment(
        event.aggregate_id, ctx.adapters["gateway"], caused_by=event.event_id
    )


def adapters(settings: Settings) -> dict[str, Any]:
    return {"gateway": SandboxGateway()}


def touches(event: Envelope) -> list[UUID]:
    return [Payment.create_id(event.payload["order_id"])]


PARTICIPANT = Participant(
    group="payments-saga",
    topics=["inventory.events", "orders.events"],
    application=Payments,
    reads={"orders": Orders},
    policies={
        "reservation.confirmed": charge_for_order,
        "order.cancelled": refund_or_void,
    },
    adapters=adapters,
    touches=touches,
)
