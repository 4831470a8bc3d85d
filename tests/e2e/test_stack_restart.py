"""The local stack as a user runs it: `eventmart up` (its own ports and state directory,
short saga clocks through the environment), a whole order over plain HTTP from placing to
`completed`, Ctrl-C, `eventmart up` again — the order, its buyer and the Kafka log are
still there, and the relay carries on."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from eventmart.broker import port_open
from eventmart.settings import PROJECT_ROOT
from tests.support import free_port, read_envelopes, wait_until

STATE = PROJECT_ROOT / ".eventmart" / "e2e"
# Four free ports, chosen once: PostgreSQL, Kafka, its controller, the API.
POSTGRES_PORT = free_port(4)
KAFKA_PORT, CONTROLLER_PORT, API_PORT = POSTGRES_PORT + 1, POSTGRES_PORT + 2, POSTGRES_PORT + 3
API = f"http://127.0.0.1:{API_PORT}"
KAFKA = f"127.0.0.1:{KAFKA_PORT}"


@pytest.fixture()
def stack_env() -> Iterator[dict[str, str]]:
    shutil.rmtree(STATE, ignore_errors=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update(
        {
            "EVENTMART_STATE_DIR": str(STATE),
            "EVENTMART_ENV": "test",
            "EVENTMART_BCRYPT_ROUNDS": "4",
            "EVENTMART_POSTGRES_PORT": str(POSTGRES_PORT),
            "EVENTMART_KAFKA_PORT": str(KAFKA_PORT),
            "EVENTMART_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
            "EVENTMART_API_PORT": str(API_PORT),
            # Whole orders in seconds: the carrier moves a step a second, delivered orders
            # complete two seconds later, timers look four times a second.
            "EVENTMART_CARRIER_STEP_SECONDS": "1",
            "EVENTMART_AUTO_COMPLETE_SECONDS": "2",
            "EVENTMART_SAGA_TIMER_SECONDS": "0.25",
            "EVENTMART_PAYMENT_TIMEOUT_SECONDS": "120",
        }
    )
    yield env


def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    STATE.mkdir(parents=True, exist_ok=True)
    log = open(STATE / "up.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints", "up", "--no-demo"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
    )
    wait_until(
        lambda: process.poll() is None and _ready(),
        timeout=180,
        interval=0.5,
        message=f"the stack to be ready (see {STATE / 'up.log'})",
    )
    return process


def _ready() -> bool:
    try:
        return httpx.get(f"{API}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert process.wait(timeout=90) == 0
    assert not port_open("127.0.0.1", API_PORT) and not port_open("127.0.0.1", KAFKA_PORT)
    assert not port_open("127.0.0.1", POSTGRES_PORT)


def me(token: str) -> httpx.Response:
    return httpx.get(f"{API}/v1/users/me", headers=bearer(token))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_up(email: str, role: str) -> tuple[str, str]:
    """(user id, access token) of a new user, once the read model knows them."""
    credentials = {"email": email, "password": "correct horse"}
    created = httpx.post(
        f"{API}/v1/users", json={**credentials, "display_name": role.title(), "role": role}
    )
    assert created.status_code == 201, created.text
    token = httpx.post(f"{API}/v1/auth/token", json=credentials).json()["access_token"]
    wait_until(lambda: me(token).status_code == 200, timeout=60, message=f"the {role} readable")
    return created.json()["user_id"], token


def order_status(order_id: str, token: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{API}/v1/orders/{order_id}", headers=bearer(token))
    return answer.json() if answer.status_code == 200 else None


def test_an_order_completes_on_a_stack_started_as_a_user_does_and_survives_a_restart(
    stack_env: dict[str, str],
):
    tag = uuid.uuid4().hex[:8]
    process = start(stack_env)
    try:
        buyer_id, buyer = sign_up(f"buyer-{tag}@example.com", "customer")
        _, seller = sign_up(f"seller-{tag}@example.com", "seller")
        product = httpx.post(
            f"{API}/v1/products",
            headers=bearer(seller),
            json={
                "sku": f"E2E-{tag}",
                "name": "Enamel mug",
                "description": "A blue enamel mug",
                "category": "kitchen",
                "price": {"amount": 1250, "currency": "CNY"},
            },
        )
        assert product.status_code == 201, product.text
        product_id = product.json()["product_id"]
        stocked = httpx.post(
            f"{API}/v1/products/{product_id}/stock", headers=bearer(seller), json={"quantity": 3}
        )
        assert stocked.status_code == 200, stocked.text
        placed = httpx.post(
            f"{API}/v1/orders",
            headers=bearer(buyer),
            json={
                "lines": [{"product_id": product_id, "quantity": 2}],
                "shipping_address": {
                    "name": "Ada",
                    "line1": "1 Analytical Row",
                    "city": "London",
                    "postal_code": "N1 7AA",
                    "country": "GB",
                },
                "payment": {"method": "card", "token": "tok_ok"},
            },
        )
        assert placed.status_code == 202 and placed.json()["status"] == "pending", placed.text
        order_id = placed.json()["order_id"]
        completed = wait_until(
            lambda: (
                (order := order_status(order_id, buyer))
                and order["status"] == "completed"
                and order
            ),
            timeout=180,
            interval=0.5,
            message=f"order {order_id} to complete",
        )
        assert completed["total"] == {"amount": 2500, "currency": "CNY"}
        assert {"order.placed", "payment.captured", "shipment.delivered", "order.completed"} <= {
            entry["type"] for entry in completed["timeline"]
        }
    finally:
        stop(process)

    process = start(stack_env)
    try:
        again = order_status(order_id, buyer)  # the old token: same secret, not expired
        assert again is not None and again["status"] == "completed"
        assert again["timeline"] == completed["timeline"]
        assert me(buyer).json()["user_id"] == buyer_id
        placed_events = [
            e for e in read_envelopes(KAFKA, "orders.events") if str(e.aggregate_id) == order_id
        ]
        # kept, and not re-published after a clean restart: one copy of each of its events
        assert len(placed_events) == len({e.event_id for e in placed_events}) >= 6
        later, _ = sign_up(f"after-{tag}@example.com", "customer")
        wait_until(
            lambda: any(
                str(e.aggregate_id) == later for e in read_envelopes(KAFKA, "users.events")
            ),
            timeout=60,
            message="the relay to resume after restart",
        )
    finally:
        stop(process)
