"""The saga survives the death of the one process that runs it: `eventmart worker sagas`
hosts all four participants, and while 1,000 orders run it is killed with SIGKILL and
restarted, again and again. Afterwards every order is terminal, stock and money are
conserved, nothing was applied twice or parked, and every order paid with `tok_ok` that
stock could cover went through."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from eventmart.wiring import SAGA_PARTICIPANTS
from tests.saga_invariants import PlacedOrder, assert_saga_invariants, settle
from tests.shop import plan_orders
from tests.support import (
    WorkerProcess,
    child_env,
    dead_letter_marks,
    group_members,
    stop_all,
    wait_until,
)

ORDERS = 1000
STOCK_PER_PRODUCT = 180  # 5 products: 900 units for ~1,000 orders, so some are rejected
TOKENS = ["tok_ok"] * 8 + ["tok_declined", "tok_timeout"]
KILLS = 8

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def patient(settings: Settings) -> Settings:
    """Deadlines far beyond the outages the kills cause: an order that waits through them is
    late, not abandoned (tok_timeout orders are cancelled at settle time, see below)."""
    return settings.model_copy(
        update={"payment_timeout_seconds": 120, "reservation_ttl_seconds": 600}
    )


@pytest.fixture(scope="module")
def sagas(
    patient: Settings,
    worker_logs: Path,
    saga_workers: dict[str, WorkerProcess],
) -> Iterator[WorkerProcess]:
    """One `worker sagas` process in place of the four single-group ones, which step aside
    for this module and come back after it."""
    stop_all(list(saga_workers.values()))
    host = WorkerProcess("sagas", ["worker", "sagas"], child_env(patient), worker_logs).start()
    yield host
    host.stop()
    for worker in saga_workers.values():
        worker.start()


@pytest.fixture(scope="module")
def shop(
    patient: Settings, sagas: WorkerProcess, catalog_projection, orders_projection, api
) -> Iterator[TestClient]:
    from api.main import create_app

    with TestClient(create_app(patient)) as client:
        yield client


class Chaos:
    """Kills the process, restarts it, and waits until the new process owns every saga
    group (the killed member's session has expired) and has worked a moment, then again."""

    def __init__(self, host: WorkerProcess, settings: Settings) -> None:
        self.host, self.bootstrap = host, settings.bootstrap_servers
        self.kills = 0
        self.stopping = threading.Event()
        self.rng = random.Random(5)
        self.thread = threading.Thread(target=self._run, name="chaos")

    def _owns_every_group(self, before: dict[str, frozenset[str]]) -> bool:
        for group in SAGA_PARTICIPANTS:
            state, members = group_members(self.bootstrap, group)
            if state != "Stable" or len(members) != 1 or members & before.get(group, frozenset()):
                return False
        return True

    def _run(self) -> None:
        before: dict[str, frozenset[str]] = {}
        while not self.stopping.is_set():
            while not self.stopping.is_set() and not self._owns_every_group(before):
                self.stopping.wait(0.3)
            if self.stopping.wait(self.rng.uniform(0.5, 2.5)):
                return
            before = {group: group_members(self.bootstrap, group)[1] for group in SAGA_PARTICIPANTS}
            self.host.kill()
            self.kills += 1
            self.host.start()

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()
        if not self.host.running:
            self.host.start()


def test_killing_the_one_saga_process_loses_and_duplicates_nothing(
    shop: TestClient,
    patient: Settings,
    sagas: WorkerProcess,
    db: psycopg.Connection,
):
    plan = plan_orders(shop, ORDERS, stock_per_product=STOCK_PER_PRODUCT, tokens=TOKENS)
    parked_before = dead_letter_marks(patient.bootstrap_servers)

    started = time.monotonic()
    with Chaos(sagas, patient) as chaos, ThreadPoolExecutor(max_workers=8) as pool:
        placed = list(
            pool.map(
                lambda step: (step[0].place([(step[1], 1)], token=step[2]), step[1], step[2]),
                plan,
            )
        )
        print(f"placed {ORDERS} orders at {time.monotonic() - started:.1f}s; kills: {chaos.kills}")
        # Keep killing while the saga works through the backlog.
        wait_until(
            lambda: chaos.kills >= KILLS,
            timeout=max(1.0, 400 - (time.monotonic() - started)),
            interval=0.5,
            message=f"{KILLS} kills of the saga process",
        )

    orders = [PlacedOrder(order_id, product, token) for order_id, product, token in placed]
    # tok_timeout orders wait for their (patient) payment deadline: 120 s.
    finals = settle(patient, db, [order.order_id for order in orders])
    print(f"all terminal and quiet at {time.monotonic() - started:.1f}s, {chaos.kills} kills")
    assert len(finals) == ORDERS
    # Per order: the outcome its token and stock dictate, every event applied exactly once,
    # stock and money conserved, nothing about these orders parked.
    assert_saga_invariants(patient, db, orders, finals, STOCK_PER_PRODUCT, parked_before)

    # Every tok_ok order went through, unless stock could not cover it.
    reasons = dict(
        db.execute(
            "SELECT order_id::text, reason FROM orders_view WHERE order_id = ANY(%s::uuid[])",
            ([order.order_id for order in orders],),
        ).fetchall()
    )
    paid = [order_id for order_id, _, token in placed if token == "tok_ok"]
    outcomes = Counter((finals[o]["status"], reasons[o]) for o in paid)
    assert set(outcomes) <= {("completed", None), ("rejected", "insufficient_stock")}, outcomes
    assert outcomes[("completed", None)] > len(paid) // 2, outcomes
