"""Bounds: what an aggregate accepts, its public contract accepts and the relay can encode;
what the contract refuses, the aggregate refuses first. And no contract field is unbounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import orjson
import pytest

from domain.catalog import Product
from domain.errors import InvalidInput
from domain.limits import (
    MAX_LINE_QUANTITY,
    MAX_MONEY_AMOUNT,
    MAX_ORDER_LINES,
    MAX_ORDER_TOTAL,
    MAX_STOCK,
)
from domain.order import Order
from domain.order_lines import OrderLine
from domain.payments import ChargeResult, Payment, PaymentIntent
from domain.stock import Stock, StockLimitExceeded
from domain.users import User
from eventmart.contracts import CONTRACTS, envelope_from_domain, parse

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SELLER = uuid4()
ADDRESS = {"name": "Ada", "line1": "1 Way", "city": "Shanghai", "postal_code": "2", "country": "CN"}
PAYMENT = {"method": "card", "intent_id": str(uuid4())}
HOSTILE_TEXTS = ["a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "   "]


def published(aggregate: Any) -> list[bytes]:
    """Each pending event as the relay would publish it, parsed back as a consumer would."""
    encoded = []
    for event in aggregate.collect_events():
        envelope = envelope_from_domain(event)
        if envelope is not None:
            raw = envelope.to_bytes()
            assert parse(raw) == envelope
            encoded.append(raw)
    return encoded


def product(**overrides: Any) -> Product:
    fields: dict[str, Any] = {
        "seller_id": SELLER,
        "sku": "MUG-1",
        "name": "Mug",
        "description": "Blue",
        "category": "kitchen",
        "price_amount": 100,
        "currency": "CNY",
    }
    return Product.create(**{**fields, **overrides})


def test_the_largest_price_and_longest_texts_are_stored_and_published():
    item = product(
        price_amount=MAX_MONEY_AMOUNT,
        sku="S" * 64,
        name="N" * 200,
        description="line one\n\tline two\r\n" + "d" * 4970,
        category="C" * 100,
    )
    item.update(SELLER, name="M" * 200, price_amount=MAX_MONEY_AMOUNT - 1)
    assert len(published(item)) == 3


@pytest.mark.parametrize("amount", [0, -1, MAX_MONEY_AMOUNT + 1, 10**20, 2**63, True, 1.5])
def test_a_price_outside_the_bounds_is_refused_before_any_event(amount: Any):
    with pytest.raises(InvalidInput):
        product(price_amount=amount)
    item = product()
    item.collect_events()
    with pytest.raises(InvalidInput):
        item.update(SELLER, price_amount=amount)
    assert item.collect_events() == []


@pytest.mark.parametrize("field", ["sku", "name", "category", "description"])
@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_control_characters_and_blank_names_are_refused(field: str, text: str):
    if field == "description" and not text.strip():
        return  # a blank description is allowed
    with pytest.raises(InvalidInput):
        product(**{field: text})


@pytest.mark.parametrize(("field", "limit"), [("sku", 64), ("name", 200), ("category", 100)])
def test_texts_longer_than_their_bound_are_refused(field: str, limit: int):
    with pytest.raises(InvalidInput):
        product(**{field: "x" * (limit + 1)})


def test_only_a_description_spans_lines():
    assert product(description="one\ntwo").description == "one\ntwo"
    with pytest.raises(InvalidInput):
        product(name="one\ntwo")


@pytest.mark.parametrize("currency", ["CN", "CNYY", "C1Y", "ÄBC", "\x00NY"])
def test_a_currency_is_three_letters(currency: str):
    with pytest.raises(InvalidInput):
        product(currency=currency)


@pytest.mark.parametrize(
    ("email", "name"),
    [("a\x00@example.com", "Ada"), ("ada@example.com", "A\x00da"), ("ada@example.com", "x" * 101)],
)
def test_users_with_control_characters_or_long_names_are_refused(email: str, name: str):
    with pytest.raises(InvalidInput):
        User.register(email, "hash", name)


def test_stock_fills_up_to_its_bound_and_no_further():
    stock = Stock(product_id=uuid4(), seller_id=SELLER)
    stock.receive(SELLER, MAX_STOCK - 1, NOW)
    stock.receive(SELLER, 1, NOW)
    assert len(published(stock)) == 2
    with pytest.raises(StockLimitExceeded):
        stock.receive(SELLER, 1, NOW)
    with pytest.raises(InvalidInput):
        Stock(product_id=uuid4(), seller_id=SELLER).receive(SELLER, MAX_STOCK + 1, NOW)


def place(lines: list[OrderLine], address: dict[str, str] = ADDRESS, **payment: str) -> Order:
    return Order.place(
        uuid4(), lines, address, {**PAYMENT, **payment}, "CNY", NOW, timedelta(minutes=15)
    )


def test_the_largest_order_is_stored_and_published():
    lines = [
        OrderLine(uuid4(), MAX_LINE_QUANTITY, MAX_MONEY_AMOUNT) for _ in range(MAX_ORDER_LINES)
    ]
    order = place(lines)
    assert order.total == MAX_ORDER_TOTAL < 2**63
    [raw] = published(order)
    assert orjson.loads(raw)["payload"]["total"] == MAX_ORDER_TOTAL


@pytest.mark.parametrize(
    "lines",
    [
        [OrderLine(uuid4(), MAX_LINE_QUANTITY + 1, 100)],
        [OrderLine(uuid4(), 1, MAX_MONEY_AMOUNT + 1)],
        [OrderLine(uuid4(), 1, 100) for _ in range(MAX_ORDER_LINES + 1)],
    ],
)
def test_an_order_beyond_its_bounds_is_refused(lines: list[OrderLine]):
    with pytest.raises(InvalidInput):
        place(lines)


@pytest.mark.parametrize("field", ["name", "line1", "city", "postal_code", "country"])
@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_an_address_with_control_characters_is_refused(field: str, text: str):
    with pytest.raises(InvalidInput):
        place([OrderLine(uuid4(), 1, 100)], {**ADDRESS, field: text})


@pytest.mark.parametrize("token", ["tok\x00ok", "x" * 201, " "])
def test_a_payment_token_is_bounded_text(token: str):
    with pytest.raises(InvalidInput):
        PaymentIntent.open(uuid4(), 100, "CNY", "card", token)


@pytest.mark.parametrize("amount", [0, -1, MAX_ORDER_TOTAL + 1, True])
def test_a_payment_intent_amount_is_bounded(amount: int):
    with pytest.raises(InvalidInput):
        PaymentIntent.open(uuid4(), amount, "CNY", "card", "tok_ok")


def unbounded(schema: dict[str, Any], definitions: dict[str, Any], path: str) -> list[str]:
    """Paths of integers without a maximum and strings without a length, pattern or format."""
    if "$ref" in schema:
        return unbounded(definitions[schema["$ref"].split("/")[-1]], definitions, path)
    found = []
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += unbounded(option, definitions, path)
    kind = schema.get("type")
    if kind == "integer" and "maximum" not in schema and "exclusiveMaximum" not in schema:
        found.append(path)
    if kind == "string" and not ({"maxLength", "enum", "const", "format", "pattern"} & set(schema)):
        found.append(path)
    for name, field in schema.get("properties", {}).items():
        found += unbounded(field, definitions, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += unbounded(schema["items"], definitions, f"{path}[]")
        if "maxItems" not in schema:
            found.append(path)
    if isinstance(schema.get("additionalProperties"), dict):
        found += unbounded(schema["additionalProperties"], definitions, f"{path}{{}}")
    return found


@pytest.mark.parametrize("type_name", sorted(CONTRACTS))
def test_every_number_and_text_of_every_contract_is_bounded(type_name: str):
    schema = CONTRACTS[type_name].payload.model_json_schema()
    assert unbounded(schema, schema.get("$defs", {}), type_name) == []


@pytest.mark.parametrize(
    "result",
    [
        ChargeResult("approved", reference="r" * 101),
        ChargeResult("approved", reference="ref\x00"),
        ChargeResult("declined", reason="because " * 30),
    ],
)
def test_a_gateway_answer_beyond_the_contract_is_refused_not_stored(result: ChargeResult):
    payment = Payment(order_id=uuid4())
    payment.collect_events()
    with pytest.raises(InvalidInput):
        payment.record_charge(result, 100, "CNY", "card")
    assert payment.collect_events() == []


@pytest.mark.parametrize("reason", ["x" * 201, "no\x00", " "])
def test_an_order_ends_only_with_a_bounded_reason(reason: str):
    order = place([OrderLine(uuid4(), 1, 100)])
    order.collect_events()
    for end in (order.cancel, order.reject):
        with pytest.raises(InvalidInput):
            end(reason)
    assert order.collect_events() == []
