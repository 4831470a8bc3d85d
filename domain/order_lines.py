"""What an order is placed with, checked: its priced lines, the shipping address and
the payment intent it names."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.errors import InvalidInput
from domain.limits import (
    MAX_ADDRESS_LINE_LENGTH,
    MAX_ADDRESS_NAME_LENGTH,
    MAX_CITY_LENGTH,
    MAX_LINE_DISCOUNTS,
    MAX_LINE_QUANTITY,
    MAX_MONEY_AMOUNT,
    MAX_ORDER_LINES,
    MAX_ORDER_TOTAL,
    MAX_POSTAL_CODE_LENGTH,
    check_text,
    is_whole_number,
)
from domain.payments import PAYMENT_METHODS

ADDRESS_LIMITS = {
    "name": MAX_ADDRESS_NAME_LENGTH,
    "line1": MAX_ADDRESS_LINE_LENGTH,
    "city": MAX_CITY_LENGTH,
    "postal_code": MAX_POSTAL_CODE_LENGTH,
    "country": 2,
}
ADDRESS_FIELDS = tuple(ADDRESS_LIMITS)
COUNTRY_CODE = re.compile("[A-Za-z]{2}")


@dataclass(frozen=True)
class OrderLine:
    """A line as the pricing context priced it at placement: `list_price` per unit, the
    `discounts` taken, and `line_total` (what is charged; `unit_price` is it divided by
    the quantity, rounded down). A line without pricing (placed before the pricing
    context) is its quantity at its unit price."""

    product_id: UUID
    quantity: int
    unit_price: int
    list_price: int | None = None
    discounts: tuple[Mapping[str, Any], ...] = ()
    total: int | None = None

    @property
    def line_total(self) -> int:
        return self.quantity * self.unit_price if self.total is None else self.total

    @property
    def listed_price(self) -> int:
        return self.unit_price if self.list_price is None else self.list_price

    @property
    def discount_total(self) -> int:
        return sum(int(discount["amount"]) for discount in self.discounts)

    @staticmethod
    def coerce(line: OrderLine | Mapping[str, Any]) -> OrderLine:
        if isinstance(line, OrderLine):
            return line
        product_id = line["product_id"]
        return OrderLine(
            product_id=product_id if isinstance(product_id, UUID) else UUID(str(product_id)),
            quantity=line["quantity"],
            unit_price=line["unit_price"],
            list_price=line.get("list_price"),
            discounts=tuple(line.get("discounts") or ()),
            total=line.get("line_total"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "list_price": self.listed_price,
            "discounts": [dict(discount) for discount in self.discounts],
            "line_total": self.line_total,
        }


def check_pricing(line: OrderLine) -> None:
    """The figures of a priced line agree: list total less discounts is the line total."""
    if not is_whole_number(line.listed_price, MAX_MONEY_AMOUNT):
        raise InvalidInput(f"list_price must be a whole number from 1 to {MAX_MONEY_AMOUNT}")
    if len(line.discounts) > MAX_LINE_DISCOUNTS:
        raise InvalidInput(f"a line has at most {MAX_LINE_DISCOUNTS} discounts")
    for discount in line.discounts:
        if not is_whole_number(discount.get("amount"), MAX_ORDER_TOTAL):
            raise InvalidInput("a discount amount must be a positive whole number")
    if line.line_total != line.listed_price * line.quantity - line.discount_total:
        raise InvalidInput("line_total must be the list total less the discounts")
    if line.line_total < line.quantity or line.unit_price != line.line_total // line.quantity:
        raise InvalidInput("unit_price must be the line total divided by the quantity")


def check_lines(lines: Iterable[OrderLine | Mapping[str, Any]]) -> list[OrderLine]:
    """Prices come from the pricing context at placing time; one line per product."""
    checked = [OrderLine.coerce(line) for line in lines]
    if not 1 <= len(checked) <= MAX_ORDER_LINES:
        raise InvalidInput(f"an order needs 1 to {MAX_ORDER_LINES} lines")
    for line in checked:
        if not is_whole_number(line.quantity, MAX_LINE_QUANTITY):
            raise InvalidInput(f"quantity must be a whole number from 1 to {MAX_LINE_QUANTITY}")
        if not is_whole_number(line.unit_price, MAX_MONEY_AMOUNT):
            raise InvalidInput(f"unit_price must be a whole number from 1 to {MAX_MONEY_AMOUNT}")
        check_pricing(line)
    if len({line.product_id for line in checked}) != len(checked):
        raise InvalidInput("each product may appear on one line only")
    return checked


def check_address(address: Mapping[str, str]) -> dict[str, str]:
    unknown = set(address) - set(ADDRESS_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown address fields: {', '.join(sorted(unknown))}")
    missing = [field for field in ADDRESS_FIELDS if not address.get(field)]
    if missing:
        raise InvalidInput(f"address needs {', '.join(missing)}")
    checked = {
        field: check_text(f"address {field}", address[field], limit)
        for field, limit in ADDRESS_LIMITS.items()
    }
    if not COUNTRY_CODE.fullmatch(checked["country"]):
        raise InvalidInput("address country must be a two-letter code")
    return checked


def check_payment(payment: Mapping[str, Any]) -> dict[str, str]:
    """An order names its payment intent (kept by the payments context), never a token:
    the order's events are relayed to the bus."""
    if "token" in payment:
        raise InvalidInput("a payment token goes to the payments context, not into an order")
    method, intent_id = payment.get("method"), payment.get("intent_id")
    if method not in PAYMENT_METHODS:
        raise InvalidInput(f"payment method must be one of {', '.join(PAYMENT_METHODS)}")
    try:
        intent = intent_id if isinstance(intent_id, UUID) else UUID(str(intent_id))
    except ValueError as error:
        raise InvalidInput("payment needs the id of its payment intent") from error
    return {"method": method, "intent_id": str(intent)}


def order_total(lines: Iterable[OrderLine | Mapping[str, Any]]) -> int:
    """What an order of these lines costs (the lines checked as placing checks them)."""
    return sum(line.line_total for line in check_lines(lines))
