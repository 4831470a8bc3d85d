"""Bounded types shared by the public event contracts and the HTTP API's input models.

The figures live in domain/limits.py, which the aggregates check too; here they become
pydantic types, so the same bound is a 422 at the API's door, a refusal in an event
contract, and a `minimum`/`maximum`/`maxLength`/`pattern` in both JSON schemas. Later
contexts (reviews, pricing) build their fields from these rather than from bare `int`/`str`.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BeforeValidator, Field, StrictInt, StringConstraints

from domain.limits import (
    MAX_ADDRESS_LINE_LENGTH,
    MAX_ADDRESS_NAME_LENGTH,
    MAX_CATEGORY_LENGTH,
    MAX_CITY_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_LINE_DISCOUNTS,
    MAX_LINE_QUANTITY,
    MAX_MONEY_AMOUNT,
    MAX_ORDER_LINES,
    MAX_ORDER_TOTAL,
    MAX_PAYMENT_TOKEN_LENGTH,
    MAX_POSTAL_CODE_LENGTH,
    MAX_PRODUCT_NAME_LENGTH,
    MAX_RATING,
    MAX_REASON_LENGTH,
    MAX_REFERENCE_LENGTH,
    MAX_REVIEW_BODY_LENGTH,
    MAX_REVIEW_REPLY_LENGTH,
    MAX_REVIEW_TITLE_LENGTH,
    MAX_SKU_LENGTH,
    MAX_STOCK,
    MAX_STOCK_RECEIPT,
)

# Regular-expression spellings that read the same in pydantic (Rust regex), JSON Schema
# (ECMA-262) and Python's re: C0 and C1 controls and DEL, and the same less tab, line feed
# and carriage return for multi-line texts.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_MULTILINE_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"


def _zero_fraction_to_int(value: Any) -> Any:
    """JSON Schema's "integer" is any number with a zero fraction, 2.0 as well as 2 (draft
    2020-12, section 6.1.1 of the validation vocabulary), and the published schemas say
    "integer"; so 2.0 counts as 2. True, "2" and 2.5 stay refused (StrictInt)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


ZERO_FRACTION = BeforeValidator(_zero_fraction_to_int)
"""After an integer's bounds (before them, pydantic would not publish the bounds in the
JSON schema): an integer as JSON Schema means it, 2 or 2.0."""

MoneyAmount = Annotated[
    StrictInt,
    Field(gt=0, le=MAX_MONEY_AMOUNT, description="minor units, e.g. 1250 = 12.50"),
    ZERO_FRACTION,
]
"""A price or unit price."""

MoneyTotal = Annotated[
    StrictInt, Field(gt=0, le=MAX_ORDER_TOTAL, description="minor units"), ZERO_FRACTION
]
# The limited promotions an order took: at most one per discount of each line.
PromotionIds = Annotated[list[UUID], Field(max_length=MAX_ORDER_LINES * MAX_LINE_DISCOUNTS)]
"""An order's total, a payment or a refund: at most 50 lines x 1,000 units x the top price."""

LineQuantity = Annotated[StrictInt, Field(gt=0, le=MAX_LINE_QUANTITY), ZERO_FRACTION]
"""Units of one product on one order line."""

StockQuantity = Annotated[StrictInt, Field(gt=0, le=MAX_STOCK), ZERO_FRACTION]
"""Units by which a stock changes (received, reserved, committed, released)."""

StockReceipt = Annotated[StrictInt, Field(gt=0, le=MAX_STOCK_RECEIPT), ZERO_FRACTION]
"""Units a seller receives in one request."""

StockLevel = Annotated[StrictInt, Field(ge=0, le=MAX_STOCK), ZERO_FRACTION]
"""Units on hand, reserved or available."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""Three upper-case letters, e.g. CNY."""

CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z]{2}$"), Field(description="ISO 3166 alpha-2")
]


def safe_text_pattern(*, visible: bool, multiline: bool = False) -> str:
    """No control characters; if `visible`, at least one character that is not a blank."""
    control = _MULTILINE_CONTROL if multiline else _CONTROL
    if not visible:
        return f"^[^{control}]*$"
    return f"^[^\\S{control}]*[^\\s{control}][^{control}]*$"


def safe_text(max_length: int, *, min_length: int = 0, multiline: bool = False) -> Any:
    """Constraints for text of at most `max_length` characters without control characters
    (tab, line feed and carriage return allowed if `multiline`); with `min_length` >= 1 it
    must also say something, i.e. hold a character other than blanks. Use it as
    `Annotated[str, safe_text(...)]`."""
    return StringConstraints(
        min_length=min_length,
        max_length=max_length,
        pattern=safe_text_pattern(visible=min_length > 0, multiline=multiline),
    )


Sku = Annotated[str, safe_text(MAX_SKU_LENGTH, min_length=1)]
ProductName = Annotated[str, safe_text(MAX_PRODUCT_NAME_LENGTH, min_length=1)]
Description = Annotated[str, safe_text(MAX_DESCRIPTION_LENGTH, multiline=True)]
Category = Annotated[str, safe_text(MAX_CATEGORY_LENGTH, min_length=1)]
DisplayName = Annotated[str, safe_text(MAX_DISPLAY_NAME_LENGTH, min_length=1)]
AddressName = Annotated[str, safe_text(MAX_ADDRESS_NAME_LENGTH, min_length=1)]
AddressLine = Annotated[str, safe_text(MAX_ADDRESS_LINE_LENGTH, min_length=1)]
City = Annotated[str, safe_text(MAX_CITY_LENGTH, min_length=1)]
PostalCode = Annotated[str, safe_text(MAX_POSTAL_CODE_LENGTH, min_length=1)]
PaymentToken = Annotated[str, safe_text(MAX_PAYMENT_TOKEN_LENGTH, min_length=1)]
Reason = Annotated[str, safe_text(MAX_REASON_LENGTH, min_length=1)]
"""Why an order or a payment ended as it did (machine codes, such as `payment_declined`)."""
Reference = Annotated[str, safe_text(MAX_REFERENCE_LENGTH, min_length=1)]
"""A payment provider's reference of a charge or refund."""

Rating = Annotated[StrictInt, Field(ge=1, le=MAX_RATING), ZERO_FRACTION]
"""Stars, 1 to 5, for a product or for its seller's service."""
ReviewTitle = Annotated[str, safe_text(MAX_REVIEW_TITLE_LENGTH, min_length=1)]
ReviewBody = Annotated[str, safe_text(MAX_REVIEW_BODY_LENGTH, min_length=1, multiline=True)]
ReviewReply = Annotated[str, safe_text(MAX_REVIEW_REPLY_LENGTH, min_length=1, multiline=True)]

_EMAIL_PART = f"[^@\\s{_CONTROL}]+"
EmailAddress = Annotated[
    str,
    StringConstraints(
        min_length=5,
        max_length=MAX_EMAIL_LENGTH,
        pattern=f"^{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}$",
    ),
    Field(description="an e-mail address: local@domain.tld, compared in lower case"),
]
