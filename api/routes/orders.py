"""Orders: place (the saga continues in workers), read, cancel, confirm receipt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import (
    CurrentUser,
    OrdersDb,
    Services,
    ServicesDep,
    require_role,
    retry_concurrent,
)
from api.errors import ApiError, error_responses
from api.idempotency import IdempotencyKeyHeader, accept_idempotency_key, fingerprint
from api.money import Amount, amount_of, money_in_detail
from api.order_events import MAX_STREAMS, OrderAnnouncements, order_stream
from api.params import Cursor, Limit
from api.quotes import price_lines
from api.recommendation_memory import RecentlyOrdered
from api.routes.coupons import AskedCouponCode
from api.routes.quotes import DiscountView
from api.security import Principal
from domain.limits import MAX_ORDER_LINES
from domain.payments import PaymentIntent
from domain.pricing import LineQuote, OrderQuote
from eventmart.contracts.bounds import (
    AddressLine,
    AddressName,
    City,
    CountryCode,
    LineQuantity,
    PaymentToken,
    PostalCode,
)
from projections.order_trace import order_owner
from projections.orders import get_order, list_orders

router = APIRouter(prefix="/v1", tags=["orders"])

Customer = Annotated[Principal, require_role("customer")]
Status = Literal[
    "pending",
    "reserved",
    "paid",
    "confirmed",
    "shipped",
    "delivered",
    "completed",
    "cancelled",
    "rejected",
]
CANCELLED_BY_BUYER = "cancelled_by_buyer"


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: UUID
    quantity: LineQuantity


class ShippingAddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: AddressName
    line1: AddressLine
    city: City
    postal_code: PostalCode
    country: CountryCode


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["card", "alipay", "wechat"]
    token: PaymentToken


class PlaceOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    shipping_address: ShippingAddressIn
    payment: PaymentIn
    coupon_code: AskedCouponCode | None = Field(
        None, description="422 `coupon_invalid` if unknown or ended; case-insensitive"
    )


class OrderAccepted(BaseModel):
    order_id: UUID
    status: Status


class OrderLineView(BaseModel):
    product_id: UUID
    quantity: int
    list_price: Amount
    unit_price: Amount
    discounts: list[DiscountView]
    line_total: Amount


class TimelineEntry(BaseModel):
    event_id: UUID
    type: str
    at: datetime
    detail: dict[str, Any] = Field(description="what the event said; money as {amount, currency}")


class OrderSummary(BaseModel):
    order_id: UUID
    buyer_id: UUID
    status: Status
    reason: str | None
    lines: list[OrderLineView]
    total: Amount
    discount_total: Amount
    coupon_code: str | None
    created_at: datetime
    updated_at: datetime
    payment_deadline: datetime | None
    delivered_at: datetime | None
    shipment_id: UUID | None
    compensations: list[str]


class OrderView(OrderSummary):
    timeline: list[TimelineEntry]


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None


def with_money(order: dict[str, Any]) -> dict[str, Any]:
    """A read-model row as answered: every money field an Amount in the order's currency."""
    currency = order["currency"]
    shaped = {
        **order,
        "total": amount_of(order["total"], currency),
        "discount_total": amount_of(order.get("discount_total") or 0, currency),
        "lines": [
            {
                **line,
                "list_price": amount_of(line.get("list_price", line["unit_price"]), currency),
                "unit_price": amount_of(line["unit_price"], currency),
                "line_total": amount_of(line["line_total"], currency),
                "discounts": [
                    {**discount, "amount": amount_of(discount["amount"], currency)}
                    for discount in line.get("discounts") or ()
                ],
            }
            for line in order["lines"]
        ],
    }
    if "timeline" in order:
        shaped["timeline"] = [
            {**entry, "detail": money_in_detail(entry["detail"], currency)}
            for entry in order["timeline"]
        ]
    return shaped


