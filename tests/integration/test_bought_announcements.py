"""The orders read model announces a buyer when what they have on live orders may have
changed (api.recommendations remembers it per buyer), and stays quiet on the saga's other
status steps. Real PostgreSQL notifications on the live table."""

from __future__ import annotations

import json
import uuid

import psycopg

from projections import orders

DEADLINE = 10.0


def heard(db: psycopg.Connection, listener: psycopg.Connection) -> list[str]:
    """What the listener heard since the last call: notifications arrive in commit order,
    so everything announced before a marker sent now arrives before the marker."""
    marker = f"marker-{uuid.uuid4()}"
    db.execute("SELECT pg_notify(%s, %s)", (orders.CHANGES_CHANNEL, marker))
    payloads = []
    for notify in listener.notifies(timeout=DEADLINE):
        if notify.payload == marker:
            return payloads
        payloads.append(notify.payload)
    raise AssertionError(f"the marker did not arrive within {DEADLINE} s; heard {payloads}")


def test_a_buyer_is_announced_when_their_live_orders_may_have_changed(db: psycopg.Connection):
    db.execute(orders.DDL)
    buyer, other, order_id = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4()
    with psycopg.connect(db.info.dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {orders.CHANGES_CHANNEL}")

        def update(assignments: str) -> list[str]:
            db.execute(f"UPDATE orders_view SET {assignments} WHERE order_id = %s", (order_id,))
            return heard(db, listener)

        db.execute(
            "INSERT INTO orders_view (order_id, buyer_id, status, lines, updated_at) "
            "VALUES (%s, %s, 'pending', '[]', now())",
            (order_id, buyer),
        )
        assert heard(db, listener) == [buyer], "a new order"
        lines = json.dumps([{"product_id": str(uuid.uuid4()), "quantity": 1}])
        assert update(f"lines = '{lines}'") == [buyer], "its lines"
        assert update("status = 'reserved', saga_step = 'reserved'") == [], "a saga step"
        assert update("status = 'confirmed', updated_at = now()") == [], "a saga step"
        assert update("status = 'cancelled'") == [buyer], "out of the live orders"
        assert update("status = 'pending'") == [buyer], "back (a rebuild's replay)"
        assert update("status = NULL") == [buyer], "status unknown"
        assert update(f"buyer_id = '{other}'") == [buyer, other], "both buyers"
        db.execute("DELETE FROM orders_view WHERE order_id = %s", (order_id,))
        assert heard(db, listener) == [other], "the order gone"
