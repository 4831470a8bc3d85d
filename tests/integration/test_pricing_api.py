"""Promotions, coupons, price rules and the quote over HTTP, on the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from domain.pricing_context import Pricing
from domain.promotions import PricingIndex
from eventmart.settings import Settings
from eventmart.wiring import build_application
from tests.shop import Customer, Seller
from tests.support import wait_until

NOW = datetime.now(UTC)
WINDOW = {
    "starts_at": (NOW - timedelta(hours=1)).isoformat(),
    "ends_at": (NOW + timedelta(days=1)).isoformat(),
}


def promotion(seller: Seller, product_id: str, **overrides: Any) -> Any:
    body = {
        "name": "Winter sale",
        "kind": "percent_off",
        "percent_off": 20,
        "scope": {"product_ids": [product_id]},
        **WINDOW,
        **overrides,
    }
    return seller.post("/v1/promotions", body)


def coupon(seller: Seller, **overrides: Any) -> Any:
    body = {
        "code": f"C{uuid.uuid4().hex[:10]}",
        "percent_off": 10,
        **WINDOW,
        "total_uses": 10,
        "per_user_uses": 1,
        **overrides,
    }
    return seller.post("/v1/coupons", body)


def quote(api: TestClient, product_id: str, **params: Any) -> dict[str, Any]:
    answer = api.get(f"/v1/products/{product_id}/price", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_sellers_promotion_prices_the_quote_until_it_is_ended(api: TestClient, seller: Seller):
    product_id = seller.product(price=5000)
    created = promotion(seller, product_id)
    assert created.status_code == 201, created.text
    promotion_id = created.json()["promotion_id"]

    shown = quote(api, product_id, quantity=2)
    assert shown["list_price"] == {"amount": 5000, "currency": "CNY"}
    assert shown["unit_price"] == {"amount": 4000, "currency": "CNY"}
    assert shown["line_total"] == {"amount": 8000, "currency": "CNY"}
    [discount] = shown["discounts"]
    assert discount["promotion_id"] == promotion_id and discount["amount"]["amount"] == 2000
    assert datetime.fromisoformat(shown["valid_until"]) > NOW

    listed = api.get("/v1/promotions", params={"product_id": product_id, "active": True})
    assert [p["promotion_id"] for p in listed.json()["items"]] == [promotion_id]
    nobody_s = api.get("/v1/promotions", params={"product_id": str(uuid.uuid4())})
    assert nobody_s.status_code == 200, nobody_s.text  # a filter that matches nothing
    assert nobody_s.json() == {"items": [], "next_cursor": None}

    other = Seller(api)
    assert other.post(f"/v1/promotions/{promotion_id}/end").status_code == 403
    ended = seller.post(f"/v1/promotions/{promotion_id}/end")
    assert ended.status_code == 202 and ended.json()["ended_at"] is not None
    assert quote(api, product_id)["discounts"] == []


def test_bad_promotions_are_refused(api: TestClient, seller: Seller, customer: Customer):
    product_id = seller.product()
    assert promotion(seller, product_id, percent_off=101).status_code == 422
    assert promotion(seller, product_id, percent_off=0).status_code == 422
    negative = promotion(
        seller, product_id, kind="amount_off", amount_off={"amount": -5, "currency": "CNY"}
    )
    assert negative.status_code == 422
    backwards = promotion(
        seller, product_id, starts_at=WINDOW["ends_at"], ends_at=WINDOW["starts_at"]
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "invalid_promotion"
    assert promotion(seller, product_id, kind="tiered").status_code == 422  # tiers required
    # A field of another kind is refused as a coupon's second discount is, never dropped.
    listed = len(api.get("/v1/promotions", params={"product_id": product_id}).json()["items"])
    for foreign in (
        {"amount_off": {"amount": 100, "currency": "CNY"}},
        {"buy_quantity": 2, "free_quantity": 1},
        {"tiers": [{"min_quantity": 2, "percent_off": 5}]},
    ):
        mixed = promotion(seller, product_id, **foreign)  # kind percent_off, percent_off 20
        assert mixed.status_code == 422, foreign
        assert mixed.json()["error"]["code"] == "invalid_promotion"
        assert next(iter(foreign)) in mixed.json()["error"]["message"]
    mixed = promotion(seller, product_id, kind="amount_off", percent_off=None, tiers=[])
    assert mixed.status_code == 422  # amount_off is required; empty tiers are absent
    assert "amount_off" in mixed.json()["error"]["message"]
    assert (
        len(api.get("/v1/promotions", params={"product_id": product_id}).json()["items"]) == listed
    )
    # A date and time is the string the OpenAPI document says, not a number of seconds.
    for moments in ({"starts_at": 0}, {"ends_at": 4102444800}):
        assert promotion(seller, product_id, **moments).status_code == 422
        assert coupon(seller, **moments).status_code == 422
    theirs = promotion(Seller(api), product_id)
    assert theirs.status_code == 403 and theirs.json()["error"]["code"] == "not_product_owner"
    assert promotion(customer, product_id).status_code == 403  # type: ignore[arg-type]


def test_coupons_are_unique_by_code_and_priced_in_the_quote(api: TestClient, seller: Seller):
    product_id = seller.product(price=2000)
    created = coupon(seller, code="frost-10")
    assert created.status_code == 201 and created.json() == {"code": "FROST-10"}
    taken = coupon(seller, code="FROST-10")
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "coupon_code_taken"
    both = coupon(seller, amount_off={"amount": 100, "currency": "CNY"})
    assert both.status_code == 422

    status = seller.get("/v1/coupons/frost-10")
    assert status.json() == {
        "code": "FROST-10",
        "remaining_uses": 10,
        "valid": True,
        "reason": None,
    }
    for code in ("NO-SUCH", "ab", "summer sale!"):  # the last two no coupon can have
        missing = seller.get(f"/v1/coupons/{code}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "coupon_not_found"

    shown = quote(api, product_id, quantity=1, coupon_code="frost-10")
    assert shown["line_total"]["amount"] == 1800
    assert [d["kind"] for d in shown["discounts"]] == ["coupon"]
    for code in ("NOPE-NOPE", "ab", "summer sale!"):
        unknown = api.get(f"/v1/products/{product_id}/price", params={"coupon_code": code})
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "coupon_invalid"
    ended = coupon(
        seller,
        starts_at=(NOW - timedelta(days=2)).isoformat(),
        ends_at=(NOW - timedelta(days=1)).isoformat(),
    ).json()["code"]
    gone = api.get(f"/v1/products/{product_id}/price", params={"coupon_code": ended})
    assert gone.status_code == 422 and gone.json()["error"]["code"] == "coupon_invalid"


def test_creations_repeated_with_their_idempotency_key_are_stored_once(
    api: TestClient, seller: Seller
):
    """API.md: the same key with the same body answers the same and stores nothing twice;
    with another body it is 422 `idempotency_key_reused` (a retried coupon is not 409)."""
    product_id = seller.product()
    price = {"amount": 1500, "currency": "CNY"}
    promotion = {
        "name": "Once",
        "kind": "percent_off",
        "percent_off": 20,
        "scope": {"product_ids": [product_id]},
        **WINDOW,
    }
    rule = {
        "name": "Scarce",
        "kind": "stock_level",
        "scope": {"product_ids": [product_id]},
        "params": {"thresholds": [{"below_available": 2, "price": price}]},
        "floor": {"amount": 1000, "currency": "CNY"},
        "ceiling": {"amount": 2000, "currency": "CNY"},
    }
    coupon = {"percent_off": 10, **WINDOW, "total_uses": 5, "per_user_uses": 1}
    named = {**coupon, "code": f"K{uuid.uuid4().hex[:10]}"}
    for path, body, other in [
        ("/v1/promotions", promotion, {**promotion, "percent_off": 30}),
        ("/v1/pricing/rules", rule, {**rule, "name": "Scarcer"}),
        ("/v1/coupons", coupon, {**coupon, "total_uses": 6}),  # its code made up
        ("/v1/coupons", named, {**named, "total_uses": 6}),
    ]:
        key = {"Idempotency-Key": f"{path}-{uuid.uuid4()}"}
        first = seller.post(path, body, **key)
        assert first.status_code == 201, first.text
        again = seller.post(path, body, **key)
        assert (again.status_code, again.json()) == (201, first.json()), again.text
        reused = seller.post(path, other, **key)
        assert reused.status_code == 422, reused.text
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
    listed = api.get("/v1/promotions", params={"product_id": product_id}).json()["items"]
    assert [p["name"] for p in listed] == ["Once"]


def test_a_time_window_rule_sets_the_list_price_within_its_bounds(api: TestClient, seller: Seller):
    product_id = seller.product(price=3000)
    rule = {
        "name": "Flash sale",
        "kind": "time_window",
        "scope": {"product_ids": [product_id]},
        "params": {**WINDOW, "price": {"amount": 1000, "currency": "CNY"}},
        "floor": {"amount": 1500, "currency": "CNY"},
        "ceiling": {"amount": 4000, "currency": "CNY"},
    }
    created = seller.post("/v1/pricing/rules", rule)
    assert created.status_code == 201, created.text
    shown = quote(api, product_id)
    assert shown["list_price"]["amount"] == 1500  # clamped to the floor
    assert promotion(seller, product_id, percent_off=50).status_code == 201
    assert quote(api, product_id)["line_total"]["amount"] == 1500  # never below the floor


def test_quotes_read_from_memory_and_see_another_process_change_at_once(
    api: TestClient, seller: Seller, settings: Settings
):
    """A quote's aggregates are kept in the API's memory while their store announces no
    change (api.quiet_reads); a change saved by any other process (here a second Pricing
    application, as a worker or another API process would be) counts within the
    notification's trip."""
    product_id = seller.product(price=5000)
    promotion_id = promotion(seller, product_id).json()["promotion_id"]
    assert quote(api, product_id)["unit_price"]["amount"] == 4000
    pricing = api.app.state.services.applications.pricing  # type: ignore[attr-defined]
    kept = pricing.quiet_reads.__self__.unchanged
    index_id = str(PricingIndex.create_id(f"product:{product_id}"))
    # The next quote reads them from memory. (The promotion's own announcement may reach
    # the API after a quote read it, and then that read is rightly not kept: quote again.)
    wait_until(
        lambda: quote(api, product_id) and kept.get(promotion_id) and kept.get(index_id),
        timeout=5,
        message="the quote's aggregates kept in memory",
    )

    elsewhere = build_application(Pricing, settings)
    try:
        ended = elsewhere.end_promotion(
            uuid.UUID(promotion_id), uuid.UUID(seller.user_id), False, datetime.now(UTC)
        )
        assert ended
        wait_until(lambda: kept.get(promotion_id) is None, timeout=5, message="announced")
        assert quote(api, product_id)["discounts"] == []
        assert kept.get(promotion_id) is not None  # read again, and kept again
    finally:
        elsewhere.close()
