"""Public events of the pricing context, on `pricing.events` (key: the emitting aggregate's id).

Coupon events carry the uses left after the change; `coupon_use.*` events say, per order,
what became of its coupon, and are what the order saga reacts to (`coupon_use.locked`
lets payments charge, `coupon_use.refused` rejects the order with its reason,
`coupon_unavailable` or `promotion_unavailable`). A coupon_use also carries the order's
limited promotions (`max_uses`, `per_user_limit`), whose uses are `promotion.use_*` events.
A price rule's every price change is an event (`price.changed`, with its reason; a time
window's start and end are `price_rule.window_opened` and `price_rule.window_closed`; a
demand rule's recount is `price_rule.demand_changed`).

The events are registered per aggregate: eventmart.contracts.promotions, .coupons and
.price_rules; this module holds what they share (the topic, the examples' ids and scope).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, StrictInt

from domain.promotions import MAX_SCOPE_PRODUCTS, MAX_USES
from eventmart.contracts.bounds import ZERO_FRACTION, Category
from eventmart.contracts.envelope import EventContract, Payload, event_id_for, register

TOPIC = "pricing.events"
PROMOTION_ID = "5d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"
RULE_ID = "6e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b"
SELLER_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
BUYER_ID = "0b6f3d7e-8c2a-4d5e-9f1b-3a4c5d6e7f80"
ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
PRODUCT_ID = "3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b"
CAUSE_EVENT_ID = "5b6c7d8e-9f0a-5b1c-8d2e-3f4a5b6c7d8e"

Percent = Annotated[StrictInt, Field(ge=1, le=100), ZERO_FRACTION]
Uses = Annotated[StrictInt, Field(ge=0, le=MAX_USES), ZERO_FRACTION]


def example(
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


SCOPE = {"product_ids": [PRODUCT_ID], "category": None, "seller_id": SELLER_ID}
WINDOW = {"starts_at": "2026-12-06T00:00:00+00:00", "ends_at": "2026-12-13T00:00:00+00:00"}


def register_saga_events(
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
                example=example(type_, aggregate_id, version, {**common, **extra}, saga=True),
            )
        )
