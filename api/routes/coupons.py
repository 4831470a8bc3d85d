"""Coupons: written by sellers (for their own products) and admins, looked up by shoppers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentUser, ServicesDep
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
from api.idempotency import IdempotencyKeyHeader, fingerprint
from api.routes.products import Money
from eventmart.contracts.bounds import safe_text, safe_text_pattern

router = APIRouter(prefix="/v1", tags=["pricing"])

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


class CouponCreated(BaseModel):
    code: str


class CouponView(BaseModel):
    code: str
    remaining_uses: int
    valid: bool
    reason: str | None = None


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
    check_currency(services, body.amount_off, body.min_order)
    coupon = services.applications.pricing.create_coupon(
        user.user_id,
        body.code,
        percent_off=body.percent_off,
        amount_off=amount_or_none(body.amount_off),
        min_order=amount_or_none(body.min_order),
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
