"""Public events of the inventory context, on `inventory.events` (key: stock or reservation id).

Stock events carry the counts after the change, so a projection needs no arithmetic;
reservation events are what the order saga reacts to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from domain.limits import MAX_ORDER_LINES
from domain.reservations import Reservation
from domain.stock import Stock
from eventmart.contracts.bounds import PromotionIds, StockLevel, StockQuantity
from eventmart.contracts.envelope import EventContract, Payload, event_id_for, register

TOPIC = "inventory.events"
ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
PRODUCT_ID = "3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b"
STOCK_ID = str(Stock.create_id(UUID(PRODUCT_ID)))
RESERVATION_ID = str(Reservation.create_id(UUID(ORDER_ID)))
PLACED_EVENT_ID = "4e1c2b3a-9d8e-5f7a-8b6c-1d2e3f4a5b6c"
BUYER_ID = "0b6f3d7e-8c2a-4d5e-9f1b-3a4c5d6e7f80"


def _example(
    type_: str,
    aggregate_id: str,
    version: int,
    payload: dict[str, Any],
    saga: bool = True,
    schema_version: int = 1,
) -> dict[str, Any]:
    event_id = str(event_id_for(UUID(aggregate_id), version))
    return {
        "event_id": event_id,
        "type": type_,
        "schema_version": schema_version,
        "aggregate_id": aggregate_id,
        "aggregate_version": version,
        "occurred_at": "2026-11-25T10:20:00+00:00",
        "correlation_id": ORDER_ID if saga else event_id,
        "causation_id": PLACED_EVENT_ID if saga else None,
        "payload": payload,
    }


class StockCounts(Payload):
    product_id: UUID
    on_hand: StockLevel
    reserved: StockLevel
    available: StockLevel


class StockReceived(StockCounts):
    quantity: StockQuantity


class StockReserved(StockCounts):
    order_id: UUID
    quantity: StockQuantity


class StockCommitted(StockCounts):
    order_id: UUID
    quantity: StockQuantity


class StockReleased(StockCounts):
    order_id: UUID
    quantity: StockQuantity
    reason: Literal["cancelled", "expired", "rejected"]


class ReservedLine(Payload):
    product_id: UUID
    quantity: StockQuantity


class HeldCoupon(Payload):
    """The order's coupon and limited promotions: the pricing context locks one use of
    each for the order (all or none)."""

    code: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]{2,31}$")] | None
    buyer_id: UUID
    promotion_ids: PromotionIds = Field(
        default_factory=list,
        description="promotions with max_uses or per_user_limit the order took",
    )


class ReservationConfirmed(Payload):
    order_id: UUID
    lines: list[ReservedLine] = Field(max_length=MAX_ORDER_LINES)
    expires_at: datetime
    coupon: HeldCoupon | None = Field(
        None,
        description="v2: the order's coupon and limited promotions (null without any); "
        "payments waits for their lock",
    )


def confirmed_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Holds before coupons had none."""
    return {**payload, "coupon": None}


class ReservationFailed(Payload):
    order_id: UUID
    reason: Literal["insufficient_stock", "unknown_product", "invalid_lines"]
    product_id: UUID | None = None


class ReservationCommitted(Payload):
    order_id: UUID


class ReservationReleased(Payload):
    order_id: UUID
    reason: Literal["cancelled", "expired", "rejected"]


def _counts(e: Any) -> dict[str, Any]:
    return {
        "product_id": e.product_id,
        "on_hand": e.on_hand,
        "reserved": e.reserved,
        "available": e.on_hand - e.reserved,
        "quantity": e.quantity,
    }


def _counts_example(on_hand: int, reserved: int, quantity: int, **extra: Any) -> dict[str, Any]:
    return {
        "product_id": PRODUCT_ID,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved,
        "quantity": quantity,
        **extra,
    }


register(
    EventContract(
        type="stock.received",
        topic=TOPIC,
        schema_version=1,
        payload=StockReceived,
        domain_event=Stock.Received,
        to_payload=_counts,
        example=_example("stock.received", STOCK_ID, 2, _counts_example(10, 0, 10), saga=False),
    )
)

register(
    EventContract(
        type="stock.reserved",
        topic=TOPIC,
        schema_version=1,
        payload=StockReserved,
        domain_event=Stock.Reserved,
        to_payload=lambda e: {**_counts(e), "order_id": e.order_id},
        example=_example(
            "stock.reserved", STOCK_ID, 3, _counts_example(10, 2, 2, order_id=ORDER_ID)
        ),
    )
)

register(
    EventContract(
        type="stock.committed",
        topic=TOPIC,
        schema_version=1,
        payload=StockCommitted,
        domain_event=Stock.Committed,
        to_payload=lambda e: {**_counts(e), "order_id": e.order_id},
        example=_example(
            "stock.committed", STOCK_ID, 4, _counts_example(8, 0, 2, order_id=ORDER_ID)
        ),
    )
)

register(
    EventContract(
        type="stock.released",
        topic=TOPIC,
        schema_version=1,
        payload=StockReleased,
        domain_event=Stock.Released,
        to_payload=lambda e: {**_counts(e), "order_id": e.order_id, "reason": e.reason},
        example=_example(
            "stock.released",
            STOCK_ID,
            4,
            _counts_example(10, 0, 2, order_id=ORDER_ID, reason="cancelled"),
        ),
    )
)

register(
    EventContract(
        type="reservation.confirmed",
        topic=TOPIC,
        schema_version=2,
        payload=ReservationConfirmed,
        domain_event=Reservation.Confirmed,
        to_payload=lambda e: {
            "order_id": e.order_id,
            "lines": e.lines,
            "expires_at": e.expires_at,
            "coupon": getattr(e, "coupon", None),
        },
        upcasters={1: confirmed_v1_to_v2},
        example=_example(
            "reservation.confirmed",
            RESERVATION_ID,
            2,
            {
                "order_id": ORDER_ID,
                "lines": [{"product_id": PRODUCT_ID, "quantity": 2}],
                "expires_at": "2026-11-25T10:35:00+00:00",
                "coupon": {"code": "SPRING10", "buyer_id": BUYER_ID, "promotion_ids": []},
            },
            schema_version=2,
        ),
    )
)

register(
    EventContract(
        type="reservation.failed",
        topic=TOPIC,
        schema_version=1,
        payload=ReservationFailed,
        domain_event=Reservation.Failed,
        to_payload=lambda e: {
            "order_id": e.order_id,
            "reason": e.reason,
            "product_id": e.product_id,
        },
        example=_example(
            "reservation.failed",
            RESERVATION_ID,
            2,
            {
                "order_id": ORDER_ID,
                "reason": "insufficient_stock",
                "product_id": PRODUCT_ID,
            },
        ),
    )
)

register(
    EventContract(
        type="reservation.committed",
        topic=TOPIC,
        schema_version=1,
        payload=ReservationCommitted,
        domain_event=Reservation.Committed,
        to_payload=lambda e: {"order_id": e.order_id},
        example=_example("reservation.committed", RESERVATION_ID, 3, {"order_id": ORDER_ID}),
    )
)

register(
    EventContract(
        type="reservation.released",
        topic=TOPIC,
        schema_version=1,
        payload=ReservationReleased,
        domain_event=Reservation.Released,
        to_payload=lambda e: {"order_id": e.order_id, "reason": e.reason},
        example=_example(
            "reservation.released",
            RESERVATION_ID,
            3,
            {
                "order_id": ORDER_ID,
                "reason": "expired",
            },
        ),
    )
)
