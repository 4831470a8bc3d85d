"""Public events of the orders context, on `orders.events` (key: order id).

Every event after `order.placed` names its cause: correlation_id is the order id,
causation_id the consumed event that led to it.

`order.placed` v2 names the order's payment intent (kept by the payments context) where
v1 carried the buyer's payment token; v1 events stay on the topic forever and are upcast
on read, their token dropped. v3 carries the pricing of each line (`list_price`,
`discounts`, `line_total`), the order's `discount_total` and its `coupon_code`; v2 events
are upcast to lines at their unit price with no discount and no coupon.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, StrictInt, StringConstraints

from domain.limits import (
    MAX_DISCOUNT_LABEL_LENGTH,
    MAX_LINE_DISCOUNTS,
    MAX_ORDER_LINES,
    MAX_ORDER_TOTAL,
)
from domain.order import Order
from domain.order_lines import OrderLine
from eventmart.contracts.bounds import (
    ZERO_FRACTION,
    CountryCode,
    CurrencyCode,
    LineQuantity,
    MoneyAmount,
    MoneyTotal,
    PromotionIds,
    Reason,
)
from eventmart.contracts.envelope import EventContract, Payload, event_id_for, register
from eventmart.contracts.sealed import (
    SealedAddressLine,
    SealedAddressName,
    SealedCity,
    SealedPostalCode,
    same_payload,
)

TOPIC = "orders.events"
ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
BUYER_ID = "0b6f3d7e-8c2a-4d5e-9f1b-3a4c5d6e7f80"
PRODUCT_ID = "3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b"
SHIPMENT_ID = "c2d3e4f5-a6b7-5c8d-9e0f-1a2b3c4d5e6f"
CAUSE_EVENT_ID = "5b6c7d8e-9f0a-5b1c-8d2e-3f4a5b6c7d8e"


INTENT_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
PROMOTION_ID = "5d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"
CouponCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]{2,31}$")]
DiscountLabel = Annotated[str, StringConstraints(max_length=MAX_DISCOUNT_LABEL_LENGTH)]


def _example(
    type_: str, version: int, payload: dict[str, Any], schema_version: int = 1
) -> dict[str, Any]:
    return {
        "event_id": str(event_id_for(UUID(ORDER_ID), version)),
        "type": type_,
        "schema_version": schema_version,
        "aggregate_id": ORDER_ID,
        "aggregate_version": version,
        "occurred_at": "2026-11-25T10:30:00+00:00",
        "correlation_id": ORDER_ID,
        "causation_id": None if version == 1 else CAUSE_EVENT_ID,
        "payload": {"order_id": ORDER_ID, **payload},
    }


class LineDiscount(Payload):
    kind: Literal["percent_off", "amount_off", "buy_x_get_y", "tiered", "coupon"]
    promotion_id: UUID | None = None
    coupon_code: CouponCode | None = None
    amount: MoneyTotal
    label: DiscountLabel


class PlacedLine(Payload):
    product_id: UUID
    quantity: LineQuantity
    unit_price: MoneyAmount = Field(description="line_total / quantity, rounded down")
    list_price: MoneyAmount
    discounts: list[LineDiscount] = Field(max_length=MAX_LINE_DISCOUNTS)
    line_total: MoneyTotal


class ShippingAddress(Payload):
    """Since order.placed v4 and shipment.created v2 every line but the country may be
    sealed under the buyer's key (eventmart.contracts.sealed)."""

    name: SealedAddressName
    line1: SealedAddressLine
    city: SealedCity
    postal_code: SealedPostalCode
    country: CountryCode


class PaymentReference(Payload):
    """How the buyer pays, and the payments context's intent that holds the rest."""

    method: Literal["card", "alipay", "wechat"]
    intent_id: UUID | None = Field(
        description="the payment intent; null on orders placed before intents (v1)"
    )


class OrderPlaced(Payload):
    order_id: UUID
    buyer_id: UUID
    lines: list[PlacedLine] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    total: MoneyTotal
    currency: CurrencyCode
    shipping_address: ShippingAddress
    payment: PaymentReference
    payment_deadline: datetime
    discount_total: Annotated[StrictInt, Field(ge=0, le=MAX_ORDER_TOTAL), ZERO_FRACTION]
    coupon_code: CouponCode | None
    limited_promotion_ids: PromotionIds = Field(
        default_factory=list,
        description="the promotions taken that have max_uses or per_user_limit: the saga "
        "locks one use of each with the stock (absent before limits were enforced)",
    )


