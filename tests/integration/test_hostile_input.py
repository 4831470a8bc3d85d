"""Hostile input on the real stack: out-of-range numbers, control characters and tampered
cursors are refused at the door with 422, and nothing of them reaches the event store."""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.wiring import APPLICATION_TOPICS
from tests.integration.test_pricing_api import promotion
from tests.shop import ADDRESS, Customer, Seller
from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("catalog_projection", "orders_projection")

EVENT_TABLES = [f"{application.name.lower()}_events" for application in APPLICATION_TOPICS]


def stored_mentions(db: psycopg.Connection, marker: str) -> int:
    """Stored events (of every application) whose state holds `marker` anywhere, in any
    case (SKUs are stored in upper case, e-mails in lower)."""
    needles = [marker.encode(), marker.lower().encode(), marker.upper().encode()]
    return sum(
        db.execute(
            f"SELECT count(*) FROM {table} WHERE position(%s::bytea IN state) > 0"
            " OR position(%s::bytea IN state) > 0 OR position(%s::bytea IN state) > 0",
            needles,
        ).fetchone()[0]
        for table in EVENT_TABLES
    )


@pytest.fixture(scope="module")
def product_id(seller: Seller) -> str:
    return seller.product(price=1250, stock=50)


def listing(sku: str, amount: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": "Gold mug",
        "description": "",
        "category": "kitchen",
        "price": {"amount": amount, "currency": "CNY"},
    }


@pytest.mark.parametrize("amount", [10**20, 2**63, 2**63 - 1, 10**12 + 1, 0, -5, 12.5, "100"])
def test_a_price_out_of_bounds_is_422_and_nothing_is_stored(
    seller: Seller, db: psycopg.Connection, amount: Any
):
    sku = f"HOSTILE-{uuid.uuid4().hex[:12]}"
    answer = seller.post("/v1/products", listing(sku, amount))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    assert "price.amount" in answer.json()["error"]["message"]
    assert stored_mentions(db, sku) == 0


def test_the_largest_price_is_stored_and_reaches_the_catalogue(
    api: TestClient, seller: Seller, db: psycopg.Connection
):
    sku = f"TOP-{uuid.uuid4().hex[:12]}"
    answer = seller.post("/v1/products", listing(sku, 10**12))
    assert answer.status_code == 201, answer.text
    assert stored_mentions(db, sku) >= 1  # the count above sees what is stored
    product_id = answer.json()["product_id"]
    view = wait_until(
        lambda: (found := api.get(f"/v1/products/{product_id}")).status_code == 200 and found,
        message="the dearest product in the catalogue",
    )
    assert view.json()["price"]["amount"] == 10**12
    raised = seller.api.patch(
        f"/v1/products/{product_id}",
        json={"price": {"amount": 10**20, "currency": "CNY"}},
        headers=seller.headers,
    )
    assert raised.status_code == 422


def test_stock_beyond_its_bound_is_refused(seller: Seller, product_id: str):
    for quantity in (10**6 + 1, 2**63, 0):
        answer = seller.post(f"/v1/products/{product_id}/stock", {"quantity": quantity})
        assert answer.status_code == 422, answer.text


def test_a_whole_number_written_with_a_zero_fraction_counts_as_that_integer(
    seller: Seller, customer: Customer, product_id: str
):
    """The published schemas say "integer", and JSON Schema's integer includes 2.0; a
    fraction, a boolean or a numeric string is still refused."""
    stock = f"/v1/products/{product_id}/stock"
    before = seller.post(stock, {"quantity": 1}).json()["on_hand"]
    answer = seller.post(stock, {"quantity": 2.0})
    assert answer.status_code == 200, answer.text
    assert answer.json()["on_hand"] == before + 2
    for refused in (2.5, True, "2", float("1e7")):
        assert seller.post(stock, {"quantity": refused}).status_code == 422, refused
    other = seller.product()
    promoted = promotion(seller, other, percent_off=5.0, max_uses=10.0)
    assert promoted.status_code == 201, promoted.text
    assert promotion(seller, other, percent_off=5.5).status_code == 422
    listed = seller.post("/v1/products", listing(f"WHOLE-{uuid.uuid4().hex[:10]}", 1250.0))
    assert listed.status_code == 201, listed.text
    order = place_order(product_id)
    order["lines"][0]["quantity"] = 1.0
    placed = customer.post("/v1/orders", order)
    assert placed.status_code == 202, placed.text
    assert (
        customer.post(
            "/v1/orders", {**order, "lines": [{"product_id": product_id, "quantity": 1.5}]}
        ).status_code
        == 422
    )


