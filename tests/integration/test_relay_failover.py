"""Two relays against one platform: one holds the PostgreSQL advisory lock and publishes,
the other waits as a hot standby. SIGKILL the active one while orders are placed: the
standby takes the lock and publishes within seconds, from the saved position, so every
event reaches consumers (each applied once) and no aggregate's events are reordered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from tests.saga_invariants import (
    PlacedOrder,
    assert_published_in_aggregate_order,
    assert_saga_invariants,
    settle,
)
from tests.shop import plan_orders
from tests.support import WorkerProcess, child_env, dead_letter_marks, wait_until

ORDERS = 240
STOCK_PER_PRODUCT = 60  # 300 units for 240 orders
TOKENS = ["tok_ok"] * 9 + ["tok_declined"]
TAKEOVER_SECONDS = 15.0  # poll interval 1 s; generous for a shared machine

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def standby(settings: Settings, worker_logs: Path, relay: WorkerProcess) -> Iterator[WorkerProcess]:
    second = WorkerProcess("relay-standby", ["relay"], child_env(settings), worker_logs).start()
    yield second
    second.stop()


@pytest.fixture(scope="module")
def shop(
    settings: Settings, saga_workers, catalog_projection, orders_projection, api
) -> Iterator[TestClient]:
    from api.main import create_app

    with TestClient(create_app(settings)) as client:
        yield client


def active_relay(db: psycopg.Connection) -> tuple[int, float]:
    """(pid, seconds since it beat) of the relay that holds the lock."""
    row = db.execute(
        "SELECT pid, extract(epoch FROM now() - alive_at) FROM relay_heartbeat "
        "WHERE relay = 'active'"
    ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


def test_the_standby_relay_takes_over_when_the_active_one_is_killed(
    shop: TestClient,
    settings: Settings,
    relay: WorkerProcess,
    standby: WorkerProcess,
    db: psycopg.Connection,
):
    relays = {p.process.pid: p for p in (relay, standby) if p.process is not None}
    # Both run; one beats as the active relay, the other waits on the lock.
    wait_until(
        lambda: (pid := active_relay(db)[0]) in relays and active_relay(db)[1] < 3 and pid,
        timeout=60,
        message="one of the two relays active",
    )
    plan = plan_orders(shop, ORDERS, stock_per_product=STOCK_PER_PRODUCT, tokens=TOKENS)
    parked_before = dead_letter_marks(settings.bootstrap_servers)
    placed: list[PlacedOrder] = []
    halfway = threading.Event()

    def place(step: tuple) -> None:
        customer, product, token = step
        placed.append(PlacedOrder(customer.place([(product, 1)], token=token), product, token))
        if len(placed) >= ORDERS // 2:
            halfway.set()

    with ThreadPoolExecutor(max_workers=4) as pool:
        placing = pool.map(place, plan)
        assert halfway.wait(300), "orders flowing"
        victim_pid = active_relay(db)[0]
        victim = relays[victim_pid]
        heir = next(p for pid, p in relays.items() if pid != victim_pid)
        killed_at = db.execute("SELECT now()").fetchone()[0]
        victim.kill()
        started = time.monotonic()

        def heir_published() -> bool:
            pid, _ = active_relay(db)
            moved = db.execute(
                "SELECT count(*) FROM relay_positions WHERE updated_at > %s", (killed_at,)
            ).fetchone()[0]
            return pid == heir.process.pid and moved > 0  # type: ignore[union-attr]

        wait_until(heir_published, timeout=60, interval=0.1, message="the standby publishing")
        took = time.monotonic() - started
        print(f"the standby published {took:.1f}s after the active relay was killed")
        list(placing)
    victim.start()  # back as the standby: the session's later tests keep two relays' worth
    assert took < TAKEOVER_SECONDS, f"takeover took {took:.1f}s"

    finals = settle(settings, db, [order.order_id for order in placed])
    assert len(finals) == ORDERS
    assert_saga_invariants(settings, db, placed, finals, STOCK_PER_PRODUCT, parked_before)
    ours = {order.order_id for order in placed}
    copies = assert_published_in_aggregate_order(settings, "orders.events", ours)
    print(f"orders.events: {copies} copies re-published after the takeover, none out of order")
