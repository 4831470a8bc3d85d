"""The saga survives its workers dying: while 1,000 orders run (a third with a coupon), one saga worker at a time
is killed with SIGKILL and restarted, again and again (each next kill once the last one's
replacement consumes, so the saga moves on between kills even on a busy machine). Afterwards every order ended as its
payment token and the stock dictate, every consumed event was applied and no effect twice,
no reservation is open, stock and money are conserved, and nothing was parked."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from tests.integration.test_pricing_api import coupon
from tests.saga_invariants import PlacedOrder, assert_saga_invariants, settle, unpaid
from tests.shop import Customer, Seller
from tests.support import (
    WorkerProcess,
    dead_letter_marks,
    group_members,
    wait_for_replacement,
    wait_until,
)

ORDERS = 1000
STOCK_PER_PRODUCT = 180  # 5 products: 900 units for ~1,000 orders, so some are rejected
TOKENS = ["tok_ok"] * 8 + ["tok_declined", "tok_timeout"]
# Orders placed and not yet past payment: placing faster only queues orders, and a queue
# behind a killed worker is what a payment deadline is for.
IN_FLIGHT = 80
CHUNK = 20


@pytest.fixture(scope="module")
def shop(
    patient_api: TestClient, saga_workers, catalog_projection, orders_projection
) -> TestClient:
    return patient_api


def test_killing_saga_workers_loses_and_duplicates_nothing(
    shop: TestClient,
    settings: Settings,
    saga_workers: dict[str, WorkerProcess],
    db: psycopg.Connection,
):
    parked_before = dead_letter_marks(settings.bootstrap_servers)
    seller = Seller(shop)
    products = [seller.product(price=100 * (n + 1), stock=STOCK_PER_PRODUCT) for n in range(5)]
    customers = [Customer(shop) for _ in range(20)]
    code = coupon(seller, percent_off=10, total_uses=ORDERS, per_user_uses=ORDERS).json()["code"]
    rng = random.Random(11)
    plan = [
        (customers[n % 20], rng.choice(products), rng.choice(TOKENS), code if n % 3 == 0 else None)
        for n in range(ORDERS)
    ]

    stop_chaos = threading.Event()
    kills: list[str] = []

    def chaos() -> None:
        chaos_rng = random.Random(5)
        while not stop_chaos.wait(chaos_rng.uniform(1.0, 3.0)):
            name = chaos_rng.choice(sorted(saga_workers))
            _, killed = group_members(settings.bootstrap_servers, name)
            saga_workers[name].kill()
            kills.append(name)
            saga_workers[name].start()
            wait_for_replacement(settings.bootstrap_servers, name, killed)

    def place(step: tuple[Customer, str, str, str | None]) -> PlacedOrder:
        customer, product, token, coupon_code = step
        body = {**customer.order_body([(product, 1)], token=token), "coupon_code": coupon_code}
        answer = customer.post("/v1/orders", body)
        assert answer.status_code == 202, answer.text
        return PlacedOrder(answer.json()["order_id"], product, token, coupon_code=coupon_code)

    killer = threading.Thread(target=chaos)
    started = time.monotonic()
    placed: list[PlacedOrder] = []
    killer.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for start in range(0, ORDERS, CHUNK):
                wait_until(
                    lambda: unpaid(db, [o.order_id for o in placed]) <= IN_FLIGHT - CHUNK,
                    timeout=180,
                    interval=0.2,
                    message="the saga to take the orders in flight",
                )
                placed.extend(pool.map(place, plan[start : start + CHUNK]))
        # Keep killing while the saga works through the backlog.
        wait_until(lambda: len(kills) >= 8, timeout=400, interval=0.5, message="several kills")
    finally:
        stop_chaos.set()
        killer.join()
    for worker in saga_workers.values():
        if not worker.running:
            worker.start()

    print(
        f"placed {len(placed)} orders at {time.monotonic() - started:.1f}s; kills so far: {len(kills)}"
    )
    finals = settle(settings, db, [order.order_id for order in placed])
    print(f"all terminal and quiet at {time.monotonic() - started:.1f}s")
    assert len(finals) == ORDERS
    assert_saga_invariants(settings, db, placed, finals, STOCK_PER_PRODUCT, parked_before)
    assert len(kills) >= 8 and set(kills) > {kills[0]}
