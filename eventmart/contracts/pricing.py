"""Public events of the pricing context, on `pricing.events` (key: the emitting aggregate's id).

Coupon events carry the uses left after the change; `coupon_use.*` events say, per order,
what became of its coupon, and are what the order saga reacts to (`coupon_use.locked`
lets payments charge, `coupon_use.refused` rejects the order with its reason,
`coupon_unavailable` or `promotion_unavailable`). A coupon_use also carries the order's
limited promotions (`max_uses`, `per_user_limit`), whose uses are `promotion.use_*` events.
A price rule's every price change is an event (`price.changed`, with its reason; a time
window's start and end are `price_rule.window_opened` and `price_rule.window_closed`; a
demand rule's recount is `price_rule.demand_changed`).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, StrictInt

from domain.coupons import Coupon, CouponUse
from domain.price_rules import PriceRule
from domain.promotions import MAX_PER_USER, MAX_SCOPE_PRODUCTS, MAX_TIERS, MAX_USES, Promotion
from eventmart.contracts.bounds import (
    ZERO_FRACTION,
    Category,
    LineQuantity,
    MoneyAmount,
    ProductName,
    PromotionIds,
    Reason,
)
from eventmart.contracts.envelope import EventContract, Payload, event_id_for, register

TOPIC = "pricing.events"
PROMOTION_ID = "5d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"
RULE_ID = "6e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b"
SELLER_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
BUYER_ID = "0b6f3d7e-8c2a-4d5e-9f1b-3a4c5d6e7f80"
ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
PRODUCT_ID = "3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b"
CODE = "SPRING10"
COUPON_ID = str(Coupon.create_id(CODE))
USE_ID = str(CouponUse.create_id(UUID(ORDER_ID)))
CAUSE_EVENT_ID = "5b6c7d8e-9f0a-5b1c-8d2e-3f4a5b6c7d8e"

Percent = Annotated[StrictInt, Field(ge=1, le=100), ZERO_FRACTION]
Uses = Annotated[StrictInt, Field(ge=0, le=MAX_USES), ZERO_FRACTION]
CouponCode = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{2,31}$")]


def _example(
    type_: str,
    aggregate_id: str,
    version: int,
    payload: dict[str, Any],
    saga: bool = False,
) -> dict[str, Any]:
    event_id = str(event_id_for(UUID(aggregate_id), version))
    return {
        "event_id": event_id,
        "type": type_,
        "schema_version": 1,
        "aggregate_id": aggregate_id,
        "aggregate_version": version,
        "occurred_at": "2026-12-06T10:30:00+00:00",
        "correlation_id": ORDER_ID if saga else event_id,
        "causation_id": CAUSE_EVENT_ID if saga else None,
        "payload": payload,
    }


class ScopeOut(Payload):
    product_ids: list[UUID] = Field(default_factory=list, max_length=MAX_SCOPE_PRODUCTS)
    category: Category | None = None
    seller_id: UUID | None = None


class Tier(Payload):
    min_quantity: LineQuantity
    percent_off: Percent


class PromotionCreated(Payload):
    promotion_id: UUID
    owner_id: UUID
    name: ProductName
    kind: Literal["percent_off", "amount_off", "buy_x_get_y", "tiered"]
    percent_off: Percent | None = None
    amount_off: MoneyAmount | None = None
    buy_quantity: LineQuantity | None = None
    free_quantity: LineQuantity | None = None
    tiers: list[Tier] | None = Field(default=None, max_length=MAX_TIERS)
    scope: ScopeOut
    starts_at: datetime
    ends_at: datetime
    max_uses: Annotated[StrictInt, Field(ge=1, le=MAX_USES), ZERO_FRACTION] | None = None
    per_user_limit: Annotated[StrictInt, Field(ge=1, le=MAX_PER_USER), ZERO_FRACTION] | None = None
    stackable: bool


class PromotionEnded(Payload):
    promotion_id: UUID
    ended_at: datetime


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


class PromotionUseChanged(Payload):
    """A use of a limited promotion locked, redeemed or released for an order."""

    promotion_id: UUID
    order_id: UUID
    user_id: UUID
    remaining_uses: Uses | None = Field(description="null: no max_uses")
    reason: Reason | None = None


class PriceRuleCreated(Payload):
    rule_id: UUID
    owner_id: UUID
    name: ProductName
    kind: Literal["stock_level", "time_window", "demand"]
    scope: ScopeOut
    params: dict[str, Any]
    floor: MoneyAmount
    ceiling: MoneyAmount


class PriceChanged(Payload):
    rule_id: UUID
    product_id: UUID
    price: MoneyAmount | None = Field(description="null: back to the list price")
    reason: Reason


def _promotion(e: Any) -> dict[str, Any]:
    return {
        "promotion_id": e.originator_id,
        "owner_id": e.owner_id,
        "name": e.name,
        "kind": e.kind,
        **e.terms,
        "scope": e.scope,
        "starts_at": e.starts_at,
        "ends_at": e.ends_at,
        "max_uses": e.max_uses,
        "per_user_limit": e.per_user_limit,
        "stackable": e.stackable,
    }


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


def _promotion_use(e: Any) -> dict[str, Any]:
    remaining = e.remaining_uses
    return {
        "promotion_id": e.originator_id,
        "order_id": e.order_id,
        "user_id": e.user_id,
        "remaining_uses": None if remaining is None else max(remaining, 0),
        "reason": getattr(e, "reason", None),
    }


SCOPE = {"product_ids": [PRODUCT_ID], "category": None, "seller_id": SELLER_ID}
WINDOW = {"starts_at": "2026-12-06T00:00:00+00:00", "ends_at": "2026-12-13T00:00:00+00:00"}

register(
    EventContract(
        type="promotion.created",
        topic=TOPIC,
        schema_version=1,
        payload=PromotionCreated,
        domain_event=Promotion.Created,
        to_payload=_promotion,
        example=_example(
            "promotion.created",
            PROMOTION_ID,
            1,
            {
                "promotion_id": PROMOTION_ID,
                "owner_id": SELLER_ID,
                "name": "Winter sale",
                "kind": "percent_off",
                "percent_off": 20,
                "scope": SCOPE,
                **WINDOW,
                "max_uses": None,
                "per_user_limit": None,
                "stackable": False,
            },
        ),
    )
)

register(
    EventContract(
        type="promotion.ended",
        topic=TOPIC,
        schema_version=1,
        payload=PromotionEnded,
        domain_event=Promotion.Ended,
        to_payload=lambda e: {"promotion_id": e.originator_id, "ended_at": e.ended_at},
        example=_example(
            "promotion.ended",
            PROMOTION_ID,
            2,
            {"promotion_id": PROMOTION_ID, "ended_at": "2026-12-07T00:00:00+00:00"},
        ),
    )
)

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
        example=_example(
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


def _register_saga_events(
    events: list[tuple[str, type, dict[str, Any]]],
    payload: type[Payload],
    to_payload: Any,
    aggregate_id: str,
    common: dict[str, Any],
) -> None:
    """Events of one aggregate in the saga, its versions counted from 2 in the examples."""
    for version, (type_, domain_event, extra) in enumerate(events, start=2):
        register(
            EventContract(
                type=type_,
                topic=TOPIC,
                schema_version=1,
                payload=payload,
                domain_event=domain_event,
                to_payload=to_payload,
                example=_example(type_, aggregate_id, version, {**common, **extra}, saga=True),
            )
        )


_register_saga_events(
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
_register_saga_events(
    [
        ("promotion.use_locked", Promotion.UseLocked, {"remaining_uses": 2}),
        ("promotion.use_redeemed", Promotion.UseRedeemed, {"remaining_uses": 2}),
        (
            "promotion.use_released",
            Promotion.UseReleased,
            {"remaining_uses": 3, "reason": "rejected"},
        ),
    ],
    PromotionUseChanged,
    _promotion_use,
    PROMOTION_ID,
    {"promotion_id": PROMOTION_ID, "order_id": ORDER_ID, "user_id": BUYER_ID},
)
_register_saga_events(
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

register(
    EventContract(
        type="price_rule.created",
        topic=TOPIC,
        schema_version=1,
        payload=PriceRuleCreated,
        domain_event=PriceRule.Created,
        to_payload=lambda e: {
            "rule_id": e.originator_id,
            "owner_id": e.owner_id,
            "name": e.name,
            "kind": e.kind,
            "scope": e.scope,
            "params": e.params,
            "floor": e.floor,
            "ceiling": e.ceiling,
        },
        example=_example(
            "price_rule.created",
            RULE_ID,
            1,
            {
                "rule_id": RULE_ID,
                "owner_id": SELLER_ID,
                "name": "Scarce stock",
                "kind": "stock_level",
                "scope": SCOPE,
                "params": {"thresholds": [{"below_available": 5, "price": 5900}]},
                "floor": 4000,
                "ceiling": 8000,
            },
        ),
    )
)

register(
    EventContract(
        type="price.changed",
        topic=TOPIC,
        schema_version=1,
        payload=PriceChanged,
        domain_event=PriceRule.PriceChanged,
        to_payload=lambda e: {
            "rule_id": e.originator_id,
            "product_id": e.product_id,
            "price": e.price,
            "reason": e.reason,
        },
        example=_example(
            "price.changed",
            RULE_ID,
            2,
            {
                "rule_id": RULE_ID,
                "product_id": PRODUCT_ID,
                "price": 5900,
                "reason": "available stock 4 < 5",
            },
        ),
    )
)


class PriceWindowMoved(Payload):
    """A time_window rule taken on by the pricing-saga, then its window opened and closed."""

    rule_id: UUID
    window: Literal["scheduled", "open", "closed"]
    price: MoneyAmount | None = Field(
        None, description="open: the price in force until the window ends; else null"
    )


def _window_moved(window: str, e: Any) -> dict[str, Any]:
    return {"rule_id": e.originator_id, "window": window, "price": getattr(e, "price", None)}


WINDOW_EVENTS: list[tuple[str, type, str, int | None]] = [
    ("price_rule.window_scheduled", PriceRule.WindowScheduled, "scheduled", None),
    ("price_rule.window_opened", PriceRule.WindowOpened, "open", 3900),
    ("price_rule.window_closed", PriceRule.WindowClosed, "closed", None),
]
for version, (type_, domain_event, window, price) in enumerate(WINDOW_EVENTS, start=2):
    register(
        EventContract(
            type=type_,
            topic=TOPIC,
            schema_version=1,
            payload=PriceWindowMoved,
            domain_event=domain_event,
            to_payload=partial(_window_moved, window),
            example=_example(
                type_, RULE_ID, version, {"rule_id": RULE_ID, "window": window, "price": price}
            ),
        )
    )


class DemandChanged(Payload):
    """A demand rule recounted a product's sales of the last hour: its price is the list
    price raised by `percent` (steps x step_percent), within the rule's floor and ceiling."""

    rule_id: UUID
    product_id: UUID
    units_last_hour: Annotated[StrictInt, Field(ge=0, le=MAX_USES), ZERO_FRACTION]
    steps: Annotated[StrictInt, Field(ge=0, le=MAX_USES), ZERO_FRACTION]


register(
    EventContract(
        type="price_rule.demand_changed",
        topic=TOPIC,
        schema_version=1,
        payload=DemandChanged,
        domain_event=PriceRule.DemandChanged,
        to_payload=lambda e: {
            "rule_id": e.originator_id,
            "product_id": e.product_id,
            "units_last_hour": min(e.units_last_hour, MAX_USES),
            "steps": min(e.steps, MAX_USES),
        },
        example=_example(
            "price_rule.demand_changed",
            RULE_ID,
            3,
            {"rule_id": RULE_ID, "product_id": PRODUCT_ID, "units_last_hour": 12, "steps": 2},
        ),
    )
)
