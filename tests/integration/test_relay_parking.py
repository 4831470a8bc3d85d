"""One event must never stop the relay: an event it cannot publish, planted straight into
an outbox, is parked with its aggregate's later events held behind it, while orders keep
flowing; /readyz turns unready past the lag limit, and ready again once an operator
skips it or (after a fix) redrives it. On the real broker, database and relay."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Self
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from domain.catalog import Catalog, Product
from eventmart.relay_operations import request_redrive
from eventmart.settings import Settings
from eventmart.wiring import build_application
from tests.conftest import make_test_settings
from tests.shop import Customer, Seller
from tests.support import WorkerProcess, read_envelopes, wait_until
from workers.outbox import Encoded, encode
from workers.relay import Relay

MAX_LAG_SECONDS = 3


@pytest.fixture(scope="module")
def shop(api: TestClient, saga_workers, catalog_projection, orders_projection) -> TestClient:
    return api


@pytest.fixture(scope="module")
def strict(shop: TestClient) -> Iterator[TestClient]:
    """An API that calls the platform unready after a few seconds of relay lag."""
    with TestClient(create_app(make_test_settings(relay_max_lag_seconds=MAX_LAG_SECONDS))) as app:
        yield app


@pytest.fixture(scope="module")
def admin(shop: TestClient) -> dict[str, str]:
    services = shop.app.state.services
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    services.applications.users.create_admin(email, services.hasher.hash("operator pw"), "Ops")
    token = shop.post("/v1/auth/token", json={"email": email, "password": "operator pw"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def product_events(catalog: Catalog) -> tuple[UUID, list[Any]]:
    """A product's first two stored events (created, price changed), not yet stored."""
    product = Product.create(
        uuid.uuid4(), f"SKU-{uuid.uuid4().hex[:10]}", "P", "", "x", 1000, "CNY"
    )
    product.update(product.seller_id, price_amount=2000)
    return product.id, [catalog.mapper.to_stored_event(e) for e in product.collect_events()]


def plant_unpublishable_product(settings: Settings) -> UUID:
    """Straight into the catalogue's outbox, past the API: a product created at a price
    of 10^20 (JSON on the bus cannot carry it), and a valid price change after it."""
    catalog = build_application(Catalog, settings, pool_size=1)
    try:
        product_id, (created, price_changed) = product_events(catalog)
        poisoned = created.state.replace(
            b'"price_amount":1000', b'"price_amount":' + b"1" + b"0" * 20
        )
        assert poisoned != created.state
        catalog.recorder.insert_events([replace(created, state=poisoned), price_changed])
    finally:
        catalog.close()
    return product_id


