"""Pricing: promotions, dynamic price rules and coupons (sellers for their own products,
admins for any), and the quote anyone may ask for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from api.deps import CurrentUser, ServicesDep, bearer, get_current_user, require_role
from api.errors import ApiError, error_responses
from api.idempotency import IdempotencyKeyHeader, accept_idempotency_key, fingerprint
from api.money import Amount, amount_of
from api.params import Cursor, Limit, text_query
from api.quotes import catalogue_product, coupon_terms, price_lines, valid_until
from api.routes.products import Money
from api.security import Principal
from domain.catalog import ProductNotFound
from domain.limits import MAX_LINE_QUANTITY
from domain.pricing import PricedProduct, Scope
from domain.promotions import MAX_PER_USER, MAX_SCOPE_PRODUCTS, MAX_TIERS, MAX_USES, Promotion
from eventmart.contracts.bounds import (
    ZERO_FRACTION,
    Category,
    LineQuantity,
    ProductName,
    safe_text,
    safe_text_pattern,
)

router = APIRouter(prefix="/v1", tags=["pricing"])

SellerOrAdmin = Annotated[Principal, require_role("seller", "admin")]
Percent = Annotated[StrictInt, Field(ge=1, le=100), ZERO_FRACTION]
Uses = Annotated[StrictInt, Field(ge=1, le=MAX_USES), ZERO_FRACTION]
PerUser = Annotated[StrictInt, Field(ge=1, le=MAX_PER_USER), ZERO_FRACTION]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$"
CouponCode = Annotated[str, Field(pattern=CODE_PATTERN, max_length=32)]
# A code a shopper gives (to place an order, a quote, a look-up): any bounded text. One
# that no coupon can have (CODE_PATTERN) is a coupon that does not exist, as API.md
# answers it (`coupon_invalid` at placement, 404 on look-up), not malformed input.
MAX_ASKED_CODE_LENGTH = 255
AskedCouponCode = Annotated[
    str,
    safe_text(MAX_ASKED_CODE_LENGTH, min_length=1),
    Field(description="case-insensitive; a code no coupon has is `coupon_invalid`"),
]
StockCount = Annotated[StrictInt, Field(ge=1, le=10**9), ZERO_FRACTION]


def _date_time_text(value: Any) -> Any:
    """The OpenAPI document says a string (date-time): a number is not read as Unix time."""
    if not isinstance(value, str):
        raise ValueError(  # noqa: TRY004 - pydantic makes a ValueError a 422, not a TypeError
            "must be an ISO 8601 date and time with its zone, such as 2026-12-06T10:00:00Z"
        )
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]


class ScopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_ids: list[UUID] | None = Field(None, max_length=MAX_SCOPE_PRODUCTS)
    category: Category | None = None
    seller_id: UUID | None = None


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


class CreateCoupon(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: CouponCode | None = Field(None, description="made up if not given; case-insensitive")
    percent_off: Percent | None = None
    amount_off: Money | None = Field(None, description="off the order, once")
    min_order: Money | None = None
    scope: ScopeIn | None = None
    starts_at: Moment
    ends_at: Moment
    total_uses: Uses
    per_user_uses: PerUser


class PromotionCreated(BaseModel):
    promotion_id: UUID


class RuleCreated(BaseModel):
    rule_id: UUID


class CouponCreated(BaseModel):
    code: str


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


class CouponView(BaseModel):
    code: str
    remaining_uses: int
    valid: bool
    reason: str | None = None


class DiscountView(BaseModel):
    kind: str
    promotion_id: UUID | None = None
    coupon_code: str | None = None
    amount: Amount
    label: str


class QuoteView(BaseModel):
    product_id: UUID
    quantity: int
    list_price: Amount
    unit_price: Amount
    line_total: Amount
    discounts: list[DiscountView]
    valid_until: datetime
    coupon_refused: str | None = Field(
        None, description="why the coupon asked for takes nothing off here"
    )


async def optional_user(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    """A token makes a quote per-user; without one it is anyone's."""
    if credentials is None:
        return None
    return await get_current_user(services, credentials)


MaybeUser = Annotated[Principal | None, Depends(optional_user)]


def owned_scope(services: Any, user: Principal, scope: ScopeIn | None) -> dict[str, Any]:
    """A seller's scope is their own products (403 for another seller's); an admin's any."""
    scope = scope or ScopeIn()
    fields = scope.model_dump()
    if user.role == "admin":
        return fields
    for product_id in scope.product_ids or ():
        product = catalogue_product(services.applications, product_id)
        if product.seller_id != user.user_id:
            raise ApiError(403, "not_product_owner", f"product {product_id} is another seller's")
    if scope.seller_id not in (None, user.user_id):
        raise ApiError(403, "not_product_owner", "a seller discounts only their own products")
    return {**fields, "seller_id": user.user_id}


