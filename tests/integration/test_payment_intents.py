"""The payments context's intents table on the real PostgreSQL: one intent per order, and a
saga batch reads its charges' intents with one query."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest

from domain.payments import PaymentIntent
from eventmart.database import make_pool
from eventmart.payment_intents import PostgresPaymentIntents, install
from eventmart.settings import Settings


@pytest.fixture()
def intents(settings: Settings, db: psycopg.Connection) -> Iterator[PostgresPaymentIntents]:
    install(db)
    pool = make_pool(settings.context_dsn("payments"), max_size=2)
    try:
        yield PostgresPaymentIntents(pool)
    finally:
        pool.close()


def opened(intents: PostgresPaymentIntents, amount: int) -> PaymentIntent:
    return intents.open(PaymentIntent(uuid4(), uuid4(), amount, "CNY", "card", "tok_ok"))


def test_the_first_intent_of_an_order_stands(intents: PostgresPaymentIntents):
    first = opened(intents, 500)
    again = intents.open(PaymentIntent(uuid4(), first.order_id, 900, "CNY", "card", "tok_x"))
    assert again == first
    assert intents.find(first.order_id) == first
    assert intents.find(uuid4()) is None


def test_a_read_ahead_serves_each_find_once_then_the_table_answers(
    intents: PostgresPaymentIntents, db: psycopg.Connection
):
    batch = [opened(intents, 100 + n) for n in range(3)]
    intents.read_ahead([intent.order_id for intent in batch])
    db.execute(
        "DELETE FROM payment_intents WHERE order_id = ANY(%s)",
        ([intent.order_id for intent in batch],),
    )
    # Read before the rows went: from memory (an intent never changes once opened).
    assert [intents.find(intent.order_id) for intent in batch] == batch
    # Each once: the next find asks the table again.
    assert intents.find(batch[0].order_id) is None
