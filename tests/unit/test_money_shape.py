"""Money has one shape in every answer, `{amount, currency}` (API.md), and the OpenAPI
document says so: no money field is a bare number anywhere in it."""

from __future__ import annotations

from typing import Any

from api.main import create_app
from api.money import money_in_detail
from tests.conftest import make_test_settings

# The names money goes by in EventMart's answers and requests.
MONEY_FIELDS = {"price", "unit_price", "line_total", "total", "gross", "refunds", "net"}


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:  # optional: X | None
        [schema] = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return resolve(schema, components)
    return schema


def test_every_money_field_in_the_openapi_document_is_amount_and_currency():
    document = create_app(make_test_settings()).openapi()
    components = document["components"]["schemas"]
    seen = set()
    for name, schema in components.items():
        for field, spec in schema.get("properties", {}).items():
            if field not in MONEY_FIELDS:
                continue
            money = resolve(spec, components)
            assert money.get("type") == "object", (name, field, spec)
            assert money["properties"]["amount"]["type"] == "integer", (name, field)
            assert money["properties"]["currency"]["type"] == "string", (name, field)
            assert {"amount", "currency"} <= set(money["required"]), (name, field)
            seen.add((name, field))
    assert {
        ("OrderSummary", "total"),
        ("OrderLineView", "unit_price"),
        ("OrderLineView", "line_total"),
        ("SaleLine", "unit_price"),
        ("SalesFigures", "net"),
    } <= seen


def test_a_timeline_detail_shows_its_money_as_amounts():
    captured = {"amount": 9800, "currency": "USD", "method": "card"}
    assert money_in_detail(captured, "CNY") == {
        "amount": {"amount": 9800, "currency": "USD"},
        "method": "card",
    }
    confirmed = {"total": 9800}
    assert money_in_detail(confirmed, "CNY") == {"total": {"amount": 9800, "currency": "CNY"}}
    assert money_in_detail({"reason": "expired"}, "CNY") == {"reason": "expired"}
