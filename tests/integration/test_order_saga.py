"""The order saga through the HTTP API, on the real broker and database: every path to a
terminal state, compensation included."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from tests.shop import TERMINAL, Customer, Seller, visible_product
from tests.support import wait_until


@pytest.fixture(scope="module")
def shop(api: TestClient, saga_workers, catalog_projection, orders_projection) -> TestClient:
    return api


def stock_settles(api: TestClient, product_id: str, **expected: int) -> dict:
    return wait_until(
        lambda: (
            (view := visible_product(api, product_id))
            and (stock := view["stock"])
            and all(stock[k] == v for k, v in expected.items())
            and stock
        ),
        timeout=30,
        message=f"stock of {product_id} to be {expected}",
    )


def types(view: dict) -> list[str]:
    return [entry["type"] for entry in view["timeline"]]


def test_happy_path_to_completed(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug, plate = (
        seller.product(price=1250, stock=5),
        seller.product(price=800, stock=5, name="Plate"),
    )
    order_id = customer.place([(mug, 2), (plate, 1)])

    confirmed = customer.wait_for(order_id, "confirmed", "shipped", "delivered", "completed")
    assert confirmed["total"] == cny(2 * 1250 + 800)
    assert {
        (
            line["product_id"],
            line["quantity"],
            line["unit_price"]["amount"],
            line["line_total"]["amount"],
        )
        for line in confirmed["lines"]
    } == {(mug, 2, 1250, 2500), (plate, 1, 800, 800)}
    assert {line["unit_price"]["currency"] for line in confirmed["lines"]} == {"CNY"}

    delivered = customer.wait_for(order_id, "delivered", "completed")
    if delivered["status"] == "delivered":
        assert customer.post(f"/v1/orders/{order_id}/confirm-receipt").status_code in (202, 409)
    completed = customer.wait_for(order_id, "completed")
    for expected in (
        "order.placed",
        "reservation.confirmed",
        "payment.captured",
        "order.confirmed",
        "shipment.created",
        "order.shipped",
        "shipment.delivered",
        "order.delivered",
        "order.completed",
    ):
        assert expected in types(completed), f"{expected} missing from {types(completed)}"
    details = {entry["type"]: entry["detail"] for entry in completed["timeline"]}
    assert details["payment.captured"]["amount"] == cny(3300)  # money has one shape
    assert details["order.confirmed"]["total"] == cny(3300)
    stock_settles(shop, mug, on_hand=3, reserved=0, available=3)


def cny(amount: int) -> dict[str, object]:
    return {"amount": amount, "currency": "CNY"}


def test_confirm_receipt_completes_a_delivered_order_and_is_409_before(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    order_id = customer.place([(seller.product(), 1)])
    early = customer.post(f"/v1/orders/{order_id}/confirm-receipt")
    assert early.status_code == 409
    customer.wait_for(order_id, "delivered", "completed")
    answer = customer.post(f"/v1/orders/{order_id}/confirm-receipt")
    assert answer.status_code in (202, 409)  # 409 only if auto-completion won the race
    customer.wait_for(order_id, "completed")


def test_declined_payment_cancels_and_releases_stock(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(stock=3)
    order_id = customer.place([(mug, 2)], token="tok_declined", method="alipay")
    cancelled = customer.wait_for(order_id, "cancelled")
    assert cancelled["reason"] == "payment_declined"
    assert "payment.declined" in types(cancelled)
    stock_settles(shop, mug, on_hand=3, reserved=0, available=3)


def test_not_enough_stock_rejects(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug, plate = seller.product(stock=1), seller.product(stock=5)
    order_id = customer.place([(plate, 2), (mug, 2)])
    rejected = customer.wait_for(order_id, "rejected")
    assert rejected["reason"] == "insufficient_stock"
    stock_settles(shop, plate, on_hand=5, reserved=0)  # all or nothing: the plates were not held


def test_payment_that_never_answers_is_cancelled_at_the_deadline(shop: TestClient, settings):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(stock=2)
    order_id = customer.place([(mug, 2)], token="tok_timeout", method="wechat")
    customer.wait_for(order_id, "reserved", "pending", timeout=30)
    stock_settles(shop, mug, reserved=2)
    cancelled = customer.wait_for(
        order_id, "cancelled", timeout=settings.payment_timeout_seconds + 30
    )
    assert cancelled["reason"] == "payment_timeout"
    wait_until(
        lambda: "payment.voided" in types(customer.view(order_id)),
        timeout=30,
        message="the pending payment to be voided",
    )
    stock_settles(shop, mug, on_hand=2, reserved=0, available=2)


def test_cancel_after_payment_refunds_and_releases(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(stock=4)
    order_id = customer.place([(mug, 3)])
    customer.wait_for(order_id, "paid", "confirmed")
    answer = customer.post(f"/v1/orders/{order_id}/cancel")
    assert answer.status_code == 202, answer.text
    cancelled = wait_until(
        lambda: (
            (view := customer.view(order_id))
            and {"payment_refunded", "stock_released"} <= set(view["compensations"])
            and view
        ),
        timeout=30,
        message="the refund and the release",
    )
    assert cancelled["status"] == "cancelled" and cancelled["reason"] == "cancelled_by_buyer"
    assert "payment.refunded" in types(cancelled) and "reservation.released" in types(cancelled)
    stock_settles(shop, mug, on_hand=4, reserved=0, available=4)


def test_cancel_after_shipment_is_409(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    order_id = customer.place([(seller.product(), 1)])
    customer.wait_for(order_id, "shipped", "delivered", "completed")
    answer = customer.post(f"/v1/orders/{order_id}/cancel")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "order_not_cancellable"


def test_another_buyer_cannot_see_or_cancel_an_order(shop: TestClient):
    seller, customer, stranger = Seller(shop), Customer(shop), Customer(shop)
    order_id = customer.place([(seller.product(), 1)])
    assert stranger.get(f"/v1/orders/{order_id}").status_code == 404
    assert stranger.post(f"/v1/orders/{order_id}/cancel").status_code == 404
    assert seller.post("/v1/orders", Customer.order_body([(order_id, 1)])).status_code == 403


def test_same_idempotency_key_places_one_order(shop: TestClient):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(stock=5)
    first = customer.order([(mug, 1)], idempotency_key="order-1")
    again = customer.order([(mug, 1)], idempotency_key="order-1")
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    changed = customer.order([(mug, 2)], idempotency_key="order-1")
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    customer.wait_for(first.json()["order_id"], "confirmed", "shipped", "delivered", "completed")
    listed = customer.get("/v1/orders").json()["items"]
    assert [o["order_id"] for o in listed] == [first.json()["order_id"]]


def test_race_for_ten_units_confirms_exactly_ten(shop: TestClient):
    seller = Seller(shop)
    mug = seller.product(stock=10)
    customers = [Customer(shop) for _ in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        order_ids = list(
            pool.map(lambda n: (customers[n % 20], customers[n % 20].place([(mug, 1)])), range(200))
        )
    finals = [
        customer.wait_for(order_id, *TERMINAL, "confirmed", "shipped", "delivered", timeout=120)
        for customer, order_id in order_ids
    ]
    succeeded = [
        f for f in finals if f["status"] in ("confirmed", "shipped", "delivered", "completed")
    ]
    rejected = [f for f in finals if f["status"] == "rejected"]
    assert len(succeeded) == 10
    assert len(rejected) == 190
    stock = stock_settles(shop, mug, reserved=0, available=0)
    sold_or_held = 10 - stock["on_hand"]  # shipped units have left the shelf
    assert 0 <= sold_or_held <= 10 and stock["on_hand"] + stock["reserved"] <= 10
