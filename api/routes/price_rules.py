"""Dynamic price rules: a price that follows stock, time or demand, always within its
floor and ceiling (sellers for their own products, admins for any)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.deps import ServicesDep
from api.discounts import (
    Moment,
    Percent,
    ScopeIn,
    SellerOrAdmin,
    amount_or_none,
    check_currency,
    owned_scope,
)
from api.errors import error_responses
from api.idempotency import IdempotencyKeyHeader, fingerprint
from api.routes.products import Money
from eventmart.contracts.bounds import ZERO_FRACTION, LineQuantity, ProductName

router = APIRouter(prefix="/v1", tags=["pricing"])

StockCount = Annotated[StrictInt, Field(ge=1, le=10**9), ZERO_FRACTION]


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    below_available: StockCount
    price: Money


class RuleParams(BaseModel):
    """stock_level: thresholds; time_window: starts_at, ends_at, price; demand: step_percent,
    sales_per_step (units sold in the last hour per step)."""

    model_config = ConfigDict(extra="forbid")

    thresholds: list[ThresholdIn] | None = Field(None, max_length=10)
    starts_at: Moment | None = None
    ends_at: Moment | None = None
    price: Money | None = None
    step_percent: Percent | None = None
    sales_per_step: LineQuantity | None = None


class CreateRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ProductName
    kind: Literal["stock_level", "time_window", "demand"]
    scope: ScopeIn
    params: RuleParams
    floor: Money
    ceiling: Money


class RuleCreated(BaseModel):
    rule_id: UUID


@router.post(
    "/pricing/rules",
    status_code=201,
    response_model=RuleCreated,
    responses=error_responses(401, 403, 409, 503),
)
def create_rule(
    body: CreateRule,
    user: SellerOrAdmin,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> RuleCreated:
    """A dynamic price rule: its price always within floor..ceiling, every change an event.
    With an Idempotency-Key, repeating the same request answers the same rule."""
    p = body.params
    check_currency(
        services, body.floor, body.ceiling, p.price, *(t.price for t in p.thresholds or ())
    )
    params: dict[str, Any] = {
        "thresholds": [
            {"below_available": t.below_available, "price": t.price.amount}
            for t in p.thresholds or ()
        ],
        "starts_at": p.starts_at,
        "ends_at": p.ends_at,
        "price": amount_or_none(p.price),
        "step_percent": p.step_percent,
        "sales_per_step": p.sales_per_step,
    }
    rule = services.applications.pricing.create_rule(
        user.user_id,
        name=body.name,
        kind=body.kind,
        scope=owned_scope(services, user, body.scope),
        params=params,
        floor=body.floor.amount,
        ceiling=body.ceiling.amount,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(services.settings.secret_key, body),
    )
    return RuleCreated(rule_id=rule.id)
