"""Placement prices every line through the pricing context, as the quote does, and the
order keeps what it was charged; coupons go through the saga with the stock."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.test_pricing_api import coupon, promotion, quote
from tests.shop import Customer, Seller
from tests.support import wait_until


@pytest.fixture(scope="module")
def shop(
    api: TestClient, saga_workers, catalog_projection, orders_projection, sales_projection
) -> TestClient:
    return api


def cny(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "CNY"}


def place(customer: Customer, lines: list[tuple[str, int]], **extra: Any) -> Any:
    return customer.post("/v1/orders", {**customer.order_body(lines), **extra})


def test_promotions_and_a_coupon_price_a_multi_line_order_as_quoted(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(price=5000, stock=20)
    bowl = seller.product(price=1200, stock=20, name="Bowl")
    assert promotion(seller, mug, percent_off=20).status_code == 201
    tiered = promotion(
        seller,
        bowl,
        name="Bulk bowls",
        kind="tiered",
        percent_off=None,
        tiers=[{"min_quantity": 3, "percent_off": 10}, {"min_quantity": 6, "percent_off": 25}],
    )
    assert tiered.status_code == 201, tiered.text
    code = coupon(seller, percent_off=5, total_uses=5).json()["code"]

    quoted = {
        mug: quote(shop, mug, quantity=2, coupon_code=code),
        bowl: quote(shop, bowl, quantity=6, coupon_code=code),
    }
    placed = place(customer, [(mug, 2), (bowl, 6)], coupon_code=code.lower())
    assert placed.status_code == 202, placed.text
    order = customer.wait_for(placed.json()["order_id"], "confirmed", "shipped", "delivered")

    # mug: 10000 - 20% (2000) - 5% of 8000 (400) = 7600; bowl: 7200 - 25% (1800) - 5% (270)
    lines = {line["product_id"]: line for line in order["lines"]}
    assert lines[mug]["list_price"] == cny(5000) and lines[mug]["line_total"] == cny(7600)
    assert [d["amount"] for d in lines[mug]["discounts"]] == [cny(2000), cny(400)]
    assert lines[bowl]["line_total"] == cny(5130) and lines[bowl]["unit_price"] == cny(855)
    assert [d["kind"] for d in lines[bowl]["discounts"]] == ["tiered", "coupon"]
    assert order["coupon_code"] == code
    assert order["discount_total"] == cny(2000 + 400 + 1800 + 270)
    listed = sum(line["list_price"]["amount"] * line["quantity"] for line in order["lines"])
    assert order["total"]["amount"] == listed - order["discount_total"]["amount"] == 12730
    for product_id, shown in quoted.items():  # what the shopper was shown is what they pay
        line = lines[product_id]
        assert (shown["line_total"], shown["unit_price"]) == (
            line["line_total"],
            line["unit_price"],
        )
        assert shown["discounts"] == line["discounts"]
    captured = [e for e in order["timeline"] if e["type"] == "payment.captured"]
    assert captured and captured[0]["detail"]["amount"] == order["total"]

    # The seller's sales: gross as paid, and before discounts.
    totals = wait_until(
        lambda: (t := seller.get("/v1/sellers/me/sales").json()["totals"])["orders"] == 1 and t,
        timeout=30,
        message="the sale in the sales read model",
    )
    assert totals["gross"] == cny(12730) and totals["gross_before_discounts"] == cny(17200)
    assert totals["discounts"] == cny(4470)


def test_an_unknown_or_ended_coupon_is_refused_at_placement(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(price=1000, stock=5)
    # A code no coupon can have (too short, a space, "!") does not exist either.
    for code in ("NO-SUCH-CODE", "ab", "summer sale!"):
        unknown = place(customer, [(mug, 1)], coupon_code=code)
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "coupon_invalid"
    ended = coupon(
        seller,
        starts_at=(datetime.now(UTC) - timedelta(days=2)).isoformat(),
        ends_at=(datetime.now(UTC) - timedelta(days=1)).isoformat(),
    ).json()["code"]
    refused = place(customer, [(mug, 1)], coupon_code=ended)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "coupon_invalid"


PAID = ("confirmed", "shipped", "delivered", "completed")


def outcomes(placed: list[tuple[Customer, str]]) -> list[dict[str, Any]]:
    return [
        customer.wait_for(order_id, "cancelled", "rejected", *PAID, timeout=120)
        for customer, order_id in placed
    ]


def redemptions(shop: TestClient, code: str) -> int:
    """Redeemed uses, as the pricing context's coupon aggregate holds them."""
    pricing = shop.app.state.services.applications.pricing  # type: ignore[attr-defined]
    return int(pricing.get_coupon(code).redeemed_count)


def available(shop: TestClient, product_id: str) -> int:
    return int(shop.get(f"/v1/products/{product_id}").json()["stock"]["available"])


