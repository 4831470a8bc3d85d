"""A client of the HTTP API for scenario tests: the calls a shop and its customers make."""

from __future__ import annotations

import random
import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.support import wait_until

TERMINAL = {"completed", "cancelled", "rejected"}
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Analytical Row",
    "city": "London",
    "postal_code": "N1 7AA",
    "country": "GB",
}


class Shopper:
    """One registered user with a token."""

    def __init__(self, api: TestClient, role: str, display_name: str | None = None) -> None:
        self.api = api
        self.email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
        answer = api.post(
            "/v1/users",
            json={
                "email": self.email,
                "password": "correct horse",
                "display_name": display_name or role.title(),
                "role": role,
            },
        )
        assert answer.status_code == 201, answer.text
        self.user_id = answer.json()["user_id"]
        token = api.post("/v1/auth/token", json={"email": self.email, "password": "correct horse"})
        assert token.status_code == 200, token.text
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def post(self, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.api.post(path, json=body, headers={**self.headers, **headers})

    def get(self, path: str, **params: Any) -> Any:
        return self.api.get(path, params=params, headers=self.headers)


class Seller(Shopper):
    def __init__(self, api: TestClient) -> None:
        super().__init__(api, "seller")

    def product(
        self,
        *,
        price: int = 1250,
        stock: int = 10,
        category: str = "kitchen",
        name: str = "Enamel mug",
    ) -> str:
        answer = self.post(
            "/v1/products",
            {
                "sku": f"SKU-{uuid.uuid4().hex[:10]}",
                "name": name,
                "description": f"A fine {name.lower()}",
                "category": category,
                "price": {"amount": price, "currency": "CNY"},
            },
        )
        assert answer.status_code == 201, answer.text
        product_id = answer.json()["product_id"]
        if stock:
            received = self.post(f"/v1/products/{product_id}/stock", {"quantity": stock})
            assert received.status_code == 200, received.text
        return product_id


class Customer(Shopper):
    def __init__(self, api: TestClient, display_name: str | None = None) -> None:
        super().__init__(api, "customer", display_name)

    def order(
        self,
        lines: list[tuple[str, int]],
        token: str = "tok_ok",
        method: str = "card",
        idempotency_key: str | None = None,
        address: dict[str, str] | None = None,
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = self.order_body(lines, token, method, address)
        return self.post("/v1/orders", body, **headers)

    @staticmethod
    def order_body(
        lines: list[tuple[str, int]],
        token: str = "tok_ok",
        method: str = "card",
        address: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return {
            "lines": [
                {"product_id": product_id, "quantity": quantity} for product_id, quantity in lines
            ],
            "shipping_address": address or ADDRESS,
            "payment": {"method": method, "token": token},
        }

    def place(
        self,
        lines: list[tuple[str, int]],
        token: str = "tok_ok",
        method: str = "card",
        address: dict[str, str] | None = None,
    ) -> str:
        answer = self.order(lines, token, method, address=address)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "pending"
        return answer.json()["order_id"]

    def view(self, order_id: str) -> dict[str, Any] | None:
        answer = self.get(f"/v1/orders/{order_id}")
        return answer.json() if answer.status_code == 200 else None

    def wait_for(self, order_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        return wait_until(
            lambda: (view := self.view(order_id)) and view["status"] in statuses and view,
            timeout=timeout,
            interval=0.1,
            message=f"order {order_id} to reach {' or '.join(statuses)}",
        )


def visible_product(api: TestClient, product_id: str) -> dict[str, Any] | None:
    """The product view, or None while a just-listed product's read model catches up (503
    not_yet_visible: a lag, the answer to wait through)."""
    answer = api.get(f"/v1/products/{product_id}")
    if answer.status_code == 503 and answer.json()["error"]["code"] == "not_yet_visible":
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()


def product_view(api: TestClient, product_id: str) -> dict[str, Any]:
    answer = api.get(f"/v1/products/{product_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def plan_orders(
    shop: TestClient, orders: int, *, stock_per_product: int, tokens: list[str], seed: int = 11
) -> list[tuple[Customer, str, str]]:
    """A load test's orders: (customer, product, payment token) each, one unit of one of five
    products (priced 100..500, each stocked with `stock_per_product`), twenty customers."""
    seller = Seller(shop)
    products = [seller.product(price=100 * (n + 1), stock=stock_per_product) for n in range(5)]
    customers = [Customer(shop) for _ in range(20)]
    rng = random.Random(seed)
    return [(customers[n % 20], rng.choice(products), rng.choice(tokens)) for n in range(orders)]
