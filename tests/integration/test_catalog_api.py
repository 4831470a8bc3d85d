"""Catalogue and stock over HTTP: sellers list and restock, anyone browses the read model
the catalog projection builds from catalog.events and inventory.events."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from domain.stock import Stock
from tests.support import wait_until

# Every test here reads what the catalog projection wrote.
pytestmark = pytest.mark.usefixtures("catalog_projection")


class Headers(dict[str, str]):
    """Authorization headers that also remember whose they are."""

    user_id: str


def user_headers(api: TestClient, role: str) -> Headers:
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    answer = api.post(
        "/v1/users",
        json={
            "email": email,
            "password": "correct horse",
            "display_name": role.title(),
            "role": role,
        },
    )
    assert answer.status_code == 201, answer.text
    token = api.post("/v1/auth/token", json={"email": email, "password": "correct horse"})
    headers = Headers(Authorization=f"Bearer {token.json()['access_token']}")
    headers.user_id = answer.json()["user_id"]
    return headers


def product_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": f"SKU-{uuid.uuid4().hex[:10]}",
        "name": "Blue mug",
        "description": "Stoneware, 350 ml",
        "category": "kitchen",
        "price": {"amount": 4900, "currency": "CNY"},
    }
    body.update(overrides)
    return body


def create(api: TestClient, headers: dict[str, str], **overrides: Any) -> str:
    answer = api.post("/v1/products", json=product_body(**overrides), headers=headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["product_id"])


def detail_when(api: TestClient, product_id: str, check: Any, message: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        answer = api.get(f"/v1/products/{product_id}")
        return answer.json() if answer.status_code == 200 and check(answer.json()) else None

    return wait_until(probe, timeout=30, message=message)


def test_seller_lists_changes_and_restocks_a_product(api: TestClient):
    seller = user_headers(api, "seller")
    body = product_body()
    answer = api.post("/v1/products", json=body, headers=seller)
    assert answer.status_code == 201, answer.text
    product_id = answer.json()["product_id"]

    shown = detail_when(api, product_id, lambda p: True, "product.created in the read model")
    assert shown == {
        **shown,
        "product_id": product_id,
        "sku": body["sku"].upper(),
        "name": "Blue mug",
        "description": "Stoneware, 350 ml",
        "category": "kitchen",
        "seller_id": seller.user_id,
        "price": {"amount": 4900, "currency": "CNY"},
        "stock": {"on_hand": 0, "reserved": 0, "available": 0},
        "rating": {
            "average": None,
            "count": 0,
            "bayesian_average": None,
            "histogram": dict.fromkeys("12345", 0),
        },
    }

    changed = api.patch(
        f"/v1/products/{product_id}",
        headers=seller,
        json={"name": "Big blue mug", "price": {"amount": 3900, "currency": "CNY"}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["price"] == {"amount": 3900, "currency": "CNY"}
    assert changed.json()["name"] == "Big blue mug"
    detail_when(
        api,
        product_id,
        lambda p: p["price"]["amount"] == 3900 and p["name"] == "Big blue mug",
        "the new price and name in the read model",
    )

    received = api.post(f"/v1/products/{product_id}/stock", json={"quantity": 5}, headers=seller)
    assert received.status_code == 200, received.text
    assert received.json() == {"on_hand": 5}
    again = api.post(f"/v1/products/{product_id}/stock", json={"quantity": 3}, headers=seller)
    assert again.json() == {"on_hand": 8}
    shown = detail_when(
        api, product_id, lambda p: p["stock"]["on_hand"] == 8, "stock in the read model"
    )
    assert shown["stock"] == {"on_hand": 8, "reserved": 0, "available": 8}
    assert shown["price"]["amount"] == 3900  # stock events do not touch catalogue columns


def test_sku_is_unique_and_only_sellers_list(api: TestClient):
    seller = user_headers(api, "seller")
    body = product_body()
    assert api.post("/v1/products", json=body, headers=seller).status_code == 201
    duplicate = api.post(
        "/v1/products",
        json={**body, "sku": body["sku"].lower()},
        headers=user_headers(api, "seller"),
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "sku_taken"

    customer = api.post("/v1/products", json=product_body(), headers=user_headers(api, "customer"))
    assert customer.status_code == 403
    assert api.post("/v1/products", json=product_body()).status_code == 401


def test_same_idempotency_key_lists_once(api: TestClient):
    seller = user_headers(api, "seller")
    body = product_body()
    key = {"Idempotency-Key": f"create-{body['sku']}"}
    first = api.post("/v1/products", json=body, headers={**seller, **key})
    second = api.post("/v1/products", json=body, headers={**seller, **key})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()


def test_only_the_owning_seller_changes_a_product_or_its_stock(api: TestClient):
    owner, other = user_headers(api, "seller"), user_headers(api, "seller")
    product_id = create(api, owner)
    patched = api.patch(f"/v1/products/{product_id}", json={"name": "Mine now"}, headers=other)
    assert patched.status_code == 403
    assert patched.json()["error"]["code"] == "not_product_owner"
    stocked = api.post(f"/v1/products/{product_id}/stock", json={"quantity": 1}, headers=other)
    assert stocked.status_code == 403
    by_customer = api.patch(
        f"/v1/products/{product_id}", json={"name": "X"}, headers=user_headers(api, "customer")
    )
    assert by_customer.status_code == 403
    unknown = api.patch(f"/v1/products/{uuid.uuid4()}", json={"name": "X"}, headers=owner)
    assert unknown.status_code == 404
    assert api.get(f"/v1/products/{uuid.uuid4()}").status_code == 404


def test_bad_input_is_422(api: TestClient):
    seller = user_headers(api, "seller")
    for bad in (
        {"price": {"amount": 0, "currency": "CNY"}},
        {"price": {"amount": -5, "currency": "CNY"}},
        {"price": {"amount": "12.50", "currency": "CNY"}},
        {"price": {"amount": 100, "currency": "USD"}},
        {"name": ""},
        {"unexpected": True},
    ):
        answer = api.post("/v1/products", json=product_body(**bad), headers=seller)
        assert answer.status_code == 422, (bad, answer.text)
        assert "error" in answer.json()
    assert api.post("/v1/products", json={"sku": "X"}, headers=seller).status_code == 422
    product_id = create(api, seller)
    for quantity in (0, -1, 1.5, "3"):
        answer = api.post(
            f"/v1/products/{product_id}/stock", json={"quantity": quantity}, headers=seller
        )
        assert answer.status_code == 422, (quantity, answer.text)
    assert (
        api.patch(f"/v1/products/{product_id}", json={"sku": "NEW"}, headers=seller).status_code
        == 422
    )
    assert api.get("/v1/products", params={"sort": "cheapest"}).status_code == 422
    assert api.get("/v1/products", params={"limit": 101}).status_code == 422
    bad_cursor = api.get("/v1/products", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["error"]["code"] == "invalid_cursor"


def test_browse_filters_searches_sorts_and_pages(api: TestClient):
    category = f"cat-{uuid.uuid4().hex[:8]}"
    word = f"word{uuid.uuid4().hex[:8]}"
    alice, bob = user_headers(api, "seller"), user_headers(api, "seller")
    cheap = create(api, alice, category=category, price={"amount": 1000, "currency": "CNY"})
    middle = create(
        api,
        bob,
        category=category,
        price={"amount": 2000, "currency": "CNY"},
        description=f"hand thrown {word} glaze",
    )
    dear = create(
        api,
        alice,
        category=category,
        price={"amount": 3000, "currency": "CNY"},
        name=f"Teapot {word}",
    )

    def ids(**params: Any) -> list[str]:
        answer = api.get("/v1/products", params={"category": category, **params})
        assert answer.status_code == 200, answer.text
        return [item["product_id"] for item in answer.json()["items"]]

    wait_until(lambda: len(ids()) == 3, timeout=30, message="three products in the category")
    assert ids() == [dear, middle, cheap]  # newest first by default
    assert ids(sort="price") == [cheap, middle, dear]
    assert ids(sort="-price") == [dear, middle, cheap]
    assert set(ids(sort="rating")) == {cheap, middle, dear}
    assert ids(seller_id=bob.user_id) == [middle]
    assert sorted(ids(q=word)) == sorted([middle, dear])
    assert ids(q=f"{word} teapot") == [dear]
    assert ids(category=f"{category}-none") == []

    for sort, expected in (
        ("price", [cheap, middle, dear]),
        ("-price", [dear, middle, cheap]),
        ("newest", [dear, middle, cheap]),
    ):
        first = api.get(
            "/v1/products", params={"category": category, "sort": sort, "limit": 2}
        ).json()
        assert [item["product_id"] for item in first["items"]] == expected[:2]
        assert first["next_cursor"]
        second = api.get(
            "/v1/products",
            params={"category": category, "sort": sort, "limit": 2, "cursor": first["next_cursor"]},
        ).json()
        assert [item["product_id"] for item in second["items"]] == expected[2:]
        assert second["next_cursor"] is None
    price_cursor = api.get(
        "/v1/products", params={"category": category, "sort": "price", "limit": 1}
    ).json()["next_cursor"]
    wrong_sort = api.get("/v1/products", params={"sort": "newest", "cursor": price_cursor})
    assert wrong_sort.status_code == 422


def stored_event_names(
    db: psycopg.Connection, table: str, aggregate_id: uuid.UUID | str
) -> list[str]:
    """What the event store holds for one aggregate, oldest first."""
    rows = db.execute(
        f"SELECT topic FROM {table} WHERE originator_id = %s ORDER BY originator_version",
        (str(aggregate_id),),
    ).fetchall()
    return [topic.rsplit(".", 1)[-1] for (topic,) in rows]


def stock_events(db: psycopg.Connection, product_id: str) -> list[str]:
    return stored_event_names(db, "inventory_events", Stock.create_id(uuid.UUID(product_id)))


def all_at_once(count: int, send: Callable[[], Any]) -> list[Any]:
    """`count` identical requests released together, as racing client retries are."""
    start = threading.Barrier(count)

    def racer() -> Any:
        start.wait()
        return send()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: racer(), range(count)))


def test_create_with_a_reused_key_and_another_body_is_422_and_lists_nothing(api: TestClient):
    seller = user_headers(api, "seller")
    body = product_body()
    key = {**seller, "Idempotency-Key": f"create-{uuid.uuid4()}"}
    assert api.post("/v1/products", json=body, headers=key).status_code == 201
    for changed in ({**body, "name": "Red mug"}, product_body()):
        answer = api.post("/v1/products", json=changed, headers=key)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "idempotency_key_reused"
    other_sku = product_body()
    refused = api.post("/v1/products", json=other_sku, headers=key)
    assert refused.json()["error"]["code"] == "idempotency_key_reused"
    create(api, seller, sku=other_sku["sku"])  # the refused request did not claim its SKU
    taken = api.post("/v1/products", json=body, headers={**seller, "Idempotency-Key": "another"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "sku_taken"


def test_racing_creates_with_one_key_list_one_product(api: TestClient, db: psycopg.Connection):
    seller = user_headers(api, "seller")
    body = product_body()
    key = {**seller, "Idempotency-Key": f"create-{uuid.uuid4()}"}
    answers = all_at_once(4, lambda: api.post("/v1/products", json=body, headers=key))
    assert {answer.status_code for answer in answers} == {201}, [a.text for a in answers]
    [product_id] = {answer.json()["product_id"] for answer in answers}
    assert stored_event_names(db, "catalog_events", product_id) == ["Created"]


def test_same_key_receives_stock_once(api: TestClient, db: psycopg.Connection):
    seller = user_headers(api, "seller")
    product_id = create(api, seller)
    stock = f"/v1/products/{product_id}/stock"
    key = {**seller, "Idempotency-Key": f"receive-{uuid.uuid4()}"}
    first = api.post(stock, json={"quantity": 5}, headers=key)
    again = api.post(stock, json={"quantity": 5}, headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert first.json() == again.json() == {"on_hand": 5}
    assert api.post(stock, json={"quantity": 3}, headers=seller).json() == {"on_hand": 8}
    late_retry = api.post(stock, json={"quantity": 5}, headers=key)
    assert late_retry.json() == {"on_hand": 5}  # the first answer, stored nothing
    shown = detail_when(
        api, product_id, lambda p: p["stock"]["on_hand"] == 8, "5 and 3 received, the retries not"
    )
    assert shown["stock"] == {"on_hand": 8, "reserved": 0, "available": 8}
    assert stock_events(db, product_id) == ["Registered", "Received", "Received"]


def test_same_key_with_another_receipt_is_422_and_stores_nothing(
    api: TestClient, db: psycopg.Connection
):
    seller = user_headers(api, "seller")
    product_id, other_product = create(api, seller), create(api, seller)
    key = {**seller, "Idempotency-Key": f"receive-{uuid.uuid4()}"}
    assert api.post(
        f"/v1/products/{product_id}/stock", json={"quantity": 5}, headers=key
    ).json() == {"on_hand": 5}
    for path, quantity in ((product_id, 6), (other_product, 5)):
        answer = api.post(f"/v1/products/{path}/stock", json={"quantity": quantity}, headers=key)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "idempotency_key_reused"
    assert stock_events(db, product_id) == ["Registered", "Received"]
    assert stock_events(db, other_product) == ["Registered"]
    detail_when(api, product_id, lambda p: p["stock"]["on_hand"] == 5, "the first receipt")
    assert api.get(f"/v1/products/{other_product}").json()["stock"]["on_hand"] == 0


def test_racing_receipts_with_one_key_receive_once(api: TestClient, db: psycopg.Connection):
    seller = user_headers(api, "seller")
    product_id = create(api, seller)
    key = {**seller, "Idempotency-Key": f"receive-{uuid.uuid4()}"}
    answers = all_at_once(
        4, lambda: api.post(f"/v1/products/{product_id}/stock", json={"quantity": 7}, headers=key)
    )
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"on_hand": 7})] * 4
    assert stock_events(db, product_id) == ["Registered", "Received"]
    detail_when(api, product_id, lambda p: p["stock"]["on_hand"] == 7, "one receipt of 7")


def test_same_key_changes_a_product_once(api: TestClient, db: psycopg.Connection):
    seller = user_headers(api, "seller")
    product_id = create(api, seller)
    path = f"/v1/products/{product_id}"
    key = {**seller, "Idempotency-Key": f"change-{uuid.uuid4()}"}
    first = api.patch(path, json={"name": "Big blue mug"}, headers=key)
    assert first.status_code == 200, first.text
    assert api.patch(path, json={"name": "Huge blue mug"}, headers=seller).status_code == 200
    retry = api.patch(path, json={"name": "Big blue mug", "price": None}, headers=key)
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json() and first.json()["version"] == 2
    reused = api.patch(path, json={"name": "Small blue mug"}, headers=key)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert stored_event_names(db, "catalog_events", product_id) == ["Created", "Updated", "Updated"]
    detail_when(api, product_id, lambda p: p["name"] == "Huge blue mug", "the later change kept")


def test_idempotency_keys_are_1_to_255_characters(api: TestClient):
    seller = user_headers(api, "seller")
    product_id = create(api, seller)
    for key in ("", "k" * 256):
        answer = api.post(
            f"/v1/products/{product_id}/stock",
            json={"quantity": 1},
            headers={**seller, "Idempotency-Key": key},
        )
        assert answer.status_code == 422, answer.text
    longest = {**seller, "Idempotency-Key": "k" * 255}
    assert api.post(
        f"/v1/products/{product_id}/stock", json={"quantity": 1}, headers=longest
    ).json() == {"on_hand": 1}


def test_every_command_declares_the_idempotency_key(api: TestClient):
    paths = api.get("/openapi.json").json()["paths"]
    commands = [
        ("/v1/users", "post"),
        ("/v1/products", "post"),
        ("/v1/products/{product_id}", "patch"),
        ("/v1/products/{product_id}/stock", "post"),
        ("/v1/orders", "post"),
        ("/v1/orders/{order_id}/cancel", "post"),
        ("/v1/orders/{order_id}/confirm-receipt", "post"),
    ]
    for path, method in commands:
        headers = [
            parameter["name"]
            for parameter in paths[path][method].get("parameters", [])
            if parameter["in"] == "header"
        ]
        assert "Idempotency-Key" in headers, (method, path)
