"""The saga survives its workers dying: while 1,000 orders run, one saga worker at a time
is killed with SIGKILL and restarted, again and again. Afterwards every order is terminal,
no reservation is open, stock and money are conserved, and no effect happened twice."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from tests.saga_invariants import assert_saga_invariants, settle
from tests.shop import plan_orders
from tests.support import WorkerProcess, wait_until

ORDERS = 1000
STOCK_PER_PRODUCT = 180  # 5 products: 900 units for ~1,000 orders, so some are rejected
TOKENS = ["tok_ok"] * 8 + ["tok_declined", "tok_timeout"]


@pytest.fixture(scope="module")
def shop(api: TestClient, saga_workers, catalog_projection, orders_projection) -> TestClient:
    return api


def test_killing_saga_workers_loses_and_duplicates_nothing(
    shop: TestClient,
    settings: Settings,
    saga_workers: dict[str, WorkerProcess],
    db: psycopg.Connection,
):
    plan = plan_orders(shop, ORDERS, stock_per_product=STOCK_PER_PRODUCT, tokens=TOKENS)

    stop_chaos = threading.Event()
    kills: list[str] = []

    def chaos() -> None:
        chaos_rng = random.Random(5)
        while not stop_chaos.is_set():
            stop_chaos.wait(chaos_rng.uniform(1.0, 3.0))
            name = chaos_rng.choice(sorted(saga_workers))
            saga_workers[name].kill()
            kills.append(name)
            saga_workers[name].start()

    killer = threading.Thread(target=chaos)
    started = time.monotonic()
    killer.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            placed = list(
                pool.map(
                    lambda step: (step[0], step[0].place([(step[1], 1)], token=step[2]), step[1]),
                    plan,
                )
            )
        # Keep killing while the saga works through the backlog.
        wait_until(lambda: len(kills) >= 8, timeout=120, interval=0.5, message="several kills")
    finally:
        stop_chaos.set()
        killer.join()
    for worker in saga_workers.values():
        if not worker.running:
            worker.start()

    print(
        f"placed {len(placed)} orders at {time.monotonic() - started:.1f}s; kills so far: {len(kills)}"
    )
    orders = [(order_id, product) for _, order_id, product in placed]
    finals = settle(settings, db, [order_id for order_id, _ in orders])
    print(f"all terminal and quiet at {time.monotonic() - started:.1f}s")
    assert len(finals) == ORDERS
    assert_saga_invariants(settings, db, orders, finals, STOCK_PER_PRODUCT)
    assert len(kills) >= 8 and set(kills) > {kills[0]}
