"""Demo data for `eventmart up`: sellers, products with stock and customers, created
through the HTTP API like any client, and the curl commands to try an order."""

from __future__ import annotations

import threading
import time

import httpx
from rich.console import Console

from eventmart.settings import Settings

console = Console(stderr=True)
PASSWORD = "demo-password"

DEMO_USERS = [
    {"email": "seller@entrypoints.demo", "display_name": "Demo Seller", "role": "seller"},
    {"email": "alice@entrypoints.demo", "display_name": "Alice", "role": "customer"},
    {"email": "bob@entrypoints.demo", "display_name": "Bob", "role": "customer"},
]
DEMO_PRODUCTS = [
    {
        "sku": "DEMO-MUG",
        "name": "Enamel mug",
        "description": "A blue enamel camping mug",
        "category": "kitchen",
        "price": {"amount": 4900, "currency": "CNY"},
        "stock": 50,
    },
    {
        "sku": "DEMO-TEAPOT",
        "name": "Clay teapot",
        "description": "Yixing clay teapot, 200 ml",
        "category": "kitchen",
        "price": {"amount": 25800, "currency": "CNY"},
        "stock": 10,
    },
    {
        "sku": "DEMO-LAMP",
        "name": "Desk lamp",
        "description": "Warm LED desk lamp with a clamp",
        "category": "home",
        "price": {"amount": 12900, "currency": "CNY"},
        "stock": 25,
    },
]


def _token(client: httpx.Client, email: str) -> dict[str, str]:
    answer = client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def seed(settings: Settings, base_url: str) -> threading.Thread:
    """Idempotent: users carry an Idempotency-Key and SKUs are unique, so a restart seeds
    nothing twice. Returns the thread that goes on to seed the reviews."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for user in DEMO_USERS:
            answer = client.post(
                "/v1/users",
                json={**user, "password": PASSWORD},
                headers={"Idempotency-Key": f"demo:{user['email']}"},
            )
            if answer.status_code not in (201, 409):
                console.print(
                    f"[red]seeding {user['email']} failed: {answer.status_code} {answer.text}[/]"
                )
        seller = _token(client, "seller@entrypoints.demo")
        for product in DEMO_PRODUCTS:
            body = {key: value for key, value in product.items() if key != "stock"}
            created = client.post("/v1/products", json=body, headers=seller)
            if created.status_code == 201:
                product_id = created.json()["product_id"]
                client.post(
                    f"/v1/products/{product_id}/stock",
                    json={"quantity": product["stock"]},
                    headers=seller,
                ).raise_for_status()
        product_id = _first_product(client)
    # Reviews need delivered orders: they follow in the background (entrypoints.demo_reviews).
    from entrypoints.demo_reviews import start_seeding_reviews

    reviews = start_seeding_reviews(base_url)
    console.print(
        "[green]Demo data:[/] seller@entrypoints.demo (seller), alice@entrypoints.demo and bob@entrypoints.demo "
        f"(customers), password {PASSWORD}; products DEMO-MUG, DEMO-TEAPOT, DEMO-LAMP.\n"
        "Place an order as Alice:\n"
        f"  TOKEN=$(curl -s -X POST {base_url}/v1/auth/token -H 'content-type: application/json' "
        f'-d \'{{"email":"alice@entrypoints.demo","password":"{PASSWORD}"}}\' '
        "| python3 -c 'import sys,json;print(json.load(sys.stdin)[\"access_token\"])')\n"
        f"  curl -s {base_url}/v1/products\n"
        f'  curl -s -X POST {base_url}/v1/orders -H "Authorization: Bearer $TOKEN" '
        '-H \'content-type: application/json\' -d \'{"lines":[{"product_id":"'
        f'{product_id or "<product_id>"}","quantity":1}}],"shipping_address":{{"name":"Alice",'
        '"line1":"1 Demo Road","city":"Shanghai","postal_code":"200000","country":"CN"},'
        '"payment":{"method":"card","token":"tok_ok"}}\'\n'
        f'  curl -s {base_url}/v1/orders/<order_id> -H "Authorization: Bearer $TOKEN"   '
        "# watch it go pending -> ... -> completed",
        soft_wrap=True,
    )
    return reviews


def _first_product(client: httpx.Client, timeout: float = 15) -> str | None:
    """The read model fills a moment after the commands; wait for it, briefly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get("/v1/products", params={"q": "mug"})
        if answer.status_code == 200 and answer.json()["items"]:
            return str(answer.json()["items"][0]["product_id"])
        time.sleep(0.2)
    return None
