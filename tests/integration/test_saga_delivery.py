"""The saga under bad deliveries: re-published events change nothing, poison is parked
on the group's dead-letter topic and the partition keeps flowing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.broker import consumer_groups
from eventmart.contracts import Envelope, event_id_for
from eventmart.settings import Settings
from tests.saga_invariants import parked_about
from tests.shop import Customer, Seller
from tests.support import (
    dead_letter_marks,
    publish,
    read_envelopes,
    read_topic,
    wait_for_groups_to_catch_up,
    wait_until,
)

SAGA_TOPICS = ["orders.events", "inventory.events", "payments.events", "shipping.events"]
SAGA_GROUPS = ["inventory-saga", "payments-saga", "orders-saga", "shipping-saga"]


@pytest.fixture(scope="module")
def shop(api: TestClient, saga_workers, catalog_projection, orders_projection) -> TestClient:
    return api


def stored_event_counts(db: psycopg.Connection, order_id: str) -> dict[str, int]:
    """How many events each context has stored about one order (by correlation)."""
    counts = {}
    for context in ("orders", "inventory", "payments", "shipping"):
        counts[context] = db.execute(
            f"SELECT count(*) FROM {context}_events WHERE originator_id = %s "
            "OR convert_from(state, 'UTF8') LIKE %s",
            (order_id, f"%{uuid.UUID(order_id).hex}%"),
        ).fetchone()[0]
    return counts


def test_republished_events_change_nothing(
    shop: TestClient, settings: Settings, db: psycopg.Connection
):
    marks = dead_letter_marks(settings.bootstrap_servers)
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(stock=5)
    order_id = customer.place([(mug, 2)])
    customer.wait_for(order_id, "completed")
    groups = {group: topics for group, topics in consumer_groups().items() if group in SAGA_GROUPS}
    wait_for_groups_to_catch_up(settings.bootstrap_servers, groups)
    before = stored_event_counts(db, order_id)
    assert before["orders"] >= 6 and before["payments"] >= 2 and before["shipping"] >= 5

    copies = {
        topic: [
            (e.key(), e.to_bytes())
            for e in read_envelopes(settings.bootstrap_servers, topic)
            if str(e.correlation_id) == order_id
            or str(e.aggregate_id) == order_id
            or e.payload.get("order_id") == order_id
        ]
        for topic in SAGA_TOPICS
    }
    assert sum(len(batch) for batch in copies.values()) >= 15
    for topic, batch in copies.items():
        publish(settings.bootstrap_servers, topic, batch)
    wait_for_groups_to_catch_up(settings.bootstrap_servers, groups)

    assert stored_event_counts(db, order_id) == before
    assert customer.view(order_id)["status"] == "completed"
    assert parked_about(settings, marks, {order_id}) == []  # copies are skipped, not parked


def envelope(event_type: str, payload: dict) -> Envelope:
    aggregate_id = uuid.uuid4()
    event_id = event_id_for(aggregate_id, 1)
    return Envelope(
        event_id=event_id,
        type=event_type,
        schema_version=1,
        aggregate_id=aggregate_id,
        aggregate_version=1,
        occurred_at=datetime.now(UTC),
        correlation_id=aggregate_id,
        payload=payload,
    )


def parked(settings: Settings, group: str, value: bytes) -> list:
    return [r for r in read_topic(settings.bootstrap_servers, f"{group}.dlq") if r.value == value]


def test_poison_on_orders_events_is_parked_and_later_orders_complete(
    shop: TestClient, settings: Settings
):
    marks = dead_letter_marks(settings.bootstrap_servers)
    garbage = b"\x00\x01 definitely not json"
    # Well-formed, but about an order that does not exist: the shipping policy fails every try.
    ghost = envelope("order.confirmed", {"order_id": str(uuid.uuid4()), "total": 100})
    publish(
        settings.bootstrap_servers,
        "orders.events",
        [(b"poison", garbage), (ghost.key(), ghost.to_bytes())],
    )

    seller, customer = Seller(shop), Customer(shop)
    order_id = customer.place([(seller.product(), 1)])

    undecodable = wait_until(
        lambda: parked(settings, "inventory-saga", garbage),
        timeout=30,
        message="the undecodable message on inventory-saga.dlq",
    )
    assert dict(undecodable[0].headers)["x-error-type"] == b"MalformedEvent"
    failing = wait_until(
        lambda: parked(settings, "shipping-saga", ghost.to_bytes()),
        timeout=60,
        message="the failing event on shipping-saga.dlq",
    )
    headers = dict(failing[0].headers)
    assert headers["x-tries"] == str(settings.worker_max_tries).encode()
    assert headers["x-error-type"] == b"DestinationNotFound"  # never seen placed
    assert headers["x-original-topic"] == b"orders.events"
    customer.wait_for(order_id, "completed")
    # Nothing but the planted poison was parked: the real order went through untouched.
    assert parked_about(settings, marks, {order_id}) == []
