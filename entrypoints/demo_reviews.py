"""Demo reviews for `eventmart up`: Alice and Bob order demo products, and once the sandbox
carrier has delivered them (a few carrier steps: EVENTMART_CARRIER_STEP_SECONDS), review
them in Chinese and in English and the seller replies, so the demo products show ratings,
reviews and feedback. Through the HTTP API like any client, in a background thread (the
stack is usable meanwhile); every command carries an Idempotency-Key or is refused the
second time (409 already_reviewed), so a restart seeds nothing twice."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from rich.console import Console

console = Console(stderr=True)
PASSWORD = "demo-password"
ADDRESS = {
    "name": "Demo Buyer",
    "line1": "1 Demo Road",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}
# buyer -> (SKU, rating, seller_rating, title, body)
DEMO_REVIEWS: dict[str, list[tuple[str, int, int, str, str]]] = {
    "alice@entrypoints.demo": [
        ("DEMO-MUG", 5, 5, "好评", "杯子质量很好，做工精细，物流也很给力，第二天就到了！"),
        ("DEMO-TEAPOT", 3, 4, "一般般", "茶壶颜值不错，但是价格有点贵，性价比不高。"),
    ],
    "bob@entrypoints.demo": [
        ("DEMO-MUG", 4, 3, "Nice mug", "Solid mug and keeps coffee hot, but delivery was slow."),
        (
            "DEMO-LAMP",
            2,
            2,
            "Disappointed",
            "The clamp broke after two days and support never replied.",
        ),
    ],
}
DELIVERY_WAIT_SECONDS = 1200.0
POLL_SECONDS = 1.0


def _token(client: httpx.Client, email: str) -> dict[str, str]:
    answer = client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def demo_products(
    client: httpx.Client, seller: dict[str, str], timeout: float = 60
) -> dict[str, dict[str, Any]]:
    """The demo seller's products by SKU, once the catalogue's read model shows them all."""
    wanted = {sku for reviews in DEMO_REVIEWS.values() for sku, *_ in reviews}
    seller_id = client.get("/v1/users/me", headers=seller).json()["user_id"]
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get("/v1/products", params={"seller_id": seller_id, "limit": 100})
        answer.raise_for_status()
        found = {item["sku"]: item for item in answer.json()["items"]}
        if wanted <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _wait_for_delivery(client: httpx.Client, buyer: dict[str, str], order_id: str) -> bool:
    deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
    while time.monotonic() < deadline:
        answer = client.get(f"/v1/orders/{order_id}", headers=buyer)
        status = answer.json().get("status") if answer.status_code == 200 else None
        if status in ("delivered", "completed"):
            return True
        if status in ("cancelled", "rejected"):
            return False
        time.sleep(POLL_SECONDS)
    return False


def _review_when_verified(
    client: httpx.Client, buyer: dict[str, str], product_id: str, body: dict[str, Any]
) -> str | None:
    """The reviews context hears of the delivery a moment after the order shows it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.post(f"/v1/products/{product_id}/reviews", json=body, headers=buyer)
        if answer.status_code == 201:
            return str(answer.json()["review_id"])
        if answer.status_code != 403:  # 409 already_reviewed: seeded by an earlier run
            return None
        time.sleep(1)
    return None


def seed_reviews(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        seller = _token(client, "seller@entrypoints.demo")
        products = demo_products(client, seller)
        for email, reviews in DEMO_REVIEWS.items():
            buyer = _token(client, email)
            lines = [
                {"product_id": products[sku]["product_id"], "quantity": 1} for sku, *_ in reviews
            ]
            placed = client.post(
                "/v1/orders",
                json={
                    "lines": lines,
                    "shipping_address": ADDRESS,
                    "payment": {"method": "alipay", "token": "tok_ok"},
                },
                headers={**buyer, "Idempotency-Key": f"demo-reviews:{email}"},
            )
            placed.raise_for_status()
            if not _wait_for_delivery(client, buyer, placed.json()["order_id"]):
                console.print(f"[yellow]demo reviews: {email}'s order was not delivered[/]")
                continue
            for sku, rating, seller_rating, title, text in reviews:
                body = {
                    "rating": rating,
                    "seller_rating": seller_rating,
                    "title": title,
                    "body": text,
                }
                review_id = _review_when_verified(client, buyer, products[sku]["product_id"], body)
                if review_id and rating <= 3:
                    client.post(
                        f"/v1/reviews/{review_id}/reply",
                        json={"body": "感谢反馈，我们会改进。Thanks, we are on it."},
                        headers=seller,
                    )
    console.print("[green]Demo reviews seeded:[/] see GET /v1/products/<id>/reviews and /feedback")


def start_seeding_reviews(base_url: str) -> threading.Thread:
    """In the background: delivery takes a few carrier steps."""

    def run() -> None:
        try:
            seed_reviews(base_url)
        except (httpx.HTTPError, KeyError) as error:
            console.print(f"[yellow]demo reviews not seeded: {error!r}[/]")

    thread = threading.Thread(target=run, name="demo-reviews", daemon=True)
    thread.start()
    return thread