def placed_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 carried {method, token}: keep the method, drop the token, no intent known."""
    payment = payload.get("payment")
    method = payment.get("method") if isinstance(payment, dict) else None
    return {**payload, "payment": {"method": method, "intent_id": None}}


def placed_v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    """Before the pricing context every line cost its unit price: no discount, no coupon."""
    lines = [
        {
            **line,
            "list_price": line.get("unit_price"),
            "discounts": [],
            "line_total": line.get("quantity", 0) * line.get("unit_price", 0),
        }
        for line in payload.get("lines") or ()
        if isinstance(line, dict)
    ]
    return {**payload, "lines": lines, "discount_total": 0, "coupon_code": None}


def _placed_lines(lines: list[Any]) -> list[dict[str, Any]]:
    """The stored lines as v3 says them (a line stored before pricing had none)."""
    return [OrderLine.coerce(line).as_dict() for line in lines]


def _payment_reference(payment: dict[str, Any]) -> dict[str, Any]:
    """The stored order's payment as the bus may see it: an order stored before intents
    holds {method, token}, and the token is left behind."""
    return {"method": payment["method"], "intent_id": payment.get("intent_id")}


class OrderReserved(Payload):
    order_id: UUID


class OrderPaid(Payload):
    order_id: UUID
    amount: MoneyTotal


class OrderConfirmed(Payload):
    order_id: UUID
    total: MoneyTotal


class OrderShipped(Payload):
    order_id: UUID
    shipment_id: UUID


class OrderDelivered(Payload):
    order_id: UUID
    shipment_id: UUID | None = None
    delivered_at: datetime


class OrderCompleted(Payload):
    order_id: UUID
    automatic: bool


class OrderCancelled(Payload):
    order_id: UUID
    reason: Reason
    refund_due: bool


class OrderRejected(Payload):
    order_id: UUID
    reason: Reason


register(
    EventContract(
        type="order.placed",
        topic=TOPIC,
        schema_version=4,
        payload=OrderPlaced,
        domain_event=Order.Placed,
        to_payload=lambda e: {
            "order_id": e.order_id,
            "buyer_id": e.buyer_id,
            "lines": _placed_lines(e.lines),
            "total": e.total,
            "currency": e.currency,
            "shipping_address": e.shipping_address,
            "payment": _payment_reference(e.payment),
            "payment_deadline": e.payment_deadline,
            "discount_total": getattr(e, "discount_total", 0),
            "coupon_code": getattr(e, "coupon_code", None),
            "limited_promotion_ids": getattr(e, "limited_promotion_ids", None) or [],
        },
        upcasters={1: placed_v1_to_v2, 2: placed_v2_to_v3, 3: same_payload},
        personal=("shipping_address",),
        example=_example(
            "order.placed",
            1,
            {
                "buyer_id": BUYER_ID,
                "lines": [
                    {
                        "product_id": PRODUCT_ID,
                        "quantity": 2,
                        "unit_price": 3920,
                        "list_price": 4900,
                        "discounts": [
                            {
                                "kind": "percent_off",
                                "promotion_id": PROMOTION_ID,
                                "coupon_code": None,
                                "amount": 1960,
                                "label": "Winter sale: 20% off",
                            }
                        ],
                        "line_total": 7840,
                    }
                ],
                "total": 7840,
                "currency": "CNY",
                "shipping_address": {
                    "name": "Ada",
                    "line1": "1 Analytical Way",
                    "city": "Shanghai",
                    "postal_code": "200000",
                    "country": "CN",
                },
                "payment": {"method": "card", "intent_id": INTENT_ID},
                "payment_deadline": "2026-11-25T10:45:00+00:00",
                "discount_total": 1960,
                "coupon_code": None,
                "limited_promotion_ids": [PROMOTION_ID],
            },
            schema_version=3,
        ),
    )
)

register(
    EventContract(
        type="order.reserved",
        topic=TOPIC,
        schema_version=1,
        payload=OrderReserved,
        domain_event=Order.Reserved,
        to_payload=lambda e: {"order_id": e.order_id},
        example=_example("order.reserved", 2, {}),
    )
)

register(
    EventContract(
        type="order.paid",
        topic=TOPIC,
        schema_version=1,
        payload=OrderPaid,
        domain_event=Order.Paid,
        to_payload=lambda e: {"order_id": e.order_id, "amount": e.amount},
        example=_example("order.paid", 3, {"amount": 9800}),
    )
)

register(
    EventContract(
        type="order.confirmed",
        topic=TOPIC,
        schema_version=1,
        payload=OrderConfirmed,
        domain_event=Order.Confirmed,
        to_payload=lambda e: {"order_id": e.order_id, "total": e.total},
        example=_example("order.confirmed", 4, {"total": 9800}),
    )
)

register(
    EventContract(
        type="order.shipped",
        topic=TOPIC,
        schema_version=1,
        payload=OrderShipped,
        domain_event=Order.Shipped,
        to_payload=lambda e: {"order_id": e.order_id, "shipment_id": e.shipment_id},
        example=_example("order.shipped", 5, {"shipment_id": SHIPMENT_ID}),
    )
)

register(
    EventContract(
        type="order.delivered",
        topic=TOPIC,
        schema_version=1,
        payload=OrderDelivered,
        domain_event=Order.Delivered,
        to_payload=lambda e: {
            "order_id": e.order_id,
            "shipment_id": e.shipment_id,
            "delivered_at": e.delivered_at,
        },
        example=_example(
            "order.delivered",
            6,
            {
                "shipment_id": SHIPMENT_ID,
                "delivered_at": "2026-11-26T15:00:00+00:00",
            },
        ),
    )
)

register(
    EventContract(
        type="order.completed",
        topic=TOPIC,
        schema_version=1,
        payload=OrderCompleted,
        domain_event=Order.Completed,
        to_payload=lambda e: {"order_id": e.order_id, "automatic": e.automatic},
        example=_example("order.completed", 7, {"automatic": False}),
    )
)

register(
    EventContract(
        type="order.cancelled",
        topic=TOPIC,
        schema_version=1,
        payload=OrderCancelled,
        domain_event=Order.Cancelled,
        to_payload=lambda e: {
            "order_id": e.order_id,
            "reason": e.reason,
            "refund_due": e.refund_due,
        },
        example=_example("order.cancelled", 4, {"reason": "payment_declined", "refund_due": False}),
    )
)

register(
    EventContract(
        type="order.rejected",
        topic=TOPIC,
        schema_version=1,
        payload=OrderRejected,
        domain_event=Order.Rejected,
        to_payload=lambda e: {"order_id": e.order_id, "reason": e.reason},
        example=_example("order.rejected", 2, {"reason": "insufficient_stock"}),
    )
)
