"""The analyst tools on real traffic: rebuild and swap every read model, export the log to
Parquet, replay into a new group without moving live offsets, and time travel."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import orjson
import psycopg
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi.testclient import TestClient
from psycopg import sql

from entrypoints.replay import LiveGroup, replay
from entrypoints.timetravel import application_for, as_of, history
from eventmart.export import COLUMNS, EventFilter, export_events, partitions_of
from eventmart.groups import group_names
from eventmart.settings import PROJECT_ROOT, Settings
from eventmart.wiring import worker_names
from projections.rebuild import READ_MODELS, ShadowRebuild, find_model, tables_of
from tests.shop import ADDRESS, TERMINAL, Customer, Seller, product_view
from tests.support import child_env, read_envelopes, wait_for_groups_to_join, wait_for_quiet

GROUPS = {model.group: model.topics for model in READ_MODELS.values()}


@pytest.fixture(scope="module")
def shop(
    api: TestClient,
    settings: Settings,
    saga_workers,
    catalog_projection,
    orders_projection,
    sales_projection,
    review_workers,
) -> TestClient:
    # The groups this module runs (the recommender is not one of them).
    wait_for_groups_to_join(
        settings.bootstrap_servers, [*group_names("sagas"), *group_names("projections")]
    )
    return api


@pytest.fixture(scope="module")
def traffic(shop: TestClient, settings: Settings) -> dict:
    """Users registered through the API and orders run through the whole saga."""
    seller, customers = Seller(shop), [Customer(shop) for _ in range(3)]
    mug, plate = (
        seller.product(price=1250, stock=20),
        seller.product(price=800, stock=1, name="Plate"),
    )
    orders = [customer.place([(mug, 2)]) for customer in customers]
    orders.append(customers[0].place([(plate, 5)]))  # rejected: not enough stock
    buyers = dict(zip(orders, [*customers, customers[0]], strict=True))
    statuses = {
        order_id: buyers[order_id].wait_for(order_id, *TERMINAL)["status"] for order_id in orders
    }
    completed = [order_id for order_id, status in statuses.items() if status == "completed"]
    assert completed, f"no order completed (payment timeout is short): {statuses}"
    wait_for_quiet(settings, GROUPS)
    return {
        "seller": seller,
        "customers": customers,
        "orders": orders,
        "mug": mug,
        "plate": plate,
        "buyers": buyers,
        "statuses": statuses,
        "completed": completed[0],
        "mug_on_hand": product_view(shop, mug)["stock"]["on_hand"],
    }


def api_answers(shop: TestClient, traffic: dict) -> None:
    customer = traffic["customers"][0]
    assert customer.get("/v1/users/me").json()["user_id"] == customer.user_id
    assert product_view(shop, traffic["mug"])["stock"]["on_hand"] <= traffic["mug_on_hand"]
    for order_id, status in traffic["statuses"].items():
        assert traffic["buyers"][order_id].view(order_id)["status"] == status
    completed = sum(status == "completed" for status in traffic["statuses"].values())
    assert traffic["seller"].get("/v1/sellers/me/sales").json()["totals"]["orders"] >= completed


@pytest.mark.parametrize("name", ["users", "catalog", "orders", "sales"])
def test_rebuild_matches_the_live_model_then_swaps_in(name, shop, traffic, settings):
    model = find_model(name)
    progress: list[tuple[int, int]] = []

    async def scenario() -> tuple[dict, dict, dict]:
        async with ShadowRebuild(
            model,
            settings.dsn,
            settings.bootstrap_servers,
            on_progress=lambda done, total: progress.append((done, total)),
        ) as job:
            await job.build()
            shadow, live = job.rows(job.schema), job.rows("public")
            await job.swap()
            return shadow, live, job.rows("public")

    with psycopg.connect(settings.dsn, autocommit=True) as listener:
        for table in tables_of(model):
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(table)))
        shadow, live, swapped = asyncio.run(scenario())
        # Caches of the tables' rows (api.product_cache) hear that every row may have changed.
        announced = {
            (note.channel, note.payload)
            for note in listener.notifies(timeout=2)
            if note.payload == "*"
        }
    assert announced == {(table, "*") for table in tables_of(model)}
    assert all(rows for rows in live.values()), f"no traffic reached {name}"
    assert shadow == live
    assert swapped == live
    assert progress and progress[-1][0] == progress[-1][1] > 0
    api_answers(shop, traffic)


def test_live_worker_continues_into_the_swapped_tables(shop, traffic, settings):
    customer = traffic["customers"][1]
    model = find_model("orders")

    async def rebuild_during(order_placing) -> None:
        async with ShadowRebuild(model, settings.dsn, settings.bootstrap_servers) as job:
            await job.build()
            order_placing.result(timeout=60)  # traffic between build and swap
            await job.swap()

    with ThreadPoolExecutor(1) as pool:
        placing = pool.submit(customer.place, [(traffic["mug"], 1)])
        asyncio.run(rebuild_during(placing))
        order_id = placing.result()
    assert customer.wait_for(order_id, *TERMINAL)["total"] == {"amount": 1250, "currency": "CNY"}
    api_answers(shop, traffic)


def test_export_to_parquet_keeps_the_filtered_events(traffic, settings, tmp_path: Path):
    topics = ["orders.events", "payments.events"]
    since = datetime.now(UTC) - timedelta(hours=1)
    event_filter = EventFilter(frozenset({"order.placed", "payment.captured"}), since, None)
    result = asyncio.run(
        export_events(settings.bootstrap_servers, topics, tmp_path, event_filter=event_filter)
    )
    expected = {
        topic: [
            e for e in read_envelopes(settings.bootstrap_servers, topic) if event_filter.accepts(e)
        ]
        for topic in topics
    }
    for topic in topics:
        table = pq.read_table(tmp_path / f"{topic}.parquet")
        assert table.column_names == list(COLUMNS)
        assert table.num_rows == len(expected[topic]) > 0
        assert set(table.column("event_id").to_pylist()) == {
            str(e.event_id) for e in expected[topic]
        }
    assert result.written == sum(map(len, expected.values()))
    placed = pq.read_table(tmp_path / "orders.events.parquet").to_pylist()
    assert {row["aggregate_id"] for row in placed} >= set(traffic["orders"])


async def committed_offsets(bootstrap: str, groups: list[str]) -> dict[str, dict]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {
            group: {
                tp: meta.offset
                for tp, meta in (await admin.list_consumer_group_offsets(group)).items()
            }
            for group in groups
        }
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return await consumer.end_offsets(await partitions_of(consumer, topics))
    finally:
        await consumer.stop()


def test_replay_into_a_new_group_leaves_live_offsets_alone(traffic, settings):
    bootstrap, topics = settings.bootstrap_servers, ["orders.events", "payments.events"]
    wait_for_quiet(settings, GROUPS)
    live_before = asyncio.run(committed_offsets(bootstrap, worker_names()))
    group = f"analyst-replay-{uuid4().hex[:8]}"

    result = asyncio.run(replay(bootstrap, group, topics, from_beginning=True))

    assert result.counts["order.placed"] >= len(traffic["orders"])
    assert asyncio.run(committed_offsets(bootstrap, worker_names())) == live_before
    ends = asyncio.run(end_offsets(bootstrap, topics))
    assert asyncio.run(committed_offsets(bootstrap, [group]))[group] == ends
    with pytest.raises(LiveGroup):
        asyncio.run(replay(bootstrap, "orders-projection", topics))


def test_as_of_shows_an_order_and_stock_as_they_were(shop, traffic, settings):
    order_id, mug = UUID(traffic["completed"]), UUID(traffic["mug"])
    orders = application_for("order", settings)
    moments = history(orders, order_id)
    confirmed = next(m for m in moments if m.event.endswith("Confirmed"))
    before_payment = confirmed.timestamp - timedelta(microseconds=1)
    assert as_of(orders, "order", order_id, before_payment)["status"] in ("pending", "reserved")
    assert as_of(orders, "order", order_id, datetime.now(UTC))["status"] == "completed"

    inventory = application_for("stock", settings)
    _registered, received = history(inventory, inventory_stock_id(mug))[:2]
    assert received.event.endswith("Received")
    then = as_of(inventory, "stock", mug, received.timestamp - timedelta(microseconds=1))
    assert then["on_hand"] == 0 and then["available"] == 0
    wait_for_quiet(settings, GROUPS)
    now = as_of(inventory, "stock", mug, datetime.now(UTC))
    assert now["on_hand"] == product_view(shop, traffic["mug"])["stock"]["on_hand"] < 20


def inventory_stock_id(product_id: UUID) -> UUID:
    from domain.stock import Stock

    return Stock.create_id(product_id)


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints", "analyst", *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_cli_commands(shop, traffic, settings, tmp_path: Path):
    run_cli(
        settings,
        "export",
        "--topics",
        "orders.events",
        "--types",
        "order.placed",
        "--format",
        "jsonl",
        "--out",
        str(tmp_path),
    )
    exported = [
        orjson.loads(line) for line in (tmp_path / "orders.events.jsonl").read_bytes().splitlines()
    ]
    assert {row["type"] for row in exported} == {"order.placed"}
    assert {row["aggregate_id"] for row in exported} >= set(traffic["orders"])
    addresses = [
        orjson.loads(row["payload"])["shipping_address"]
        for row in exported
        if row["aggregate_id"] in set(traffic["orders"])
    ]
    assert {(a["name"], a["country"]) for a in addresses} == {("[redacted]", ADDRESS["country"])}
    run_cli(
        settings,
        "export",
        "--topics",
        "users.events",
        "--no-redact-pii",
        "--format",
        "jsonl",
        "--out",
        str(tmp_path),
    )
    users = (tmp_path / "users.events.jsonl").read_text()
    assert "@example.com" in users and "[redacted]" not in users

    order_id = traffic["completed"]
    state = json.loads(
        run_cli(settings, "as-of", "order", order_id, "--at", datetime.now(UTC).isoformat()).stdout
    )
    assert state["status"] == "completed" and "payment" not in state

    replayed = run_cli(
        settings,
        "replay",
        "--group",
        f"analyst-cli-{uuid4().hex[:8]}",
        "--topics",
        "orders.events",
        "--from-beginning",
    )
    assert "order.placed" in replayed.stdout

    rebuilt = run_cli(settings, "rebuild", "users")
    assert "swapped in users-projection" in rebuilt.stderr
    api_answers(shop, traffic)
