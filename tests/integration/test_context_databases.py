"""Each bounded context can have a PostgreSQL of its own (EVENTMART_<CONTEXT>_DATABASE_URL):
its event store and outbox, its saga participant's tracking and the read models it owns
live there; what a context only reads of another's, it reads from that one's database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from entrypoints.stack import databases, prepare_database
from eventmart.contracts import Envelope, event_id_for
from eventmart.database import drop_database, ensure_database
from eventmart.groups import database_of
from eventmart.relay_operations import relay_health
from eventmart.settings import Settings
from eventmart.wiring import build_applications
from projections.tracking import Delivery
from workers.inventory import PARTICIPANT as INVENTORY
from workers.relay import Relay
from workers.saga import PolicyProcessor, build_context

ADDRESS = {
    "name": "A",
    "line1": "1 Way",
    "city": "Hangzhou",
    "postal_code": "310000",
    "country": "CN",
}


def named(dsn: str, suffix: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=parts.path + suffix))


@pytest.fixture(scope="module")
def split(infrastructure: object, settings: Settings) -> Iterator[Settings]:
    """The shared database, and orders and inventory on databases of their own."""
    split = settings.model_copy(
        update={
            "database_url": named(settings.dsn, "_shared"),
            "orders_database_url": named(settings.dsn, "_orders_context"),
            "inventory_database_url": named(settings.dsn, "_inventory_context"),
        }
    )
    for dsn in databases(split):
        drop_database(dsn)
        ensure_database(dsn)
    prepare_database(split)
    yield split
    for dsn in databases(split):
        drop_database(dsn)


def has_table(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def count(dsn: str, sql: str, *params: object) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchone()[0]


def test_each_context_keeps_its_event_store_and_read_models_in_its_own_database(split):
    assert len(databases(split)) == 3
    assert has_table(split.orders_database_url, "orders_events")
    assert not has_table(split.dsn, "orders_events")
    assert has_table(split.inventory_database_url, "inventory_events")
    assert has_table(split.dsn, "users_events") and has_table(split.dsn, "catalog_events")
    assert database_of("orders-projection", split) == split.orders_database_url
    assert database_of("users-projection", split) == split.dsn
    assert has_table(split.orders_database_url, "orders_view")

    applications = build_applications(split, pool_size=1)
    try:
        order_id, _ = applications.orders.place_order(
            uuid.uuid4(),
            [{"product_id": uuid.uuid4(), "quantity": 1, "unit_price": 100}],
            ADDRESS,
            {"method": "card", "intent_id": str(uuid.uuid4())},
            idempotency_key=None,
            request_fingerprint="test",
            now=datetime.now(UTC),
            payment_timeout=timedelta(minutes=15),
        )
    finally:
        for application in applications.all():
            application.close()
    assert (
        count(
            split.orders_database_url,
            "SELECT count(*) FROM orders_events WHERE originator_id = %s",
            order_id,
        )
        >= 1
    )


def test_a_participant_tracks_in_its_context_and_reads_the_orders_read_model_where_it_lives(split):
    context = build_context(INVENTORY, split)
    application = context.application
    product_id, seller_id = uuid.uuid4(), uuid.uuid4()
    application.register_product(product_id, seller_id)
    application.receive_stock(product_id, seller_id, 5)
    order_id = uuid.uuid4()
    delivery = Delivery(
        "orders.events",
        0,
        0,
        Envelope(
            event_id=event_id_for(order_id, 1),
            type="order.placed",
            schema_version=1,
            aggregate_id=order_id,
            aggregate_version=1,
            occurred_at=datetime.now(UTC),
            correlation_id=order_id,
            payload={
                "order_id": str(order_id),
                "lines": [{"product_id": str(product_id), "quantity": 2}],
            },
        ),
    )
    processor = PolicyProcessor(INVENTORY, context)
    processor([delivery])
    processor([delivery])  # a redelivered copy: the tracking in inventory's database stops it

    assert application.get_stock(product_id).reserved == 2
    inventory_db = split.inventory_database_url
    assert count(inventory_db, "SELECT count(*) FROM inventory_tracking") == 1
    assert not has_table(split.dsn, "inventory_tracking")
    # Its deadline table is its own too: the timers query the inventory database.
    assert context.pool.conninfo == split.inventory_database_url
    assert has_table(inventory_db, "inventory_deadlines")
    assert not has_table(split.dsn, "inventory_deadlines")


def test_the_relay_reads_each_outbox_where_its_context_keeps_it(split):
    """Its lock, positions and dead letters in the shared database; each outbox read (and
    its wake-up trigger installed) in the database of its context."""
    relay = Relay.build(split)
    try:
        orders = next(o for o in relay.outboxes if o.topic == "orders.events")
        applications = [outbox.application for outbox in relay.outboxes]
        with psycopg.connect(split.dsn, autocommit=True) as conn:
            orders.load(conn)
            health = relay_health(conn, applications, split)
        waiting = orders.pending(limit=100)
        assert waiting and all(encoded.error is None for encoded in waiting)
        assert any(encoded.event_type.endswith("Placed") for encoded in waiting)
        by_name = {outbox["application"]: outbox for outbox in health["outboxes"]}
        assert by_name[orders.name]["unpublished"] == len(waiting)
        assert has_table(split.dsn, "relay_positions")
        with psycopg.connect(split.orders_database_url) as conn:
            triggers = conn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'relay_wakeup'"
            ).fetchone()[0]
        assert triggers >= 1
    finally:
        for outbox in relay.outboxes:
            outbox.application.close()


def test_prepare_runs_at_once_from_several_pods_take_turns(infrastructure, settings, tmp_path):
    """Each pod's init container on Kubernetes runs `eventmart prepare --no-topics` as its pod
    starts, so several run at once on an empty database: each must finish, none fail on
    another's half-made tables."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    dsn = named(settings.dsn, "_prepared_at_once")
    drop_database(dsn)
    ensure_database(dsn)
    env = {**os.environ, "DATABASE_URL": dsn, "EVENTMART_STATE_DIR": str(tmp_path)}
    eventmart = Path(sys.executable).parent / "eventmart"  # the console script
    runs = [
        subprocess.Popen(
            [str(eventmart), "prepare", "--no-topics"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    try:
        outputs = [run.communicate(timeout=240)[0].decode() for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], "\n".join(outputs)
        for table in ("orders_events", "inventory_events", "orders_view", "relay_heartbeat"):
            assert has_table(dsn, table), table
    finally:
        drop_database(dsn)
