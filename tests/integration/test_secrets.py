"""Secrets never travel: after orders with every sandbox token have run through the saga,
no record on any topic (every partition, from offset zero), no export, no stored event and
no log line holds a payment token. The token is in one place only: the payments context's
intents table."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.broker import consumer_groups, list_topics
from eventmart.contracts import MalformedEvent, parse
from eventmart.export import export_events
from eventmart.settings import Settings
from eventmart.wiring import APPLICATION_TOPICS, SAGA_PARTICIPANTS
from tests.shop import Customer, Seller
from tests.support import read_topic, wait_for_quiet

TOKEN_MARK = b"tok_"
OUTCOMES = {"tok_ok": "completed", "tok_declined": "cancelled", "tok_timeout": "cancelled"}


@pytest.fixture(scope="module")
def shop(api: TestClient, saga_workers, catalog_projection, orders_projection) -> TestClient:
    return api


def test_no_topic_export_store_or_log_line_holds_a_payment_token(
    shop: TestClient,
    settings: Settings,
    db: psycopg.Connection,
    worker_logs: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    seller, customer = Seller(shop), Customer(shop)
    mug = seller.product(stock=10)
    orders = {token: customer.place([(mug, 1)], token=token) for token in OUTCOMES}
    for token, order_id in orders.items():
        final = customer.wait_for(
            order_id, OUTCOMES[token], timeout=settings.payment_timeout_seconds + 60
        )
        assert token not in str(final)
    wait_for_quiet(
        settings,
        {
            group: topics
            for group, topics in consumer_groups().items()
            if group in SAGA_PARTICIPANTS
        },
    )

    # Every topic, every partition, from offset zero: keys, values and headers.
    topics = [t for t in asyncio.run(list_topics(settings.bootstrap_servers)) if t[:2] != "__"]
    assert {"orders.events", "payments.events", "payments-saga.dlq"} <= set(topics)
    mine = set(orders.values())
    relayed = 0
    for topic in topics:
        for record in read_topic(settings.bootstrap_servers, topic):
            headers = b"".join(name.encode() + value for name, value in record.headers or ())
            assert TOKEN_MARK not in (record.key or b"") + record.value + headers, (topic, record)
            try:
                envelope = parse(record.value)
            except MalformedEvent:
                continue
            if str(envelope.correlation_id) in mine:  # relayed by the relay: keyed as it says
                assert record.key == str(envelope.aggregate_id).encode(), (topic, envelope)
                relayed += 1
    assert relayed >= 20

    # Exports, with and without personal data.
    event_topics = sorted(APPLICATION_TOPICS.values())
    for redact_pii in (True, False):
        out = tmp_path / f"redacted-{redact_pii}"
        result = asyncio.run(
            export_events(
                settings.bootstrap_servers, event_topics, out, fmt="jsonl", redact_pii=redact_pii
            )
        )
        assert result.written > 0
        for path in result.paths:
            assert TOKEN_MARK not in path.read_bytes(), path

    # Every stored event of every context: an event store is an outbox.
    for application in APPLICATION_TOPICS:
        table = f"{application.name.lower()}_events"
        holding = db.execute(
            f"SELECT count(*) FROM {table} WHERE position(%s in convert_from(state, 'UTF8')) > 0",
            ("tok_",),
        ).fetchone()[0]
        assert holding == 0, table

    # Log lines: the workers' files, and this process (the API runs in it).
    for log in worker_logs.glob("*.log"):
        assert TOKEN_MARK not in log.read_bytes(), log
    assert not [r.getMessage() for r in caplog.records if "tok_" in r.getMessage()]

    # The one place a token is kept.
    kept = dict(
        db.execute(
            "SELECT order_id::text, token FROM payment_intents WHERE order_id = ANY(%s::uuid[])",
            (list(orders.values()),),
        ).fetchall()
    )
    assert kept == {order_id: token for token, order_id in orders.items()}