def place_order(product_id: str) -> dict[str, Any]:
    return {
        "lines": [{"product_id": product_id, "quantity": 1}],
        "shipping_address": dict(ADDRESS),
        "payment": {"method": "card", "token": "tok_ok"},
    }


def commands(seller: Seller, product_id: str) -> dict[str, tuple[str, str, Callable[[], Any]]]:
    """Each command's (method, path, body builder); every string field gets poisoned below."""
    return {
        "register": (
            "POST",
            "/v1/users",
            lambda: {
                "email": f"user-{uuid.uuid4().hex[:12]}@example.com",
                "password": "correct horse",
                "display_name": "Ada",
                "role": "customer",
            },
        ),
        "login": (
            "POST",
            "/v1/auth/token",
            lambda: {"email": "ada@example.com", "password": "correct horse"},
        ),
        "list a product": (
            "POST",
            "/v1/products",
            lambda: {**listing(f"SKU-{uuid.uuid4().hex[:12]}", 100), "description": "Fine"},
        ),
        "change a product": (
            "PATCH",
            f"/v1/products/{product_id}",
            lambda: {"name": "Renamed", "description": "Finer", "category": "mugs"},
        ),
        "place an order": ("POST", "/v1/orders", lambda: place_order(product_id)),
    }


def string_fields(body: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(body, dict):
        return [
            found for key, value in body.items() for found in string_fields(value, (*path, key))
        ]
    if isinstance(body, list):
        return [found for i, value in enumerate(body) for found in string_fields(value, (*path, i))]
    return [path] if isinstance(body, str) else []


def poisoned(body: Any, path: tuple[Any, ...], marker: str, poison: str) -> Any:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    value = target[path[-1]]
    if path[-1] == "email":
        target[path[-1]] = value.replace("@", f"{marker}{poison}@")
    elif path[-1] in ("country", "currency", "method", "role"):
        target[path[-1]] = value[:-1] + poison
    else:
        target[path[-1]] = f"{value}{marker}{poison}"
    return body


@pytest.mark.parametrize("poison", ["\x00", "\x1b[31m", "\x7f", "\u0085"])
def test_control_characters_in_any_string_field_are_422_and_nothing_is_stored(
    api: TestClient,
    seller: Seller,
    customer: Customer,
    product_id: str,
    db: psycopg.Connection,
    poison: str,
):
    checked = 0
    for command, (method, path, build) in commands(seller, product_id).items():
        headers = customer.headers if command == "place an order" else seller.headers
        for field in string_fields(build()):
            marker = f"MARK{uuid.uuid4().hex[:10]}"
            body = poisoned(build(), field, marker, poison)
            answer = api.request(method, path, json=body, headers=headers)
            assert answer.status_code == 422, (command, field, answer.text)
            assert answer.json()["error"]["code"] == "invalid_input", (command, field)
            assert stored_mentions(db, marker) == 0, (command, field)
            checked += 1
    assert checked == 22  # every string field of the five commands
    # The same bodies unpoisoned are accepted: the refusals above are the poison's doing.
    for command, (method, path, build) in commands(seller, product_id).items():
        if command != "login":
            headers = customer.headers if command == "place an order" else seller.headers
            answer = api.request(method, path, json=build(), headers=headers)
            assert answer.status_code < 300, (command, answer.text)


def test_a_multi_line_description_is_accepted(seller: Seller):
    body = {**listing(f"SKU-{uuid.uuid4().hex[:12]}", 100), "description": "One\n\tTwo\r\n"}
    assert seller.post("/v1/products", body).status_code == 201


@pytest.mark.parametrize("poison", ["\x00", "\x01", "\n"])
def test_control_characters_in_any_query_are_422(
    api: TestClient, seller: Seller, customer: Customer, poison: str
):
    queries = [
        ("/v1/products", {"q": f"mug{poison}"}, {}),
        ("/v1/products", {"category": f"kitchen{poison}"}, {}),
        ("/v1/products", {"seller_id": f"{uuid.uuid4()}{poison}"}, {}),
        ("/v1/products", {"sort": f"price{poison}"}, {}),
        ("/v1/products", {"cursor": f"abc{poison}.def"}, {}),
        ("/v1/orders", {"status": f"pending{poison}"}, customer.headers),
        ("/v1/orders", {"cursor": f"a{poison}"}, customer.headers),
        ("/v1/sellers/me/sales", {"from": f"2026-01-01{poison}"}, seller.headers),
        ("/v1/sellers/me/sales/lines", {"cursor": f"{poison}"}, seller.headers),
    ]
    for path, params, headers in queries:
        answer = api.get(path, params=params, headers=headers)
        assert answer.status_code == 422, (path, params, answer.text)
        assert set(answer.json()["error"]) == {"code", "message"}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def tampered(good: str, other_sort: str, other_list: str) -> dict[str, str]:
    """Eight ways to tamper with a cursor this API handed out."""
    payload, signature = good.split(".")
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return {
        "bad base64": "%%%." + signature,
        "truncated": good[:-5],
        "wrong signature": f"{payload}.{'A' * len(signature)}",
        "edited fields": f"{b64(data.replace(b'[', b'[1,', 1))}.{signature}",
        "another sort order": other_sort,
        "another endpoint": other_list,
        "huge number": f"{b64(b'[' + b'9' * 40 + b']')}.{signature}",
        "nul byte": good + "\x00",
    }


def first_page_cursor(get: Callable[..., Any], path: str, **params: Any) -> str:
    answer = get(path, params={"limit": 1, **params})
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_cursor"], f"{path} needs two items for a cursor"
    return answer.json()["next_cursor"]


def test_every_tampered_cursor_is_422_invalid_cursor(
    api: TestClient, seller: Seller, customer: Customer, product_id: str
):
    second = seller.product(price=990, stock=5)
    for placed in (product_id, second):
        customer.place([(placed, 1)])
    wait_until(
        lambda: len(customer.get("/v1/orders").json()["items"]) >= 2,
        message="two orders in the read model",
    )
    wait_until(
        lambda: (
            len(api.get("/v1/products", params={"seller_id": seller.user_id}).json()["items"]) >= 2
        ),
        message="two products in the read model",
    )
    products = first_page_cursor(api.get, "/v1/products", seller_id=seller.user_id, sort="price")
    by_newest = first_page_cursor(api.get, "/v1/products", seller_id=seller.user_id)
    orders = first_page_cursor(
        lambda path, params: customer.api.get(path, params=params, headers=customer.headers),
        "/v1/orders",
    )
    lists = [
        ("/v1/products", {"seller_id": seller.user_id, "sort": "price"}, {}, products, by_newest),
        ("/v1/orders", {}, customer.headers, orders, products),
        ("/v1/sellers/me/sales/lines", {}, seller.headers, orders, products),
    ]
    for path, params, headers, good, other_list in lists:
        if path != "/v1/sellers/me/sales/lines":
            page = api.get(path, params={**params, "cursor": good}, headers=headers)
            assert page.status_code == 200, page.text  # the untouched cursor works
        for kind, cursor in tampered(good, by_newest, other_list).items():
            answer = api.get(path, params={**params, "cursor": cursor}, headers=headers)
            assert answer.status_code == 422, (path, kind, answer.text)
            assert answer.json()["error"]["code"] == "invalid_cursor", (path, kind, answer.text)
