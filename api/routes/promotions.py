"""Promotions: sellers' (on their own products) and admins' (on any), listed by anyone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.discounts import (
    Moment,
    Percent,
    PerUser,
    ScopeIn,
    SellerOrAdmin,
    Uses,
    amount_or_none,
    check_currency,
    owned_scope,
)
from api.errors import error_responses
from api.idempotency import IdempotencyKeyHeader, accept_idempotency_key, fingerprint
from api.money import Amount, amount_of
from api.params import Cursor, Limit
from api.routes.products import Money
from domain.catalog import ProductNotFound
from domain.pricing import PricedProduct, Scope
from domain.promotions import MAX_TIERS, Promotion
from eventmart.contracts.bounds import Category, LineQuantity, ProductName

router = APIRouter(prefix="/v1", tags=["pricing"])


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_quantity: LineQuantity
    percent_off: Percent


class CreatePromotion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ProductName
    kind: Literal["percent_off", "amount_off", "buy_x_get_y", "tiered"]
    percent_off: Percent | None = None
    amount_off: Money | None = Field(None, description="off each unit")
    buy_quantity: LineQuantity | None = None
    free_quantity: LineQuantity | None = None
    tiers: list[TierIn] | None = Field(None, max_length=MAX_TIERS)
    scope: ScopeIn
    starts_at: Moment
    ends_at: Moment
    max_uses: Uses | None = None
    per_user_limit: PerUser | None = None
    stackable: bool = False


class PromotionCreated(BaseModel):
    promotion_id: UUID


class PromotionEnded(BaseModel):
    promotion_id: UUID
    ended_at: datetime | None


class ScopeOut(BaseModel):
    product_ids: list[UUID]
    category: str | None
    seller_id: UUID | None


class PromotionView(BaseModel):
    promotion_id: UUID
    owner_id: UUID
    name: str
    kind: str
    percent_off: int | None
    amount_off: Amount | None
    buy_quantity: int | None
    free_quantity: int | None
    tiers: list[dict[str, int]] | None
    scope: ScopeOut
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    max_uses: int | None
    per_user_limit: int | None
    stackable: bool
    active: bool


class PromotionPage(BaseModel):
    items: list[PromotionView]
    next_cursor: str | None


@router.post(
    "/promotions",
    status_code=201,
    response_model=PromotionCreated,
    responses=error_responses(401, 403, 409, 503),
)
def create_promotion(
    body: CreatePromotion,
    user: SellerOrAdmin,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> PromotionCreated:
    """A promotion on the caller's products (an admin's on any); the field named after the
    kind is required. Overlapping promotions are allowed: the pricing rule combines them.
    With an Idempotency-Key, repeating the same request answers the same promotion."""
    check_currency(services, body.amount_off)
    promotion = services.applications.pricing.create_promotion(
        user.user_id,
        name=body.name,
        kind=body.kind,
        terms={
            "percent_off": body.percent_off,
            "amount_off": amount_or_none(body.amount_off),
            "buy_quantity": body.buy_quantity,
            "free_quantity": body.free_quantity,
            "tiers": [tier.model_dump() for tier in body.tiers or ()],
        },
        scope=owned_scope(services, user, body.scope),
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        max_uses=body.max_uses,
        per_user_limit=body.per_user_limit,
        stackable=body.stackable,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(services.settings.secret_key, body),
    )
    return PromotionCreated(promotion_id=promotion.id)


def _view(promotion: Promotion, currency: str, now: datetime) -> PromotionView:
    terms = promotion.terms
    amount_off = terms.get("amount_off")
    return PromotionView(
        promotion_id=promotion.id,
        owner_id=promotion.owner_id,
        name=promotion.name,
        kind=promotion.kind,
        percent_off=terms.get("percent_off"),
        amount_off=None if amount_off is None else amount_of(amount_off, currency),
        buy_quantity=terms.get("buy_quantity"),
        free_quantity=terms.get("free_quantity"),
        tiers=terms.get("tiers"),
        scope=ScopeOut(**Scope.from_dict(promotion.scope).as_dict()),
        starts_at=promotion.starts_at,
        ends_at=promotion.ends_at,
        ended_at=promotion.ended_at,
        max_uses=promotion.max_uses,
        per_user_limit=promotion.per_user_limit,
        stackable=promotion.stackable,
        active=promotion.is_active(now),
    )


@router.get("/promotions", response_model=PromotionPage, responses=error_responses(503))
def list_promotions(
    services: ServicesDep,
    active: bool | None = None,
    product_id: UUID | None = None,
    category: Annotated[Category | None, Query()] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> PromotionPage:
    """Promotions by start, then id; `product_id` lists those that cover the product (none
    for a product that does not exist: a filter that matches nothing)."""
    pricing, now = services.applications.pricing, datetime.now(UTC)
    if product_id is not None:
        try:
            product = services.applications.catalog.product_to_read(product_id)
        except ProductNotFound:
            return PromotionPage(items=[], next_cursor=None)
        priced = PricedProduct(
            product.id, 1, product.price_amount, product.category, product.seller_id
        )
        found = [
            p
            for p in pricing.promotions_for(product.id, product.category, product.seller_id)
            if Scope.from_dict(p.scope).covers(priced)
        ]
    else:
        found = pricing.all_promotions()
    if category is not None:
        found = [p for p in found if p.scope.get("category") == category]
    if active is not None:
        found = [p for p in found if p.is_active(now) == active]
    found.sort(key=lambda p: (p.starts_at, str(p.id)))
    if cursor is not None:
        after = services.cursors.decode(cursor, "promotions")
        found = [p for p in found if (p.starts_at, str(p.id)) > (after[0], str(after[1]))]
    page = found[:limit]
    more = len(found) > limit
    next_cursor = (
        services.cursors.encode("promotions", (page[-1].starts_at, page[-1].id)) if more else None
    )
    currency = services.settings.currency
    return PromotionPage(items=[_view(p, currency, now) for p in page], next_cursor=next_cursor)


@router.post(
    "/promotions/{promotion_id}/end",
    status_code=202,
    response_model=PromotionEnded,
    dependencies=[Depends(accept_idempotency_key)],
    responses=error_responses(401, 403, 404, 409, 503),
)
def end_promotion(promotion_id: UUID, user: SellerOrAdmin, services: ServicesDep) -> PromotionEnded:
    """Ends the promotion now (its owner or an admin); ending it again changes nothing."""
    pricing = services.applications.pricing
    pricing.end_promotion(promotion_id, user.user_id, user.role == "admin", datetime.now(UTC))
    return PromotionEnded(
        promotion_id=promotion_id, ended_at=pricing.get_promotion(promotion_id).ended_at
    )
