"""Public events of the Promotion aggregate, on `pricing.events`: created, ended, and the
uses of a limited promotion locked, redeemed and released for an order."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, StrictInt

from domain.promotions import MAX_PER_USER, MAX_TIERS, MAX_USES, Promotion
from eventmart.contracts.bounds import ZERO_FRACTION, LineQuantity, MoneyAmount, ProductName, Reason
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


class PromotionUseChanged(Payload):
    """A use of a limited promotion locked, redeemed or released for an order."""

    promotion_id: UUID
    order_id: UUID
    user_id: UUID
    remaining_uses: Uses | None = Field(description="null: no max_uses")
    reason: Reason | None = None


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


def _promotion_use(e: Any) -> dict[str, Any]:
    remaining = e.remaining_uses
    return {
        "promotion_id": e.originator_id,
        "order_id": e.order_id,
        "user_id": e.user_id,
        "remaining_uses": None if remaining is None else max(remaining, 0),
        "reason": getattr(e, "reason", None),
    }


register(
    EventContract(
        type="promotion.created",
        topic=TOPIC,
        schema_version=1,
        payload=PromotionCreated,
        domain_event=Promotion.Created,
        to_payload=_promotion,
        example=example(
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
        example=example(
            "promotion.ended",
            PROMOTION_ID,
            2,
            {"promotion_id": PROMOTION_ID, "ended_at": "2026-12-07T00:00:00+00:00"},
        ),
    )
)

register_saga_events(
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
