"""Pricing order lines for the API: the catalogue's product, the pricing context's
promotions, price rules and coupon, and the one pricing function (domain.pricing). The
quote route and placement both price here, so a quote is what the order charges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from api.errors import ApiError
from domain.catalog import Product, ProductNotFound
from domain.pricing import CouponTerms, OrderQuote, PricedProduct
from eventmart.wiring import Applications

# How long a quote holds at most; a promotion or coupon ending sooner ends it sooner.
QUOTE_VALID_SECONDS = 60


def catalogue_product(applications: Applications, product_id: UUID) -> Product:
    try:
        return applications.catalog.product_to_read(product_id)
    except ProductNotFound as error:
        raise ApiError(422, "unknown_product", f"no product {product_id}") from error


def coupon_terms(
    applications: Applications, code: str | None, user_id: UUID | None, now: datetime
) -> tuple[CouponTerms | None, str | None]:
    """The coupon to price with (422 `coupon_invalid` if unknown, not begun or ended), and
    why it will not apply to this user (its uses are gone, or theirs are)."""
    if code is None:
        return None, None
    coupon = applications.pricing.usable_coupon(code, now)
    return coupon.terms(), coupon.why_unusable(user_id, now)


def price_lines(
    applications: Applications,
    lines: Sequence[tuple[UUID, int]],
    coupon: CouponTerms | None,
    now: datetime,
    user_id: UUID | None = None,
) -> OrderQuote:
    """(product id, quantity) lines priced as placement prices them (for `user_id`, if
    known: a promotion the user has used up takes nothing)."""
    products = []
    for product_id, quantity in lines:
        product = catalogue_product(applications, product_id)
        products.append(
            PricedProduct(
                product_id=product_id,
                quantity=quantity,
                list_price=product.price_amount,
                category=product.category,
                seller_id=product.seller_id,
            )
        )
    return applications.pricing.quote(products, coupon, now, user_id)


def valid_until(quote: OrderQuote, now: datetime) -> datetime:
    """Now plus QUOTE_VALID_SECONDS, or the end of the first discount to end before that."""
    until = now + timedelta(seconds=QUOTE_VALID_SECONDS)
    return until if quote.holds_until is None else min(until, quote.holds_until)