def _check_currency(services: Any, *amounts: Money | None) -> None:
    currency = services.settings.currency
    if any(money is not None and money.currency != currency for money in amounts):
        raise ApiError(422, "currency_mismatch", f"prices are in {currency}")


def _amount(money: Money | None) -> int | None:
    return None if money is None else money.amount


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
    _check_currency(services, body.amount_off)
    promotion = services.applications.pricing.create_promotion(
        user.user_id,
        name=body.name,
        kind=body.kind,
        terms={
            "percent_off": body.percent_off,
            "amount_off": _amount(body.amount_off),
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
    _check_currency(
        services, body.floor, body.ceiling, p.price, *(t.price for t in p.thresholds or ())
    )
    params: dict[str, Any] = {
        "thresholds": [
            {"below_available": t.below_available, "price": t.price.amount}
            for t in p.thresholds or ()
        ],
        "starts_at": p.starts_at,
        "ends_at": p.ends_at,
        "price": _amount(p.price),
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


@router.post(
    "/coupons",
    status_code=201,
    response_model=CouponCreated,
    responses=error_responses(401, 403, 409, 503),
)
def create_coupon(
    body: CreateCoupon,
    user: SellerOrAdmin,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> CouponCreated:
    """Exactly one of percent_off and amount_off; 409 `coupon_code_taken`. With an
    Idempotency-Key, repeating the same request answers the same code (not 409)."""
    _check_currency(services, body.amount_off, body.min_order)
    coupon = services.applications.pricing.create_coupon(
        user.user_id,
        body.code,
        percent_off=body.percent_off,
        amount_off=_amount(body.amount_off),
        min_order=_amount(body.min_order),
        scope=owned_scope(services, user, body.scope),
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        total_uses=body.total_uses,
        per_user_uses=body.per_user_uses,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(services.settings.secret_key, body),
    )
    return CouponCreated(code=coupon.code)


@router.get("/coupons/{code}", response_model=CouponView, responses=error_responses(401, 404, 503))
def coupon_detail(
    code: Annotated[
        str,
        Path(
            min_length=1,
            max_length=MAX_ASKED_CODE_LENGTH,
            pattern=safe_text_pattern(visible=True),
            description="case-insensitive; 404 for a code no coupon has",
        ),
    ],
    user: CurrentUser,
    services: ServicesDep,
) -> CouponView:
    """Uses left, and whether the caller may use it now (and why not)."""
    status = services.applications.pricing.coupon_status(code, user.user_id, datetime.now(UTC))
    return CouponView(
        code=status.code,
        remaining_uses=status.remaining_uses,
        valid=status.valid,
        reason=status.reason,
    )


@router.get(
    "/products/{product_id}/price",
    response_model=QuoteView,
    responses=error_responses(401, 404, 503),
    openapi_extra={"security": [{}, {"HTTPBearer": []}]},  # the token is optional
)
def quote(
    product_id: UUID,
    services: ServicesDep,
    user: MaybeUser,
    quantity: Annotated[int, Query(ge=1, le=MAX_LINE_QUANTITY)] = 1,
    coupon_code: Annotated[
        str | None,
        text_query(
            MAX_ASKED_CODE_LENGTH,
            min_length=1,
            description="case-insensitive; 422 `coupon_invalid` for a code no coupon has",
        ),
    ] = None,
) -> QuoteView:
    """What `quantity` units cost now, priced as an order is placed: 422 `coupon_invalid`
    for an unknown or ended coupon; a coupon the caller may no longer use takes nothing."""
    applications, now = services.applications, datetime.now(UTC)
    applications.catalog.product_to_read(product_id)  # 404 product_not_found
    coupon, refused = coupon_terms(
        applications, coupon_code, None if user is None else user.user_id, now
    )
    priced = price_lines(
        applications,
        [(product_id, quantity)],
        None if refused else coupon,
        now,
        None if user is None else user.user_id,
    )
    [line] = priced.lines
    currency = services.settings.currency
    return QuoteView(
        product_id=product_id,
        quantity=quantity,
        list_price=amount_of(line.list_price, currency),
        unit_price=amount_of(line.unit_price, currency),
        line_total=amount_of(line.line_total, currency),
        discounts=[
            DiscountView(
                kind=d.kind,
                promotion_id=d.promotion_id,
                coupon_code=d.coupon_code,
                amount=amount_of(d.amount, currency),
                label=d.label,
            )
            for d in line.discounts
        ],
        valid_until=valid_until(priced, now),
        coupon_refused=refused or priced.coupon_refused,
    )
