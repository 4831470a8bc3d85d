"""The saga survives its workers dying: while 1,000 orders run, one saga worker at a time
is killed with SIGKILL and restarted, again and again. Afterwards every order is terminal,
no reservation is open, stock and money are conserved, and no effect happened twice."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from eventmart.wiring import build_applications
from tests.shop import TERMINAL, Customer, Seller
from eventmart.broker import consumer_groups
from tests.support import WorkerProcess, wait_for_quiet, wait_until

ORDERS = 1000
STOCK_PER_PRODUCT = 180  # 5 products: 900 units for ~1,000 orders, so some are rejected
TOKENS = ["tok_ok"] * 8 + ["tok_declined", "tok_timeout"]


@pytest.fixture(scope="module")
def shop(api: TestClient, saga_workers, catalog_projection, orders_projection) -> TestClient:
    return api


def events_by_type(db: psycopg.Connection, table: str, order_ids: list[str]) -> Counter[tuple[str, str]]:
    """(order id, event class) -> how many such events the context stored."""
    stored_ids = [uuid.UUID(order_id).hex for order_id in order_ids]  # stored as uuid_hex
    rows = db.execute(
        f"SELECT topic, convert_from(state, 'UTF8')::jsonb -> 'order_id' ->> '_data_' FROM {table} "
        "WHERE convert_from(state, 'UTF8')::jsonb -> 'order_id' ->> '_data_' = ANY(%s)",
        (stored_ids,)).fetchall()
    return Counter((order_id, topic) for topic, order_id in rows)


def test_killing_saga_workers_loses_and_duplicates_nothing(
    shop: TestClient, settings: Settings, saga_workers: dict[str, WorkerProcess], db: psycopg.Connection
):
    seller = Seller(shop)
    products = [seller.product(price=100 * (n + 1), stock=STOCK_PER_PRODUCT) for n in range(5)]
    customers = [Customer(shop) for _ in range(20)]
    rng = random.Random(11)
    plan = [(customers[n % 20], rng.choice(products), rng.choice(TOKENS)) for n in range(ORDERS)]

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
            placed = list(pool.map(lambda step: (step[0], step[0].place([(step[1], 1)], token=step[2]), step[1]),
                                   plan))
        # Keep killing while the saga works through the backlog.
        wait_until(lambda: len(kills) >= 8, timeout=120, interval=0.5, message="several kills")
    finally:
        stop_chaos.set()
        killer.join()
    for worker in saga_workers.values():
        if not worker.running:
            worker.start()

    print(f"placed {len(placed)} orders at {time.monotonic() - started:.1f}s; kills so far: {len(kills)}")
    finals = {order_id: customer.wait_for(order_id, *TERMINAL, timeout=300)
              for customer, order_id, _ in placed}
    print(f"all terminal at {time.monotonic() - started:.1f}s")
    saga_groups = {group: topics for group, topics in consumer_groups().items() if group in saga_workers}
    wait_for_quiet(settings, saga_groups)
    finals = {order_id: customer.view(order_id) for customer, order_id, _ in placed}
    print(f"quiet at {time.monotonic() - started:.1f}s")
    order_ids = list(finals)
    statuses = Counter(view["status"] for view in finals.values())
    assert sum(statuses.values()) == ORDERS and set(statuses) <= TERMINAL, statuses

    applications = build_applications(settings, pool_size=4)
    try:
        # Every reservation is committed, released or failed: none is left open.
        for order_id in order_ids:
            reservation = applications.inventory.find_reservation(uuid.UUID(order_id))
            assert reservation is not None and reservation.status in ("committed", "released", "failed"), \
                (order_id, reservation and reservation.status, finals[order_id]["status"])
        # Stock is conserved: what was received is on the shelf or sold, nothing held.
        completed_units = Counter(product for _, order_id, product in placed
                                  if finals[order_id]["status"] == "completed")
        for product in products:
            stock = applications.inventory.get_stock(uuid.UUID(product))
            assert stock.reserved == 0
            assert stock.on_hand + stock.sold == STOCK_PER_PRODUCT
            assert stock.sold == completed_units[product]
        # Money is conserved: captured - refunded = totals of orders that went through.
        payments = [applications.payments.find_payment(uuid.UUID(order_id)) for order_id in order_ids]
        captured = sum(p.amount for p in payments if p is not None and p.status in ("captured", "refunded"))
        refunded = sum(p.amount for p in payments if p is not None and p.status == "refunded")
        confirmed_totals = sum(view["total"] for view in finals.values() if view["status"] == "completed")
        assert captured - refunded == confirmed_totals
    finally:
        for application in applications.all():
            application.close()

    # No effect twice: one charge, one hold, one shipment per order, whatever was redelivered.
    payment_events = events_by_type(db, "payments_events", order_ids)
    assert max(payment_events.values()) == 1, payment_events.most_common(3)
    stock_events = events_by_type(db, "inventory_events", order_ids)
    assert max(stock_events.values()) == 1, stock_events.most_common(3)
    shipping_events = events_by_type(db, "shipping_events", order_ids)
    assert max(shipping_events.values()) == 1, shipping_events.most_common(3)
    assert len(kills) >= 8 and set(kills) > {kills[0]}
