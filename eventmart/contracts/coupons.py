"""Public events of the Coupon and CouponUse aggregates, on `pricing.events`: a coupon
created and its uses locked, redeemed and released (coupon.*), and per order what became
of its coupon (coupon_use.*, what the order saga reacts to)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, StrictInt

from domain.coupons import Coupon, CouponUse
from domain.promotions import MAX_PER_USER
from eventmart.contracts.bounds import ZERO_FRACTION, MoneyAmount, PromotionIds, Reason
from eventmart.contracts.envelope import EventContract, Payload, register
from eventmart.contracts.pricing import (
    BUYER_ID,
    ORDER_ID,
    PROMOTION_ID,
    SCOPE,
    SELLER_ID,
    TOPIC,
    WINDOW,
    Percent,
    ScopeOut,
    Uses,
    example,
    register_saga_events,
)

CODE = "SPRING10"
COUPON_ID = str(Coupon.create_id(CODE))
USE_ID = str(CouponUse.create_id(UUID(ORDER_ID)))
CouponCode = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{2,31}$")]


class CouponCreated(Payload):
    code: CouponCode
    owner_id: UUID
    percent_off: Percent | None = None
    amount_off: MoneyAmount | None = None
    min_order: Annotated[StrictInt, Field(ge=0, le=10**12), ZERO_FRACTION]
    scope: ScopeOut
    starts_at: datetime
    ends_at: datetime
    total_uses: Uses
    per_user_uses: Annotated[StrictInt, Field(ge=1, le=MAX_PER_USER), ZERO_FRACTION]


class CouponUseChanged(Payload):
    """A use of a coupon locked, redeemed or released for an order (coupon.*)."""

    code: CouponCode
    order_id: UUID
    user_id: UUID
    remaining_uses: Uses
    reason: Reason | None = None


class OrderCoupon(Payload):
    """What became of an order's coupon and limited promotions (coupon_use.*)."""

    order_id: UUID
    code: CouponCode | None
    reason: Reason | None = None
    promotion_ids: PromotionIds = Field(
        default_factory=list,
        description="coupon_use.locked: the limited promotions a use was locked of",
    )


def _use(e: Any) -> dict[str, Any]:
    return {
        "code": e.code,
        "order_id": e.order_id,
        "user_id": e.user_id,
        "remaining_uses": max(e.remaining_uses, 0),
        "reason": getattr(e, "reason", None),
    }


def _order_coupon(e: Any) -> dict[str, Any]:
    return {
        "order_id": e.order_id,
        "code": e.code,
        "reason": getattr(e, "reason", None),
        "promotion_ids": getattr(e, "promotion_ids", None) or [],
    }


register(
    EventContract(
        type="coupon.created",
        topic=TOPIC,
        schema_version=1,
        payload=CouponCreated,
        domain_event=Coupon.Created,
        to_payload=lambda e: {
            "code": e.code,
            "owner_id": e.owner_id,
            "percent_off": e.percent_off,
            "amount_off": e.amount_off,
            "min_order": e.min_order,
            "scope": e.scope,
            "starts_at": e.starts_at,
            "ends_at": e.ends_at,
            "total_uses": e.total_uses,
            "per_user_uses": e.per_user_uses,
        },
        example=example(
            "coupon.created",
            COUPON_ID,
            1,
            {
                "code": CODE,
                "owner_id": SELLER_ID,
                "percent_off": 10,
                "amount_off": None,
                "min_order": 0,
                "scope": SCOPE,
                **WINDOW,
                "total_uses": 10,
                "per_user_uses": 1,
            },
        ),
    )
)

register_saga_events(
    [
        ("coupon.locked", Coupon.Locked, {"remaining_uses": 9}),
        ("coupon.redeemed", Coupon.Redeemed, {"remaining_uses": 9}),
        ("coupon.released", Coupon.Released, {"remaining_uses": 10, "reason": "cancelled"}),
    ],
    CouponUseChanged,
    _use,
    COUPON_ID,
    {"code": CODE, "order_id": ORDER_ID, "user_id": BUYER_ID},
)

register_saga_events(
    [
        ("coupon_use.locked", CouponUse.Locked, {"promotion_ids": [PROMOTION_ID]}),
        ("coupon_use.refused", CouponUse.Refused, {"reason": "coupon_unavailable"}),
        ("coupon_use.redeemed", CouponUse.Redeemed, {}),
        ("coupon_use.released", CouponUse.Released, {"reason": "cancelled"}),
    ],
    OrderCoupon,
    _order_coupon,
    USE_ID,
    {"order_id": ORDER_ID, "code": CODE},
)
