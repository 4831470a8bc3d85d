"""A promotion's `max_uses` and `per_user_limit` hold under concurrency: the saga locks a use
per order with its stock (as it locks a coupon's), and an order that loses the race is
rejected with `promotion_unavailable`, its stock released."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from tests.integration.test_pricing_api import promotion
from tests.integration.test_pricing_orders import PAID, cny, outcomes, place, shop
from tests.shop import Customer, Seller, visible_product
from tests.support import wait_until

__all__ = ["shop"]  # the module's fixture, shared with the coupon tests


def promotion_uses(api: TestClient, promotion_id: str) -> tuple[int, int]:
    """(redeemed, locked) uses, as the pricing context's promotion aggregate holds them."""
    pricing = api.app.state.services.applications.pricing  # type: ignore[attr-defined]
    found = pricing.get_promotion(promotion_id)
    return int(found.redeemed_count), len(found.locks)


def available(api: TestClient, product_id: str) -> int | None:
    view = visible_product(api, product_id)
    return None if view is None else int(view["stock"]["available"])


def took(order: dict[str, Any], promotion_id: str) -> bool:
    return any(
        d.get("promotion_id") == promotion_id for line in order["lines"] for d in line["discounts"]
    )


def concurrently(customers: list[Customer], product_id: str, n: int) -> list[dict[str, Any]]:
    def order(i: int) -> tuple[Customer, str]:
        customer = customers[i % len(customers)]
        answer = place(customer, [(product_id, 1)])
        assert answer.status_code == 202, answer.text
        return customer, answer.json()["order_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return outcomes(list(pool.map(order, range(n))))


def test_ten_orders_race_for_a_promotion_with_three_uses(shop: TestClient):
    seller = Seller(shop)
    mug = seller.product(price=1000, stock=20)
    created = promotion(seller, mug, percent_off=30, max_uses=3)
    assert created.status_code == 201, created.text
    promotion_id = created.json()["promotion_id"]

    finals = concurrently([Customer(shop) for _ in range(5)], mug, 10)
    discounted = [f for f in finals if f["status"] in PAID and took(f, promotion_id)]
    assert len(discounted) == 3 and all(f["total"] == cny(700) for f in discounted)
    for final in finals:  # a loser was rejected; an order placed once none was left paid in full
        if final["status"] == "rejected":
            assert final["reason"] == "promotion_unavailable" and took(final, promotion_id)
        elif final not in discounted:
            assert final["status"] in PAID and final["total"] == cny(1000)
    wait_until(
        lambda: promotion_uses(shop, promotion_id) == (3, 0), timeout=30, message="3 redeemed"
    )
    paid = sum(f["status"] in PAID for f in finals)
    wait_until(lambda: available(shop, mug) == 20 - paid, timeout=30, message="stock released")
    shown = shop.get(f"/v1/products/{mug}/price").json()
    assert shown["discounts"] == [] and shown["line_total"] == cny(1000)


def test_a_promotions_per_user_limit_of_one_holds_against_concurrent_orders(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(price=1000, stock=20)
    created = promotion(seller, mug, percent_off=30, per_user_limit=1)
    assert created.status_code == 201, created.text
    promotion_id = created.json()["promotion_id"]

    finals = concurrently([customer], mug, 8)
    assert sum(f["status"] in PAID and took(f, promotion_id) for f in finals) == 1
    rejected = [f for f in finals if f["status"] == "rejected"]
    assert {f["reason"] for f in rejected} <= {"promotion_unavailable"}
    assert all(f["status"] in PAID for f in finals if not took(f, promotion_id))
    wait_until(
        lambda: promotion_uses(shop, promotion_id) == (1, 0), timeout=30, message="1 redeemed"
    )
    # The buyer has had their use; another buyer still gets the discount.
    assert customer.get(f"/v1/products/{mug}/price").json()["discounts"] == []
    assert Customer(shop).get(f"/v1/products/{mug}/price").json()["discounts"] != []
