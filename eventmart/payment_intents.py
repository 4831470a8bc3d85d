"""The payments context's intents table: the one place a buyer's payment token is kept.

Not an event store: an event store is an outbox, relayed to the bus and kept forever, and
a token must travel nowhere. The API opens the intent before it places the order; the
payments participant reads it when stock is held, to charge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from domain.payments import PaymentIntent

DDL = """
CREATE TABLE IF NOT EXISTS payment_intents (
    order_id uuid PRIMARY KEY,
    intent_id uuid NOT NULL UNIQUE,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    method text NOT NULL,
    token text NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now()
)
"""
COLUMNS = "intent_id, order_id, amount, currency, method, token"


def install(conn: Any) -> None:
    conn.execute(DDL)


class PostgresPaymentIntents:
    """`domain.payments.PaymentIntents` on PostgreSQL, one intent per order."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self._read_ahead: dict[UUID, PaymentIntent] = {}

    def read_ahead(self, order_ids: Sequence[UUID]) -> None:
        """Read these orders' intents with one query, for the `find`s about to come (a
        saga batch's charges): an intent never changes once opened, so what was read
        stays true. Replaces what the last read-ahead kept."""
        if not order_ids:
            return
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM payment_intents WHERE order_id = ANY(%s)",
                (list(order_ids),),
            ).fetchall()
        self._read_ahead = {
            intent.order_id: intent for intent in (PaymentIntent(*row) for row in rows)
        }

    def open(self, intent: PaymentIntent) -> PaymentIntent:
        with self.pool.connection() as conn:
            row = conn.execute(
                f"INSERT INTO payment_intents ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
                f"ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}",
                (
                    intent.intent_id,
                    intent.order_id,
                    intent.amount,
                    intent.currency,
                    intent.method,
                    intent.token,
                ),
            ).fetchone()
            if row is None:  # the order has one already: that one stands
                row = conn.execute(
                    f"SELECT {COLUMNS} FROM payment_intents WHERE order_id = %s",
                    (intent.order_id,),
                ).fetchone()
        assert row is not None
        return PaymentIntent(*row)

    def find(self, order_id: UUID) -> PaymentIntent | None:
        ahead = self._read_ahead.pop(order_id, None)
        if ahead is not None:
            return ahead
        with self.pool.connection() as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM payment_intents WHERE order_id = %s", (order_id,)
            ).fetchone()
        return None if row is None else PaymentIntent(*row)
