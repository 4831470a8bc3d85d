"""What every discount (promotion, price rule, coupon) is written with at the API: who may
write one, its bounded percent, uses and moments, its scope (a seller's own products
only), amounts in the shop's currency."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from api.deps import require_role
from api.errors import ApiError
from api.quotes import catalogue_product
from api.routes.products import Money
from api.security import Principal
from domain.promotions import MAX_PER_USER, MAX_SCOPE_PRODUCTS, MAX_USES
from eventmart.contracts.bounds import ZERO_FRACTION, Category

SellerOrAdmin = Annotated[Principal, require_role("seller", "admin")]
Percent = Annotated[StrictInt, Field(ge=1, le=100), ZERO_FRACTION]
Uses = Annotated[StrictInt, Field(ge=1, le=MAX_USES), ZERO_FRACTION]
PerUser = Annotated[StrictInt, Field(ge=1, le=MAX_PER_USER), ZERO_FRACTION]


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


def check_currency(services: Any, *amounts: Money | None) -> None:
    """422 `currency_mismatch` for an amount not in the shop's currency."""
    currency = services.settings.currency
    if any(money is not None and money.currency != currency for money in amounts):
        raise ApiError(422, "currency_mismatch", f"prices are in {currency}")


def amount_or_none(money: Money | None) -> int | None:
    return None if money is None else money.amount