@router.post(
    "/orders",
    status_code=202,
    response_model=OrderAccepted,
    responses=error_responses(401, 403, 409, 503),
)
def place_order(
    body: PlaceOrder,
    user: Customer,
    services: ServicesDep,
    http: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> OrderAccepted:
    """Price each line now through the pricing context (the quote's function: catalogue
    price, promotions, the coupon), hand the payment token to the payments context (a payment intent: the token goes nowhere else) and store the order, which names
    the intent; reservation, payment and shipping continue in the saga workers."""
    orders, settings = services.applications.orders, services.settings
    request = fingerprint(settings.secret_key, body)
    earlier = orders.placed_with_key(user.user_id, idempotency_key, request)
    if earlier is not None:
        return OrderAccepted(order_id=earlier, status="pending")
    now = datetime.now(UTC)
    quote = price_order(services, body, user.user_id, now)
    order_id = uuid4()
    payment = open_payment_intent(services, order_id, quote.total, body.payment)
    order_id = store_order(
        services, user.user_id, body, quote, payment, order_id, idempotency_key, request, now
    )
    remember_ordered(http, user.user_id, body)
    return OrderAccepted(order_id=order_id, status="pending")


def price_order(services: Services, body: PlaceOrder, buyer_id: UUID, now: datetime) -> OrderQuote:
    """The pricing context's quote of the lines as placed now, the coupon (if any) applied."""
    coupon = (
        None
        if body.coupon_code is None
        else services.applications.pricing.usable_coupon(body.coupon_code, now).terms()
    )
    return price_lines(
        services.applications,
        [(line.product_id, line.quantity) for line in body.lines],
        coupon,
        now,
        buyer_id,
    )


def open_payment_intent(
    services: Services, order_id: UUID, total: int, payment: PaymentIn
) -> dict[str, str]:
    """Hand the token to the payments context; the order carries only the intent's reference."""
    intent = services.payment_intents.open(
        PaymentIntent.open(
            order_id, total, services.settings.currency, payment.method, payment.token
        )
    )
    return intent.reference


def store_order(
    services: Services,
    buyer_id: UUID,
    body: PlaceOrder,
    quote: OrderQuote,
    payment: dict[str, str],
    order_id: UUID,
    idempotency_key: str | None,
    request: str,
    now: datetime,
) -> UUID:
    """Place the order with the quote's lines; a repeated key answers the earlier order."""
    settings = services.settings
    placed, _ = services.applications.orders.place_order(
        buyer_id,
        [priced_line(line) for line in quote.lines],
        body.shipping_address.model_dump(),
        payment,
        idempotency_key=idempotency_key,
        request_fingerprint=request,
        now=now,
        payment_timeout=timedelta(seconds=settings.payment_timeout_seconds),
        currency=settings.currency,
        order_id=order_id,
        coupon_code=quote.coupon_code,  # None unless the coupon took something off
        limited_promotion_ids=quote.limited_promotion_ids,
    )
    return placed


def priced_line(line: LineQuote) -> dict[str, Any]:
    """An order line as the orders context stores it: the quote's figures for it."""
    return {
        "product_id": line.product_id,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "list_price": line.list_price,
        "discounts": [discount.as_dict() for discount in line.discounts],
        "line_total": line.line_total,
    }


def remember_ordered(http: Request, buyer_id: UUID, body: PlaceOrder) -> None:
    """Recommendations of this process leave these products out before the read model knows."""
    recently: RecentlyOrdered = http.app.state.recently_ordered
    recently.add(buyer_id, [line.product_id for line in body.lines])


@router.get(
    "/orders/{order_id}", response_model=OrderView, responses=error_responses(401, 404, 503)
)
def order_detail(
    order_id: UUID, user: CurrentUser, db: OrdersDb, services: ServicesDep
) -> OrderView:
    """The buyer's (or, for admins, any) order with its timeline; others get 404. Right after
    placing, the read model may lag: 503 with Retry-After then."""
    found = get_order(db, str(order_id))
    is_admin = user.role == "admin"
    if found is not None and (is_admin or found["buyer_id"] == user.user_id):
        return OrderView(**with_money(found))
    if found is not None:
        raise ApiError(404, "order_not_found", str(order_id))
    # Raises OrderNotFound (404) if unknown or another buyer's.
    services.applications.orders.get_order(order_id, buyer_id=None if is_admin else user.user_id)
    raise ApiError(
        503,
        "not_yet_visible",
        "the order is placed but the read model has not caught up; retry shortly",
        {"Retry-After": "1"},
    )


EVENT_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the order's timeline as server-sent events (`id:` the event id, "
        "`event:` its type, `data:` `{type, at, detail}`); ends once the order is terminal",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **error_responses(401, 404, 503),
}


