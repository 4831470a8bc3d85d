"""Public events of the PriceRule aggregate, on `pricing.events`: a rule created, every
price change (with its reason), a time window's schedule, start and end, and a demand
rule's recount."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, StrictInt

from domain.price_rules import PriceRule
from domain.promotions import MAX_USES
from eventmart.contracts.bounds import ZERO_FRACTION, MoneyAmount, ProductName, Reason
from eventmart.contracts.envelope import EventContract, Payload, register
from eventmart.contracts.pricing import (
    PRODUCT_ID,
    RULE_ID,
    SCOPE,
    SELLER_ID,
    TOPIC,
    ScopeOut,
    example,
)


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
        example=example(
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
        example=example(
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
            example=example(
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
        example=example(
            "price_rule.demand_changed",
            RULE_ID,
            3,
            {"rule_id": RULE_ID, "product_id": PRODUCT_ID, "units_last_hour": 12, "steps": 2},
        ),
    )
)
