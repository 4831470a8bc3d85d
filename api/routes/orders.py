"""Orders: place (the saga continues in workers), read, cancel, confirm receipt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.deps import CurrentUser, OrdersDb, ServicesDep, require_role, retry_concurrent
from api.errors import ApiError
from api.idempotency import IdempotencyKeyHeader, accept_idempotency_key, fingerprint
from api.security import Principal
from domain.catalog import ProductNotFound
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
    quantity: StrictInt = Field(gt=0, le=1000)


class ShippingAddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2)


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["card", "alipay", "wechat"]
    token: str = Field(min_length=1, max_length=200)


class PlaceOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[OrderLineIn] = Field(min_length=1, max_length=50)
    shipping_address: ShippingAddressIn
    payment: PaymentIn


class OrderAccepted(BaseModel):
    order_id: UUID
    status: Status


class OrderLineView(BaseModel):
    product_id: UUID
    quantity: int
    unit_price: int
    line_total: int


class TimelineEntry(BaseModel):
    event_id: UUID
    type: str
    at: datetime
    detail: dict[str, Any]


class OrderSummary(BaseModel):
    order_id: UUID
    buyer_id: UUID
    status: Status
    reason: str | None
    lines: list[OrderLineView]
    total: int
    currency: str
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


@router.post("/orders", status_code=202, response_model=OrderAccepted)
def place_order(
    body: PlaceOrder,
    user: Customer,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> OrderAccepted:
    """Price each line from the catalogue now and store the order; reservation, payment
    and shipping continue in the saga workers."""
    catalog = services.applications.catalog
    lines = []
    for line in body.lines:
        try:
            product = catalog.get_product(line.product_id)
        except ProductNotFound as error:
            raise ApiError(422, "unknown_product", f"no product {line.product_id}") from error
        lines.append(
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price": product.price_amount,
            }
        )
    order_id, _ = services.applications.orders.place_order(
        user.user_id,
        lines,
        body.shipping_address.model_dump(),
        body.payment.model_dump(),
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint(services.settings.secret_key, body),
        now=datetime.now(UTC),
        payment_timeout=timedelta(seconds=services.settings.payment_timeout_seconds),
        currency=services.settings.currency,
    )
    return OrderAccepted(order_id=order_id, status="pending")


@router.get("/orders/{order_id}", response_model=OrderView)
def order_detail(
    order_id: UUID, user: CurrentUser, db: OrdersDb, services: ServicesDep
) -> OrderView:
    """The buyer's (or, for admins, any) order with its timeline; others get 404. Right after
    placing, the read model may lag: 503 with Retry-After then."""
    found = get_order(db, str(order_id))
    is_admin = user.role == "admin"
    if found is not None and (is_admin or found["buyer_id"] == user.user_id):
        return OrderView(**found)
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


@router.get("/orders", response_model=OrderPage)
def my_orders(
    user: CurrentUser,
    db: OrdersDb,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> OrderPage:
    """The caller's own orders, newest first."""
    items, next_cursor = list_orders(
        db, str(user.user_id), status=status, limit=limit, cursor=cursor
    )
    return OrderPage(items=[OrderSummary(**item) for item in items], next_cursor=next_cursor)


@router.post(
    "/orders/{order_id}/cancel",
    status_code=202,
    response_model=OrderAccepted,
    dependencies=[Depends(accept_idempotency_key)],
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
)
def confirm_receipt(order_id: UUID, user: CurrentUser, services: ServicesDep) -> OrderAccepted:
    """The buyer has the goods: the order completes (409 `order_not_delivered` before);
    once completed, again changes nothing."""
    orders = services.applications.orders
    retry_concurrent(lambda: orders.confirm_receipt(order_id, user.user_id))
    order = orders.get_order(order_id, buyer_id=user.user_id)
    return OrderAccepted.model_validate({"order_id": order_id, "status": order.status})
