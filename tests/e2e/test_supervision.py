"""`eventmart up` keeps itself up: while orders stream in over HTTP, the broker, then
PostgreSQL, then the API, then a worker host are SIGKILLed, and nothing outside the stack
restarts them. Each comes back by itself (the supervisor's restart count says so),
readiness goes red and then green each time, and every accepted order ends as its token
and the stock say."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.e2e.stack_support import OrderStream, UpStack
from tests.saga_invariants import assert_saga_invariants, settle
from tests.support import dead_letter_marks

RATE = 3.0  # orders per second, for as long as the sequence of kills takes
MOST_ORDERS = 1200
STOCK = 200  # per product, 3 products: enough for most, not all on a slow machine

pytestmark = pytest.mark.timeout(900)


@pytest.fixture()
def stack() -> Iterator[UpStack]:
    up = UpStack("supervision")
    up.start()
    yield up
    up.stop()


def test_every_process_the_stack_started_comes_back_by_itself(stack: UpStack):
    settings = stack.settings()
    marks = dead_letter_marks(settings.bootstrap_servers)
    stream = OrderStream(stack.api, rate=RATE, total=MOST_ORDERS, stock=STOCK)
    stream.start()
    stream.wait_for(10)
    said = {}
    for name in ("kafka", "postgres", "api", "sagas"):
        before = stack.kill(name)
        said[name] = stack.red_then_green()
        stack.wait_restarted(name, before)
        print(f"{name} killed: readiness said {said[name]}")
        stream.wait_for(len(stream.placed) + 5)
    stream.stop()
    assert not stream.failures, stream.failures[:3]
    print(
        f"{len(stream.placed)} accepted; {stream.refused()} placements refused (503 or no answer), "
        f"longest refusal {stream.longest_refusal():.1f}s"
    )
    assert "kafka" in said["kafka"] and "database" in said["postgres"]
    assert "sagas" in said["sagas"]  # the supervisor's state names the dead host

    with psycopg.connect(settings.dsn, autocommit=True) as db:
        finals = settle(settings, db, [order.order_id for order in stream.placed])
        assert_saga_invariants(settings, db, stream.placed, finals, STOCK, marks)
    processes = stack.processes()
    assert all(p["state"] == "running" and p["health"] == "up" for p in processes.values())
    assert {name: processes[name]["restarts"] for name in said} == dict.fromkeys(said, 1)
