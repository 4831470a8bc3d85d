"""PostgreSQL crashes and comes back while orders are placed: callers get 503 with
Retry-After while it is away, never a 500, and every order accepted with 202 completes;
the relay, the saga workers and the projections survive it (the very processes this
session started, with no supervisor to restart them)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from eventmart import database
from eventmart.settings import Settings
from tests.shop import Customer, Seller
from tests.support import WorkerProcess, wait_until

pytestmark = pytest.mark.slow

ACCEPTED = {"confirmed", "shipped", "delivered", "completed"}
DOWN_SECONDS = 4  # how long PostgreSQL stays away


class OrdersInALoop(threading.Thread):
    """Customers placing orders (and reading them back) one after another. A 503 is
    retried with the same Idempotency-Key, as a client honouring Retry-After would."""

    def __init__(self, shop: TestClient, customers: list[Customer], product_id: str) -> None:
        super().__init__(daemon=True)
        self.shop, self.customers, self.product_id = shop, customers, product_id
        self.stopping = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.unavailable: list[httpx.Response] = []
        self.failures: list[str] = []
        self.accepted: list[tuple[Customer, str]] = []

    def note(self, answer: Any) -> Any:
        self.statuses[answer.status_code] += 1
        if answer.status_code == 503:
            self.unavailable.append(answer)
        elif answer.status_code >= 500:
            self.failures.append(f"{answer.request.method} {answer.request.url}: {answer.text}")
        return answer

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            customer = self.customers[n % len(self.customers)]
            key = f"restart-{uuid.uuid4().hex}"
            while True:
                placed = self.note(customer.order([(self.product_id, 1)], idempotency_key=key))
                if placed.status_code != 503:
                    break
                time.sleep(0.2)  # a client waiting out the outage (shortened Retry-After)
            if placed.status_code == 202:
                self.accepted.append((customer, placed.json()["order_id"]))
            self.note(customer.get("/v1/orders"))
            self.note(self.shop.get(f"/v1/products/{self.product_id}"))
            n += 1


def test_a_database_crash_is_503_while_it_lasts_and_every_accepted_order_completes(
    api: TestClient,
    settings: Settings,
    relay: WorkerProcess,
    saga_workers: dict[str, WorkerProcess],
    catalog_projection: WorkerProcess,
    orders_projection: WorkerProcess,
    users_projection: WorkerProcess,
):
    survivors = [
        relay,
        *saga_workers.values(),
        catalog_projection,
        orders_projection,
        users_projection,
    ]
    seller = Seller(api)
    product_id = seller.product(stock=10_000)
    customers = [Customer(api) for _ in range(3)]
    loop = OrdersInALoop(api, customers, product_id)
    loop.start()
    try:
        wait_until(lambda: len(loop.accepted) >= 5, message="orders flowing before the crash")
        # The whole saga is at work (relay, participants, projections) before the crash.
        first_customer, first_order = loop.accepted[0]
        first_customer.wait_for(first_order, *ACCEPTED, timeout=90)
        database.crash_embedded(settings)
        crashed_at = time.monotonic()
        wait_until(
            lambda: len(loop.unavailable) >= 3 and time.monotonic() - crashed_at > DOWN_SECONDS,
            timeout=DOWN_SECONDS + 30,
            message=f"503s while PostgreSQL is away ({DOWN_SECONDS}s)",
        )
        database.start_embedded(settings, durable=False)
        during = len(loop.accepted)
        wait_until(
            lambda: len(loop.accepted) >= during + 10,
            timeout=60,
            message="orders accepted again after the restart",
        )
    finally:
        loop.stopping.set()
        loop.join(60)

    print(f"answers: {dict(loop.statuses)}; accepted orders: {len(loop.accepted)}")
    assert not loop.failures, loop.failures[:5]
    for answer in loop.unavailable:
        assert answer.json()["error"]["code"] in ("service_unavailable", "not_yet_visible")
        assert int(answer.headers["Retry-After"]) >= 1
    assert any(a.json()["error"]["code"] == "service_unavailable" for a in loop.unavailable)

    for customer, order_id in loop.accepted:
        customer.wait_for(order_id, *ACCEPTED, timeout=90)
    dead = [worker.name for worker in survivors if not worker.running]
    assert not dead, f"did not survive the restart: {dead}"
    wait_until(
        lambda: api.get("/readyz").status_code == 200, timeout=60, message="/readyz ready again"
    )