def test_a_hundred_orders_race_for_ten_uses_of_a_coupon(shop: TestClient):
    seller = Seller(shop)
    mug = seller.product(price=1000, stock=150)
    code = coupon(seller, total_uses=10, per_user_uses=100).json()["code"]
    customers = [Customer(shop) for _ in range(10)]

    def order(n: int) -> tuple[Customer, str]:
        customer = customers[n % len(customers)]
        answer = place(customer, [(mug, 1)], coupon_code=code)
        assert answer.status_code == 202, answer.text
        return customer, answer.json()["order_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        placed = list(pool.map(order, range(100)))
    finals = outcomes(placed)
    paid = [f for f in finals if f["status"] in PAID]
    rejected = [f for f in finals if f["status"] == "rejected"]
    assert len(paid) == 10 and all(f["total"] == cny(900) for f in paid)
    assert len(rejected) == 90 and {f["reason"] for f in rejected} == {"coupon_unavailable"}
    wait_until(lambda: redemptions(shop, code) == 10, timeout=30, message="ten uses redeemed")
    # The losers' stock went back: only the ten paid orders hold (or took) units.
    wait_until(lambda: available(shop, mug) == 140, timeout=30, message="stock released")
    assert seller.get(f"/v1/coupons/{code}").json()["remaining_uses"] == 0


def test_a_per_user_limit_of_one_holds_against_twenty_concurrent_orders(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(price=1000, stock=30)
    code = coupon(seller, total_uses=100, per_user_uses=1).json()["code"]

    def order(_: int) -> tuple[Customer, str]:
        answer = place(customer, [(mug, 1)], coupon_code=code)
        assert answer.status_code == 202, answer.text
        return customer, answer.json()["order_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        finals = outcomes(list(pool.map(order, range(20))))
    assert sum(f["status"] in PAID for f in finals) == 1
    assert [f["reason"] for f in finals if f["status"] == "rejected"] == ["coupon_unavailable"] * 19
    wait_until(lambda: available(shop, mug) == 29, timeout=30, message="stock released")
    status = customer.get(f"/v1/coupons/{code}").json()
    assert status["valid"] is False and status["reason"] == "per_user_limit_reached"


def test_a_declined_payment_gives_the_coupon_use_back(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(price=1000, stock=5)
    code = coupon(seller, total_uses=1, per_user_uses=1).json()["code"]
    declined = customer.post(
        "/v1/orders", {**customer.order_body([(mug, 1)], token="tok_declined"), "coupon_code": code}
    )
    assert declined.status_code == 202, declined.text
    cancelled = customer.wait_for(declined.json()["order_id"], "cancelled", "rejected")
    assert cancelled["reason"] == "payment_declined"
    wait_until(
        lambda: customer.get(f"/v1/coupons/{code}").json()["remaining_uses"] == 1,
        timeout=30,
        message="the coupon's use released",
    )
    again = place(customer, [(mug, 1)], coupon_code=code)
    assert again.status_code == 202, again.text
    assert customer.wait_for(again.json()["order_id"], "rejected", *PAID)["status"] in PAID
    wait_until(lambda: redemptions(shop, code) == 1, timeout=30, message="redeemed")


def test_a_coupon_that_takes_nothing_off_is_not_applied_and_keeps_its_use(shop: TestClient):
    """At one minor unit a line is at its floor (an order is never free): the coupon would
    take nothing, so the order does not carry it and no use is locked or spent."""
    seller, customer = Seller(shop), Customer(shop)
    penny = seller.product(price=1, stock=5, name="Sticker")
    mug = seller.product(price=1000, stock=5)
    code = coupon(seller, total_uses=1, per_user_uses=1, amount_off=cny(100), percent_off=None)
    assert code.status_code == 201, code.text
    code = code.json()["code"]
    shown = quote(shop, penny, quantity=1, coupon_code=code)
    assert shown["discounts"] == [] and shown["coupon_refused"] == "coupon_takes_nothing_off"

    placed = place(customer, [(penny, 1)], coupon_code=code)
    assert placed.status_code == 202, placed.text
    order = customer.wait_for(placed.json()["order_id"], *PAID)
    assert order["coupon_code"] is None and order["discount_total"] == cny(0)
    assert order["total"] == cny(1)
    status = customer.get(f"/v1/coupons/{code}").json()
    assert (status["remaining_uses"], status["valid"]) == (1, True)
    assert redemptions(shop, code) == 0

    # Its one use is still there for an order it takes something off.
    second = place(customer, [(mug, 1)], coupon_code=code)
    assert second.status_code == 202, second.text
    paid = customer.wait_for(second.json()["order_id"], "rejected", *PAID)
    assert paid["status"] in PAID and paid["total"] == cny(900), paid
    wait_until(lambda: redemptions(shop, code) == 1, timeout=30, message="redeemed once")


def test_a_stock_level_rule_reprices_as_stock_crosses_its_threshold(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(price=1000, stock=10)
    rule = seller.post(
        "/v1/pricing/rules",
        {
            "name": "Scarce",
            "kind": "stock_level",
            "scope": {"product_ids": [mug]},
            "params": {"thresholds": [{"below_available": 5, "price": cny(1500)}]},
            "floor": cny(800),
            "ceiling": cny(2000),
        },
    )
    assert rule.status_code == 201, rule.text
    assert quote(shop, mug)["list_price"] == cny(1000)
    customer.place([(mug, 6)])  # 4 left: below the threshold
    wait_until(
        lambda: quote(shop, mug)["list_price"] == cny(1500),
        timeout=30,
        message="the rule's price after the stock fell",
    )
    pricing = shop.app.state.services.applications.pricing  # type: ignore[attr-defined]
    stored = pricing.get_rule(rule.json()["rule_id"])
    assert stored.prices == {mug: 1500} and stored.version >= 2  # price.changed is an event