@router.get(
    "/orders/{order_id}/events",
    response_class=StreamingResponse,
    responses=EVENT_STREAM_RESPONSES,
)
async def order_events(
    order_id: UUID,
    user: CurrentUser,
    services: ServicesDep,
    http: Request,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=64, description="resume after it")
    ] = None,
) -> StreamingResponse:
    """The buyer's order as it moves (others get 404): each timeline event once, resumable
    with Last-Event-ID, fed by the read model's announcements (api.order_events)."""
    pool = services.read_pool("orders-projection")
    owner = await run_in_threadpool(_owner, pool, str(order_id))
    is_admin = user.role == "admin"
    if owner is not None and not is_admin and owner[0] != user.user_id:
        raise ApiError(404, "order_not_found", str(order_id))
    if owner is None:
        # Placed but not yet projected is streamed (its events follow); unknown is 404.
        await run_in_threadpool(
            services.applications.orders.get_order,
            order_id,
            buyer_id=None if is_admin else user.user_id,
        )
    announcements: OrderAnnouncements = http.app.state.order_announcements
    if announcements.streams >= MAX_STREAMS:
        raise ApiError(
            503, "overloaded", "too many event streams open; retry later", {"Retry-After": "5"}
        )
    return StreamingResponse(
        order_stream(announcements, pool, str(order_id), last_event_id, http.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _owner(pool: Any, order_id: str) -> tuple[Any, str] | None:
    with pool.connection() as conn:
        return order_owner(conn, order_id)


@router.get("/orders", response_model=OrderPage, responses=error_responses(401, 503))
def my_orders(
    user: CurrentUser,
    db: OrdersDb,
    services: ServicesDep,
    status: Status | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> OrderPage:
    """The caller's own orders, newest first."""
    items, next_cursor = list_orders(
        db,
        str(user.user_id),
        status=status,
        limit=limit,
        cursor=cursor,
        cursors=services.cursors,
    )
    return OrderPage(
        items=[OrderSummary(**with_money(item)) for item in items], next_cursor=next_cursor
    )


@router.post(
    "/orders/{order_id}/cancel",
    status_code=202,
    response_model=OrderAccepted,
    dependencies=[Depends(accept_idempotency_key)],
    responses=error_responses(401, 404, 409, 503),
)
def cancel_order(order_id: UUID, user: CurrentUser, services: ServicesDep) -> OrderAccepted:
    """Cancel before shipping (409 `order_not_cancellable` after); the saga releases stock
    and refunds. Answers the status stored now; once cancelled, again changes nothing."""
    orders = services.applications.orders
    retry_concurrent(lambda: orders.cancel(order_id, CANCELLED_BY_BUYER, by_buyer_id=user.user_id))
    order = orders.get_order(order_id, buyer_id=user.user_id)
    return OrderAccepted.model_validate({"order_id": order_id, "status": order.status})


@router.post(
    "/orders/{order_id}/confirm-receipt",
    status_code=202,
    response_model=OrderAccepted,
    dependencies=[Depends(accept_idempotency_key)],
    responses=error_responses(401, 404, 409, 503),
)
def confirm_receipt(order_id: UUID, user: CurrentUser, services: ServicesDep) -> OrderAccepted:
    """The buyer has the goods: the order completes (409 `order_not_delivered` before);
    once completed, again changes nothing."""
    orders = services.applications.orders
    retry_concurrent(lambda: orders.confirm_receipt(order_id, user.user_id))
    order = orders.get_order(order_id, buyer_id=user.user_id)
    return OrderAccepted.model_validate({"order_id": order_id, "status": order.status})
