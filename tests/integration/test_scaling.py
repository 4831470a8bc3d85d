"""Scaling a consumer group up and down under load loses and duplicates nothing: while
2,000 orders run, the inventory-saga group goes from 1 to 3 members (`eventmart worker
inventory-saga --replicas 2` beside the running one) and back to 1. Every rebalance moves
partitions mid-stream; afterwards every order ended as its token, the stock and its buyer
dictate, every consumed event was applied and no effect twice, no reservation is open,
stock and money are conserved, and nothing was parked."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from eventmart.wiring import SAGA_PARTICIPANTS
from tests.saga_invariants import PlacedOrder, assert_saga_invariants, settle, unpaid
from tests.shop import Customer, Seller
from tests.support import (
    WorkerProcess,
    child_env,
    dead_letter_marks,
    free_port,
    metric_value,
    scrape,
    wait_for_groups_to_join,
    wait_for_members,
    wait_until,
)

ORDERS = 2000
GROUP = "inventory-saga"
STOCK_PER_PRODUCT = (
    340  # 5 products: 1,700 units for 2,000 orders, so the last ones may be rejected
)
TOKENS = ["tok_ok"] * 9 + ["tok_declined"]
CANCEL_EVERY = (
    25  # the buyer cancels every 25th order a little later: before payment, after, or too late
)
# Orders placed and not yet past payment. The saga works through about 15 orders/s here;
# placing faster only queues orders behind the rebalances.
IN_FLIGHT = 60
CHUNK = 20
PHASE = ORDERS // 4  # orders placed on each side of each rebalance, at the least
STARTUP = 240  # seconds for two more worker processes to join, on a busy machine too

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shop(
    patient_api: TestClient,
    settings: Settings,
    saga_workers: dict[str, WorkerProcess],
    catalog_projection: WorkerProcess,
    orders_projection: WorkerProcess,
) -> TestClient:
    wait_for_groups_to_join(
        settings.bootstrap_servers, [*SAGA_PARTICIPANTS, "catalog-projection", "orders-projection"]
    )
    wait_for_members(settings.bootstrap_servers, GROUP, 1)
    return patient_api


class Load:
    """Places the planned orders in chunks, never more than IN_FLIGHT unpaid at once, and
    cancels some of them a couple of chunks later; runs in its own thread."""

    def __init__(self, shop: TestClient, settings: Settings) -> None:
        seller = Seller(shop)
        self.products = [
            seller.product(price=100 * (n + 1), stock=STOCK_PER_PRODUCT) for n in range(5)
        ]
        customers = [Customer(shop) for _ in range(20)]
        rng = random.Random(4)
        self.plan = [
            (customers[n % len(customers)], rng.choice(self.products), rng.choice(TOKENS))
            for n in range(ORDERS)
        ]
        self.settings = settings
        self.placed: list[tuple[Customer, str, str, str]] = []  # customer, order, product, token
        self.cancels: Counter[int] = Counter()
        self.cancelled: set[str] = set()  # orders whose buyer's cancel was accepted
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="load")

    def start(self) -> Load:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _place(self, step: tuple[Customer, str, str]) -> tuple[Customer, str, str, str]:
        customer, product, token = step
        return customer, customer.place([(product, 1)], token=token), product, token

    def _cancel(self, customer: Customer, order_id: str) -> None:
        answer = customer.post(f"/v1/orders/{order_id}/cancel")
        assert answer.status_code in (202, 409), answer.text  # 409 once shipped
        self.cancels[answer.status_code] += 1
        if answer.status_code == 202:
            self.cancelled.add(order_id)

    def orders(self) -> list[PlacedOrder]:
        return [
            PlacedOrder(order_id, product, token, cancelled_by_buyer=order_id in self.cancelled)
            for _, order_id, product, token in self.placed
        ]

    def _run(self) -> None:
        try:
            with (
                psycopg.connect(self.settings.dsn, autocommit=True) as db,
                ThreadPoolExecutor(max_workers=8) as pool,
            ):
                for start in range(0, ORDERS, CHUNK):
                    wait_until(
                        lambda: unpaid(db, [o for _, o, _, _ in self.placed]) <= IN_FLIGHT - CHUNK,
                        timeout=120,
                        interval=0.2,
                        message="the saga to take the orders in flight",
                    )
                    self.placed.extend(pool.map(self._place, self.plan[start : start + CHUNK]))
                    for index in range(max(0, start - 2 * CHUNK), max(0, start - CHUNK)):
                        if index % CANCEL_EVERY == 0:
                            customer, order_id, _, _ = self.placed[index]
                            self._cancel(customer, order_id)
        except BaseException as error:  # noqa: BLE001 - raised again in join()
            self.error = error


def stop_supervisor(supervisor: WorkerProcess) -> None:
    """SIGTERM: the supervisor stops both children, which leave the group, then exits."""
    if supervisor.running:
        assert supervisor.process is not None
        supervisor.terminate()
        try:
            supervisor.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            supervisor.kill()


def replicas_processed(port: int) -> float:
    """Events the inventory-saga replica serving metrics on `port` has handled."""
    body = scrape(port)
    sample = f'eventmart_events_processed_total{{group="{GROUP}"}}'
    if body is None or sample not in body.decode():
        return 0.0
    return metric_value(body.decode(), sample)


def test_scaling_the_inventory_group_up_and_down_under_load_loses_and_duplicates_nothing(
    shop: TestClient,
    settings: Settings,
    db: psycopg.Connection[Any],
    worker_logs: Path,
    saga_workers: dict[str, WorkerProcess],
) -> None:
    bootstrap = settings.bootstrap_servers
    parked_before = dead_letter_marks(settings.bootstrap_servers)
    load = Load(shop, settings)
    started = time.monotonic()
    marks: dict[str, float] = {}

    def placed_at_least(count: int) -> bool:
        if load.error is not None:
            raise load.error
        return len(load.placed) >= count

    load.start()
    port = free_port(count=3)
    extra = WorkerProcess(
        f"{GROUP}-extra-replicas",
        ["worker", GROUP, "--replicas", "2"],
        {**child_env(settings), "EVENTMART_WORKER_METRICS_PORT": str(port)},
        worker_logs,
    )
    try:
        wait_until(
            lambda: placed_at_least(PHASE),
            timeout=300,
            interval=0.5,
            message=f"{PHASE} orders placed",
        )
        marks["scale up"] = time.monotonic() - started
        extra.start()
        wait_for_members(bootstrap, GROUP, 3, timeout=STARTUP)
        marks["3 members"] = time.monotonic() - started
        at_three = len(load.placed)
        wait_until(
            lambda: placed_at_least(at_three + PHASE),
            timeout=300,
            interval=0.5,
            message=f"{PHASE} orders placed with 3 members",
        )
        # The new members took partitions and handled events, not only joined.
        assert replicas_processed(port) > 0 and replicas_processed(port + 1) > 0
        marks["scale down"] = time.monotonic() - started
    finally:
        stop_supervisor(extra)
    assert extra.process is not None and extra.process.returncode == 0, extra.log_tail()
    wait_for_members(bootstrap, GROUP, 1, timeout=STARTUP)
    marks["1 member"] = time.monotonic() - started
    at_one = len(load.placed)
    load.join()
    marks["all placed"] = time.monotonic() - started
    assert len(load.placed) - at_one >= PHASE // 2, "too few orders ran after scaling down"

    orders = load.orders()
    finals = settle(settings, db, [order.order_id for order in orders])
    marks["all terminal"] = time.monotonic() - started
    print(
        f"timeline (s): {marks}; statuses: {Counter(v['status'] for v in finals.values())}; "
        f"cancel answers: {dict(load.cancels)}"
    )
    assert len(finals) == ORDERS
    assert_saga_invariants(settings, db, orders, finals, STOCK_PER_PRODUCT, parked_before)
    assert Counter(v["status"] for v in finals.values())["completed"] > ORDERS // 2
    assert saga_workers[GROUP].running  # the group's first member lived through both rebalances
