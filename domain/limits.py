"""The largest numbers and longest texts EventMart stores, and the characters it refuses.

Every value a user can put into an event is bounded here once. The event contracts
(eventmart/contracts/bounds.py) and the HTTP API build their types from these figures, and
the aggregates check them again, so an aggregate never records an event that its public
contract would refuse: such an event could be stored but never published.

Why these maxima (docs/api.md lists them for clients):
- money is integer minor units up to 10^12 (ten billion in a currency with cents); an
  order's total is at most lines x quantity x price = 5 x 10^16, far inside the 64-bit
  integers that PostgreSQL's bigint and the JSON encoder (orjson) take;
- a line orders at most 1,000 units, an order has at most 50 lines;
- a product's stock holds at most 10^9 units (the read model's counts are 32-bit ints);
- texts have the lengths below, counted in characters after surrounding blanks are cut.
"""

from __future__ import annotations

import re

from domain.errors import InvalidInput

MAX_MONEY_AMOUNT = 10**12
MAX_LINE_QUANTITY = 1_000
MAX_ORDER_LINES = 50
MAX_LINE_DISCOUNTS = 20
MAX_DISCOUNT_LABEL_LENGTH = 300
MAX_ORDER_TOTAL = MAX_MONEY_AMOUNT * MAX_LINE_QUANTITY * MAX_ORDER_LINES
MAX_STOCK = 10**9
MAX_STOCK_RECEIPT = 10**6

MAX_SKU_LENGTH = 64
MAX_PRODUCT_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 5_000
MAX_CATEGORY_LENGTH = 100
MAX_EMAIL_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 100
MAX_ADDRESS_NAME_LENGTH = 200
MAX_ADDRESS_LINE_LENGTH = 200
MAX_CITY_LENGTH = 100
MAX_POSTAL_CODE_LENGTH = 20
MAX_PAYMENT_TOKEN_LENGTH = 200
MAX_REASON_LENGTH = 200
MAX_REFERENCE_LENGTH = 100
MAX_REVIEW_TITLE_LENGTH = 120
MAX_REVIEW_BODY_LENGTH = 5_000
MAX_REVIEW_REPLY_LENGTH = 5_000
MAX_RATING = 5

# C0 and C1 control characters and DEL, and lone surrogates (which no UTF-8 encoder takes).
# Multi-line texts (descriptions) keep tab, line feed and carriage return.
CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f"
MULTILINE_CONTROL_CHARACTERS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_FORBIDDEN = re.compile(f"[{CONTROL_CHARACTERS}\ud800-\udfff]")
_FORBIDDEN_MULTILINE = re.compile(f"[{MULTILINE_CONTROL_CHARACTERS}\ud800-\udfff]")
_CURRENCY = re.compile("[A-Z]{3}")


class InvalidText(InvalidInput):
    code = "invalid_text"


def has_forbidden_characters(text: str, *, multiline: bool = False) -> bool:
    return (_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN).search(text) is not None


def check_text(
    field: str,
    value: str,
    max_length: int,
    *,
    blank_ok: bool = False,
    multiline: bool = False,
) -> str:
    """The value without surrounding blanks; refused if it holds control characters, is
    longer than `max_length`, or (unless `blank_ok`) says nothing."""
    if not isinstance(value, str):
        raise InvalidText(f"{field} must be text")
    if has_forbidden_characters(value, multiline=multiline):
        raise InvalidText(f"{field} must not contain control characters")
    value = value.strip()
    if not value and not blank_ok:
        raise InvalidText(f"{field} must not be blank")
    if len(value) > max_length:
        raise InvalidText(f"{field} must be at most {max_length} characters")
    return value


def check_currency(currency: str) -> str:
    """An ISO 4217-shaped code: three letters, stored in upper case."""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if not _CURRENCY.fullmatch(code):
        raise InvalidInput("currency must be a three-letter code")
    return code


def is_whole_number(value: object, maximum: int) -> bool:
    """A positive int up to `maximum`; bool is an int in Python but never a count or amount."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= maximum
