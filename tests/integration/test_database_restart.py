"""PostgreSQL crashes and comes back while orders are placed: callers get 503 with
Retry-After while it is away, never a 500, and every order accepted with 202 completes;
the relay, the saga workers and the projections survive it (the very processes this
session started, with no supervisor to restart them)."""

from __future__ import annotations

import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from eventmart import database
from eventmart.settings import Settings
from tests.shop import Customer, Seller
from tests.support import WorkerProcess, wait_for_groups_to_join, wait_until

pytestmark = pytest.mark.slow

ACCEPTED = {"confirmed", "shipped", "delivered", "completed"}
DOWN_SECONDS = 4  # how long PostgreSQL stays away


def stacks() -> str:
    """Where every thread of this process is (the API runs in it), for a hang's report."""
    return "\n".join(
        f"--- {thread_id}\n" + "".join(traceback.format_stack(frame)[-12:])
        for thread_id, frame in sys._current_frames().items()
    )


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
        self.last: tuple[Any, ...] = (time.monotonic(), "nothing yet")

    def note(self, answer: Any) -> Any:
        self.statuses[answer.status_code] += 1
        self.last = (
            time.monotonic(),
            answer.request.method,
            answer.request.url.path,
            answer.status_code,
            answer.text[:200],
        )
        if answer.status_code == 503:
            self.unavailable.append(answer)
        elif answer.status_code >= 500:
            self.failures.append(f"{answer.request.method} {answer.request.url}: {answer.text}")
        return answer

    def run(self) -> None:
        try:
            self._orders()
        except Exception:  # noqa: BLE001 - what the API raised instead of answering
            self.failures.append(traceback.format_exc())

    def _orders(self) -> None:
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
    # Orders placed before the saga's groups consume would wait out their payment deadline.
    wait_for_groups_to_join(settings.bootstrap_servers, [worker.name for worker in survivors[1:]])
    seller = Seller(api)
    product_id = seller.product(stock=10_000)
    customers = [Customer(api) for _ in range(3)]
    loop = OrdersInALoop(api, customers, product_id)
    loop.start()
    try:
        wait_until(lambda: len(loop.accepted) >= 5, message="orders flowing before the crash")
        # The whole saga is at work (relay, participants, projections) before the crash.
        first_customer, first_order = loop.accepted[0]
        first_customer.wait_for(first_order, *ACCEPTED, timeout=60)
        database.crash_embedded(settings)
        crashed_at = time.monotonic()
        try:
            wait_until(
                lambda: len(loop.unavailable) >= 3 and time.monotonic() - crashed_at > DOWN_SECONDS,
                timeout=DOWN_SECONDS + 30,
                message=f"503s while PostgreSQL is away ({DOWN_SECONDS}s)",
            )
        except AssertionError as error:
            raise AssertionError(
                f"{error}; {loop.statuses}; {loop.last}; {loop.failures}\n{stacks()}"
            ) from None
        database.start_embedded(settings, durable=False)
        during = len(loop.accepted)
        try:
            wait_until(
                lambda: len(loop.accepted) >= during + 10,
                timeout=60,
                message="orders accepted again after the restart",
            )
        except AssertionError as error:
            last = loop.last
            raise AssertionError(
                f"{error}: {dict(loop.statuses)}, last answer {time.monotonic() - last[0]:.1f}s "
                f"ago: {last[1:]}; thread alive: {loop.is_alive()}; {loop.failures}\n{stacks()}"
            ) from None
    finally:
        loop.stopping.set()
        loop.join(60)

    print(f"answers: {dict(loop.statuses)}; accepted orders: {len(loop.accepted)}")
    assert not loop.failures, loop.failures[:5]
    for answer in loop.unavailable:
        assert answer.json()["error"]["code"] in ("service_unavailable", "not_yet_visible")
        assert int(answer.headers["Retry-After"]) >= 1
    assert any(a.json()["error"]["code"] == "service_unavailable" for a in loop.unavailable)

    def not_yet_confirmed() -> dict[str, Any]:
        views = {order_id: customer.view(order_id) for customer, order_id in loop.accepted}
        return {
            order_id: view and (view["status"], [step["type"] for step in view["timeline"]])
            for order_id, view in views.items()
            if view is None or view["status"] not in ACCEPTED
        }

    try:
        wait_until(
            lambda: not not_yet_confirmed(),
            timeout=120,
            interval=0.5,
            message="every accepted order confirmed",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; still: {not_yet_confirmed()}") from None
    dead = [worker.name for worker in survivors if not worker.running]
    assert not dead, f"did not survive the restart: {dead}"
    wait_until(
        lambda: api.get("/readyz").status_code == 200, timeout=60, message="/readyz ready again"
    )


def test_a_pooled_connection_the_server_closed_is_replaced_not_failed_on(settings: Settings, db):
    from eventmart.database import make_pool

    pool = make_pool(settings.dsn, min_size=1, max_size=1, timeout=5)
    try:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))  # as a restart does to them all
        wait_until(
            lambda: (
                not db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            ),
            message="the backend gone",
        )
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != pid
    finally:
        pool.close()
