"""The quote anyone may ask for: what units of a product cost now, priced as an order is
placed (per user with a token)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from api.deps import ServicesDep, bearer, get_current_user
from api.errors import error_responses
from api.money import Amount, amount_of
from api.params import text_query
from api.quotes import coupon_terms, price_lines, valid_until
from api.routes.coupons import MAX_ASKED_CODE_LENGTH
from api.security import Principal
from domain.limits import MAX_LINE_QUANTITY

router = APIRouter(prefix="/v1", tags=["pricing"])


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
