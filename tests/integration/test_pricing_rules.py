"""Dynamic price rules over HTTP with the saga workers: a time_window rule starts and ends
on time, each change an event the pricing-saga records; a demand rule's price follows
confirmed sales and never leaves its floor-ceiling band."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.integration.test_pricing_api import quote
from tests.integration.test_pricing_orders import PAID, cny, shop
from tests.shop import Customer, Seller
from tests.support import wait_until

__all__ = ["shop"]  # the module's fixture, shared with the coupon tests

ON_TIME = timedelta(seconds=4)  # a timer tick (1 s) and a consumer hop, with room to spare


def stored_events(api: TestClient, rule_id: str) -> list[Any]:
    pricing = api.app.state.services.applications.pricing  # type: ignore[attr-defined]
    return list(pricing.events.get(rule_id))


def named(events: list[Any], name: str) -> list[Any]:
    return [e for e in events if type(e).__name__ == name]


def test_a_time_window_rule_starts_and_ends_on_time_and_records_both(shop: TestClient):
    seller = Seller(shop)
    mug = seller.product(price=1000, stock=5)
    starts_at = datetime.now(UTC) + timedelta(seconds=4)
    ends_at = starts_at + timedelta(seconds=3)
    created = seller.post(
        "/v1/pricing/rules",
        {
            "name": "Flash sale",
            "kind": "time_window",
            "scope": {"product_ids": [mug]},
            "params": {
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
                "price": cny(700),
            },
            "floor": cny(500),
            "ceiling": cny(1500),
        },
    )
    assert created.status_code == 201, created.text
    rule_id = created.json()["rule_id"]
    before = quote(shop, mug)["list_price"]
    assert before == cny(1000) or datetime.now(UTC) >= starts_at

    wait_until(lambda: quote(shop, mug)["list_price"] == cny(700), message="window price")
    assert datetime.now(UTC) < ends_at + ON_TIME
    wait_until(lambda: quote(shop, mug)["list_price"] == cny(1000), message="list price again")
    assert datetime.now(UTC) >= ends_at

    events = wait_until(
        lambda: (e := stored_events(shop, rule_id)) and named(e, "WindowClosed") and e,
        message="the window's end recorded",
    )
    [scheduled] = named(events, "WindowScheduled")
    [opened] = named(events, "WindowOpened")
    [closed] = named(events, "WindowClosed")
    assert scheduled.timestamp < starts_at  # taken on before it was due
    assert starts_at <= opened.timestamp < starts_at + ON_TIME and opened.price == 700
    assert ends_at <= closed.timestamp < ends_at + ON_TIME


def test_a_demand_rule_follows_confirmed_sales_within_its_band(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(price=1000, stock=50)
    created = seller.post(
        "/v1/pricing/rules",
        {
            "name": "Hot item",
            "kind": "demand",
            "scope": {"product_ids": [mug]},
            "params": {"step_percent": 10, "sales_per_step": 2},
            "floor": cny(900),
            "ceiling": cny(1250),
        },
    )
    assert created.status_code == 201, created.text
    rule_id = created.json()["rule_id"]
    assert quote(shop, mug)["list_price"] == cny(1000)

    shown = []
    for expected in (1100, 1200, 1250, 1250):  # 2, 4, 6, 8 units: +10% each 2, capped
        order_id = customer.place([(mug, 2)])
        assert customer.wait_for(order_id, "rejected", *PAID)["status"] in PAID
        price = wait_until(
            lambda expected=expected: (
                (p := quote(shop, mug)["list_price"]["amount"]) == expected and p
            ),
            message=f"the demand price {expected}",
        )
        shown.append(price)
    assert shown == [1100, 1200, 1250, 1250] and all(900 <= p <= 1250 for p in shown)
    changes = named(stored_events(shop, rule_id), "DemandChanged")
    assert [c.steps for c in changes] == [1, 2, 3, 4]  # every step recorded, the band holds