def dead_letters(db: psycopg.Connection, aggregate_id: UUID) -> list[dict[str, Any]]:
    cursor = db.execute(
        "SELECT notification_id, aggregate_version, held_behind, status, requested, tries, "
        "error_type FROM relay_dead_letters WHERE aggregate_id = %s ORDER BY notification_id",
        (aggregate_id,),
    )
    columns = [column.name for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def on_the_bus(settings: Settings, aggregate_id: UUID) -> list[int]:
    """The versions of the aggregate's events on catalog.events, in topic order."""
    return [
        e.aggregate_version
        for e in read_envelopes(settings.bootstrap_servers, "catalog.events")
        if e.aggregate_id == aggregate_id
    ]


def readiness(strict: TestClient) -> tuple[int, dict[str, Any]]:
    answer = strict.get("/readyz")
    return answer.status_code, answer.json()


def test_an_unpublishable_event_is_parked_while_orders_flow_until_skipped(
    shop, strict, admin, settings, db, eventmart_cli
):
    cli = eventmart_cli
    wait_until(lambda: readiness(strict)[0] == 200, timeout=60, message="a ready platform first")
    product_id = plant_unpublishable_product(settings)
    parked = wait_until(
        lambda: len(rows := dead_letters(db, product_id)) == 2 and rows,
        timeout=30,
        message="the planted event parked and its successor held",
    )
    head, held = parked
    assert head["aggregate_version"] == 1 and head["status"] == "parked"
    assert head["tries"] == settings.relay_max_tries and head["held_behind"] is None
    assert held["aggregate_version"] == 2 and held["held_behind"] == head["notification_id"]

    # The relay moved on: an order (its product created through the same outbox) completes.
    seller, customer = Seller(shop), Customer(shop)
    order_id = customer.place([(seller.product(stock=5), 1)])
    customer.wait_for(order_id, "confirmed", "shipped", "delivered", "completed")
    assert on_the_bus(settings, product_id) == []  # neither the poison nor what it holds back

    _, ready = wait_until(
        lambda: (r := readiness(strict))[0] == 503 and r,
        timeout=MAX_LAG_SECONDS + 30,
        message="/readyz to turn unready past the lag limit",
    )
    assert ready["checks"]["relay"].startswith("not ready")
    assert ready["relay"]["parked"] >= 2 and ready["relay"]["alive"] is True
    assert ready["relay"]["oldest_unpublished_age_seconds"] > MAX_LAG_SECONDS

    listed = shop.get("/v1/ops/dlq", params={"group": "relay", "limit": 100}, headers=admin)
    assert listed.status_code == 200, listed.text
    [relay_group] = listed.json()["items"]
    assert relay_group["group"] == "relay" and relay_group["pending"] >= 2
    mine = {m["notification_id"]: m for m in relay_group["messages"] if m["key"] == str(product_id)}
    assert mine[head["notification_id"]]["application"] == "Catalog"
    assert mine[head["notification_id"]]["error_type"] == head["error_type"]
    assert mine[held["notification_id"]]["held_behind"] == head["notification_id"]
    detail = shop.get(
        f"/v1/ops/dlq/relay/{head['notification_id']}",
        params={"application": "Catalog"},
        headers=admin,
    )
    assert detail.status_code == 200 and "Traceback" in detail.json()["error_trace"]
    shown = cli("ops", "dlq", "list", "relay", "--show").output
    assert str(product_id) in shown
    metrics = wait_until(
        lambda: (
            (text := strict.get("/metrics", headers=admin).text)
            and 'group="relay"' in text
            and text
        ),
        timeout=30,
        message="relay dead letters in /metrics",
    )
    assert 'eventmart_dlq_pending{group="relay"}' in metrics
    assert 'eventmart_outbox_parked{application="Catalog"}' in metrics

    # A redrive without a fix: the relay tries once more, and it stays parked.
    redriven = shop.post(
        "/v1/ops/dlq/relay/redrive", params={"application": "Catalog"}, headers=admin
    )
    assert redriven.status_code == 202 and redriven.json()["redriven"] >= 2
    wait_until(
        lambda: dead_letters(db, product_id)[0]["tries"] == settings.relay_max_tries + 1,
        message="the relay to try the redriven event again",
    )

    def acted_on() -> list[dict[str, Any]] | None:
        rows = dead_letters(db, product_id)
        return rows if all(row["requested"] is None for row in rows) else None

    head, held = wait_until(acted_on, message="the relay to act on the redrive")
    assert head["status"] == held["status"] == "parked"
    assert on_the_bus(settings, product_id) == []

    # No fix can make 10^20 fit: skip it. What it held back follows.
    skipped = cli(
        "ops",
        "dlq",
        "skip",
        "relay",
        "--application",
        "Catalog",
        "--notification-id",
        str(head["notification_id"]),
    )
    assert json.loads(skipped.stdout) == {"group": "relay", "skipped": 1}
    head, held = wait_until(
        lambda: (rows := dead_letters(db, product_id))[1]["status"] != "parked" and rows,
        message="the held event released",
    )
    assert (head["status"], held["status"]) == ("skipped", "redriven")
    assert wait_until(lambda: on_the_bus(settings, product_id), message="the held event") == [2]
    wait_until(lambda: readiness(strict)[0] == 200, timeout=30, message="/readyz ready again")
    missing = shop.post(
        "/v1/ops/dlq/relay/skip",
        params={"application": "Catalog", "notification_id": head["notification_id"]},
        headers=admin,
    )
    assert missing.status_code == 404  # it is not parked any more


class RelayInThisProcess:
    """The real relay, run here with a catalogue encoder that fails for one aggregate until
    told it is fixed (as a deployed fix would make it)."""

    def __init__(self, settings: Settings, broken: UUID) -> None:
        self.settings, self.broken, self.fixed = settings, broken, False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.relay: Relay | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()))

    def encode(self, application: Any, notification: Any) -> Encoded:
        encoded = encode(application, notification)
        if encoded.aggregate_id == self.broken and not self.fixed:
            return replace(encoded, key=None, value=None, error=RuntimeError("a bug, fixed later"))
        return encoded

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.relay = await asyncio.to_thread(Relay.build, self.settings)
        for outbox in self.relay.outboxes:
            outbox.encoder = self.encode
        self.started.set()
        await self.relay.run()

    def __enter__(self) -> Self:
        self.thread.start()
        assert self.started.wait(60)
        return self

    def __exit__(self, *_: object) -> None:
        assert self.loop is not None and self.relay is not None
        self.loop.call_soon_threadsafe(self.relay.stop)
        self.thread.join(60)
        for outbox in self.relay.outboxes:
            outbox.application.close()


def test_after_a_fix_a_redrive_publishes_the_parked_event_then_those_held_behind_it(
    shop, settings, db, relay: WorkerProcess
):
    seller = uuid.uuid4()
    product = Product.create(seller, f"SKU-{uuid.uuid4().hex[:10]}", "Lamp", "", "home", 100, "CNY")
    product.update(seller, price_amount=200)
    product.update(seller, name="Desk lamp")
    catalog = build_application(Catalog, settings, pool_size=1)
    assert relay.stop(), relay.log_tail()  # this test's relay takes over the outboxes
    try:
        with RelayInThisProcess(settings, broken=product.id) as local:
            catalog.save(product)  # versions 1 to 3; the first cannot be encoded yet
            rows = wait_until(
                lambda: len(found := dead_letters(db, product.id)) == 3 and found,
                message="version 1 parked, 2 and 3 held behind it",
            )
            assert [r["held_behind"] for r in rows] == [None, *[rows[0]["notification_id"]] * 2]
            assert on_the_bus(settings, product.id) == []

            local.fixed = True  # the fix is deployed
            with psycopg.connect(settings.dsn, autocommit=True) as conn:
                assert request_redrive(conn, "Catalog", rows[0]["notification_id"]) == 1
            wait_until(
                lambda: [r["status"] for r in dead_letters(db, product.id)] == ["redriven"] * 3,
                message="the parked event and those behind it redriven",
            )
            assert on_the_bus(settings, product.id) == [1, 2, 3]  # in order, each once
    finally:
        catalog.close()
        relay.start()
