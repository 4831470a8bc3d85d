"""The rebuild's bulk path (fold in memory, COPY) writes exactly what the event-at-a-time
handlers write: on a synthetic shop history with re-published copies and junk, and on
real traffic with copies re-published at new offsets while orders keep flowing."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from eventmart.contracts import CONTRACTS, MalformedEvent, parse
from eventmart.settings import PROJECT_ROOT, Settings
from projections import bulk
from projections import decoders as decoders_module
from projections.rebuild import ShadowRebuild, find_model, tables_of
from projections.registry import READ_MODELS
from projections.tracking import TRACKING_DDL, Delivery, apply_deliveries
from tests.shop import TERMINAL, Customer, Seller
from tests.support import publish, read_topic, wait_for_quiet

GROUPS = {model.group: model.topics for model in READ_MODELS.values()}


def synthetic_log(events: int) -> list[tuple[str, int, int, bytes]]:
    """bench/shoplog's history with many copies and some junk, as (topic, partition, offset,
    value), partitions interleaved at random (per-partition order kept, as Kafka gives it)."""
    spec = importlib.util.spec_from_file_location("shoplog", PROJECT_ROOT / "bench" / "shoplog.py")
    assert spec is not None and spec.loader is not None
    shoplog = importlib.util.module_from_spec(spec)
    sys.modules["shoplog"] = shoplog  # its dataclasses look their module up
    spec.loader.exec_module(shoplog)
    rng = random.Random(11)
    types_of: dict[str, list[str]] = defaultdict(list)
    for name, contract in sorted(CONTRACTS.items()):
        types_of[contract.topic].append(name)
    partitions: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    for n, (topic, key, value) in enumerate(
        shoplog.shop_history(events, duplicate_share=0.05, days=20)
    ):
        partitions[(topic, hash(key) % 3)].append(value)
        if n % 97 == 0:  # a type of this topic, but not an envelope; or not JSON at all
            partitions[(topic, n % 3)].append(
                b"\xff"
                if n % 2
                else orjson.dumps(
                    {"type": types_of[topic][n % len(types_of[topic])], "payload": "junk"}
                )
            )
    queues = {tp: list(enumerate(values)) for tp, values in partitions.items()}
    merged = []
    while queues:
        tp = rng.choice(list(queues))
        offset, value = queues[tp].pop(0)
        merged.append((tp[0], tp[1], offset, value))
        if not queues[tp]:
            del queues[tp]
    return merged


def fresh_schema(conn: psycopg.Connection[Any], schema: str, ddl: str) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    conn.execute(TRACKING_DDL)
    conn.execute(ddl)


def model_rows(conn: psycopg.Connection[Any], schema: str, tables: list[str]) -> dict[str, list]:
    return {
        table: sorted(
            conn.execute(
                sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchall(),
            key=repr,
        )
        for table in [*tables, "applied_events"]
    }


@pytest.mark.parametrize("group", sorted(bulk.FOLDS))
def test_the_fold_writes_what_the_handlers_write(
    group, settings: Settings, infrastructure, monkeypatch
):
    model = READ_MODELS[group]
    records = [r for r in synthetic_log(6000) if r[0] in model.topics]
    monkeypatch.setattr(bulk, "CHUNK", 700)  # several COPY rounds
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        fresh_schema(conn, "fold_by_handlers", model.ddl)
        deliveries = []
        for topic, partition, offset, value in records:
            try:
                deliveries.append(Delivery(topic, partition, offset, parse(value)))
            except MalformedEvent:
                continue
        for start in range(0, len(deliveries), 200):
            apply_deliveries(conn, group, model.handlers, deliveries[start : start + 200])

        fresh_schema(conn, "fold_in_bulk", model.ddl)
        load = bulk.BulkLoad(conn, group, frozenset(model.handlers), bulk.FOLDS[group]())
        for record in records:
            load.add(*record)
        load.finish()

        tables = tables_of(model)
        by_handlers = model_rows(conn, "fold_by_handlers", tables)
        assert all(by_handlers.values()), f"the history reached no table of {group}"
        assert model_rows(conn, "fold_in_bulk", tables) == by_handlers
        assert load.malformed > 0
        for schema in ("fold_by_handlers", "fold_in_bulk"):
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module")
def shop(
    api: TestClient,
    saga_workers,
    catalog_projection,
    orders_projection,
    sales_projection,
    review_workers,
) -> TestClient:
    return api


def republish_every_third_record(settings: Settings) -> None:
    """What a relay crash between producing and saving its position does: copies at new offsets."""
    for topic in (
        "users.events",
        "catalog.events",
        "inventory.events",
        "orders.events",
        "payments.events",
        "shipping.events",
    ):
        records = read_topic(settings.bootstrap_servers, topic)[::3]
        publish(
            settings.bootstrap_servers, topic, [(record.key, record.value) for record in records]
        )


@pytest.mark.parametrize("name", ["users", "catalog", "orders", "sales"])
def test_bulk_rebuild_with_copies_and_traffic_equals_live(
    name, shop: TestClient, settings: Settings
):
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(price=990, stock=5)
    customer.wait_for(customer.place([(mug, 1)]), *TERMINAL)
    republish_every_third_record(settings)
    model = find_model(name)

    async def rebuild_while(placing) -> None:
        # Decoded in other processes (on a big log they are the default; one per partition
        # at most, and this test's few users may share one), and checked below against the
        # live model by a rebuild that decodes in its own process.
        async with ShadowRebuild(
            model, settings.dsn, settings.bootstrap_servers, decoders=2
        ) as job:
            await job.build()
            assert job.bulk, "the bulk path was not taken"
            assert job.decoding_processes > 0
            placing.result(timeout=60)  # an order placed during the build, applied at the swap
            await job.swap()

    with ThreadPoolExecutor(1) as pool:
        placing = pool.submit(customer.place, [(mug, 2)])
        asyncio.run(rebuild_while(placing))
    customer.wait_for(placing.result(), *TERMINAL)
    wait_for_quiet(settings, GROUPS)

    async def shadow_and_live() -> tuple[dict, dict]:
        async with ShadowRebuild(
            model, settings.dsn, settings.bootstrap_servers, decoders=1
        ) as job:
            await job.build()
            assert job.bulk and job.decoding_processes == 0
            return job.rows(job.schema), job.rows("public")

    shadow, live = asyncio.run(shadow_and_live())
    assert all(rows for rows in live.values())
    assert shadow == live


def test_a_failed_bulk_load_starts_over_event_by_event(
    shop: TestClient, settings: Settings, monkeypatch
):
    """A COPY that breaks a constraint (say two events sharing an event id) must not leave
    half a shadow: the rebuild starts over with the handlers."""
    seller, customer = Seller(shop), Customer(shop)
    customer.wait_for(customer.place([(seller.product(price=700, stock=3), 1)]), *TERMINAL)
    wait_for_quiet(settings, GROUPS)
    copy_rows = bulk.copy_rows
    calls = 0

    def breaks_once(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise psycopg.errors.UniqueViolation("two events share an event id")
        copy_rows(*args)

    monkeypatch.setattr(bulk, "copy_rows", breaks_once)

    async def shadow_and_live() -> tuple[bool, dict, dict]:
        async with ShadowRebuild(
            find_model("orders"), settings.dsn, settings.bootstrap_servers
        ) as job:
            await job.build()
            return job.bulk, job.rows(job.schema), job.rows("public")

    used_bulk, shadow, live = asyncio.run(shadow_and_live())
    assert calls == 1 and not used_bulk
    assert all(rows for rows in live.values())
    assert shadow == live


def test_a_decoding_process_that_dies_fails_the_rebuild_clearly(
    shop: TestClient, settings: Settings, monkeypatch
):
    """No hang and no half-read shadow swapped in: the rebuild stops with the reason."""
    monkeypatch.setattr(decoders_module, "DECODER_MODULE", "projections.no_such_decoder")

    async def build() -> None:
        async with ShadowRebuild(
            find_model("users"), settings.dsn, settings.bootstrap_servers, decoders=2
        ) as job:
            await job.build()

    with pytest.raises(RuntimeError, match="decoding process .* failed"):
        asyncio.run(build())
