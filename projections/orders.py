"""The orders read model: order detail and lists for buyers, deadlines for the saga's
timers (which query `status`, `payment_deadline`, `reservation_expires_at`,
`delivered_at`, `updated_at` by name), and stuck sagas for operators.

Order events decide the status, guarded by the order's aggregate version. Reservation,
payment and shipment events travel on other topics and may arrive before
`order.placed`: they upsert a placeholder row (status NULL) that queries ignore.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cache
from typing import Any, ClassVar
from uuid import UUID

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from eventmart.contracts import Envelope, Event
from projections.cursors import Cursors

GROUP = "orders-projection"
TOPICS = ["orders.events", "inventory.events", "payments.events", "shipping.events"]
TERMINAL = ("completed", "cancelled", "rejected")
STATUSES = ("pending", "reserved", "paid", "confirmed", "shipped", "delivered", *TERMINAL)
# A saga step that should move on within seconds; idle this long means something is wrong.
STALE_AFTER = timedelta(minutes=10)
# Only these payload fields reach the timeline (never addresses or payment tokens).
DETAIL_FIELDS = (
    "reason",
    "amount",
    "total",
    "currency",
    "method",
    "refund_due",
    "automatic",
    "shipment_id",
    "expires_at",
    "delivered_at",
    "product_id",
)

DDL = """
CREATE TABLE IF NOT EXISTS orders_view (
    order_id uuid PRIMARY KEY,
    buyer_id uuid,
    status text,
    reason text,
    lines jsonb NOT NULL DEFAULT '[]',
    total bigint,
    currency text,
    created_at timestamptz,
    updated_at timestamptz NOT NULL,
    payment_deadline timestamptz,
    reservation_expires_at timestamptz,
    delivered_at timestamptz,
    shipment_id uuid,
    compensations text[] NOT NULL DEFAULT '{}',
    saga_step text,
    order_version bigint NOT NULL DEFAULT 0,
    discount_total bigint NOT NULL DEFAULT 0,
    coupon_code text
);
-- Added with the pricing context (order.placed v3): a model built before has them too.
ALTER TABLE orders_view ADD COLUMN IF NOT EXISTS discount_total bigint NOT NULL DEFAULT 0;
ALTER TABLE orders_view ADD COLUMN IF NOT EXISTS coupon_code text;
CREATE INDEX IF NOT EXISTS orders_view_buyer ON orders_view (buyer_id, created_at DESC, order_id DESC);
CREATE INDEX IF NOT EXISTS orders_view_open ON orders_view (status, updated_at)
    WHERE status NOT IN ('completed', 'cancelled', 'rejected');
-- The completion timer's scan (workers/orders.py): the delivered orders past their return
-- window, without reading every delivered one (6 ms a tick once thousands were delivered).
CREATE INDEX IF NOT EXISTS orders_view_delivered ON orders_view (delivered_at)
    WHERE status = 'delivered';
CREATE TABLE IF NOT EXISTS order_timeline (
    event_id uuid PRIMARY KEY,
    order_id uuid NOT NULL,
    type text NOT NULL,
    at timestamptz NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS order_timeline_order ON order_timeline (order_id, at);
CREATE OR REPLACE FUNCTION public.orders_view_bought_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_SCHEMA = 'public' THEN
        IF TG_OP <> 'INSERT' AND OLD.buyer_id IS NOT NULL THEN
            PERFORM pg_notify(TG_TABLE_NAME, OLD.buyer_id::text);
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.buyer_id IS NOT NULL
                AND (TG_OP = 'INSERT' OR NEW.buyer_id IS DISTINCT FROM OLD.buyer_id) THEN
            PERFORM pg_notify(TG_TABLE_NAME, NEW.buyer_id::text);
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER orders_view_bought_added AFTER INSERT OR DELETE ON orders_view
    FOR EACH ROW EXECUTE FUNCTION public.orders_view_bought_changed();
CREATE OR REPLACE TRIGGER orders_view_bought_changed AFTER UPDATE ON orders_view
    FOR EACH ROW WHEN (
        OLD.buyer_id IS DISTINCT FROM NEW.buyer_id
        OR OLD.lines IS DISTINCT FROM NEW.lines
        OR (OLD.status IS DISTINCT FROM NEW.status
            AND (OLD.status IS NULL OR NEW.status IS NULL
                 OR OLD.status IN ('rejected', 'cancelled')
                 OR NEW.status IN ('rejected', 'cancelled')))
    ) EXECUTE FUNCTION public.orders_view_bought_changed();
"""
# The API keeps what each buyer has on live orders in memory (api.recommendations: never
# recommend what a user bought). A row change that can alter that set (a new order, its
# lines or buyer, a status into or out of rejected/cancelled/unknown) is announced with
# the buyer's id on the channel named after the table, delivered when its transaction
# commits; a rebuild announces "*" (projections.rebuild). The saga's other status steps
# stay quiet.
CHANGES_CHANNEL = "orders_view"

STATUS_OF = {
    "order.placed": "pending",
    "order.reserved": "reserved",
    "order.paid": "paid",
    "order.confirmed": "confirmed",
    "order.shipped": "shipped",
    "order.delivered": "delivered",
    "order.completed": "completed",
    "order.cancelled": "cancelled",
    "order.rejected": "rejected",
}
COMPENSATION_OF = {
    "reservation.released": "stock_released",
    "payment.refunded": "payment_refunded",
    "payment.voided": "payment_voided",
}


def order_columns(event: Envelope | Event) -> dict[str, Any]:
    """What an order.* event sets on its row (`lines` as a list: callers adapt it)."""
    p = event.payload
    columns: dict[str, Any] = {
        "status": STATUS_OF[event.type],
        "order_version": event.aggregate_version,
    }
    if event.type == "order.placed":
        lines = [
            {"line_total": line["quantity"] * line["unit_price"], **line} for line in p["lines"]
        ]
        columns.update(
            buyer_id=p["buyer_id"],
            lines=lines,
            total=p["total"],
            discount_total=p.get("discount_total", 0),
            coupon_code=p.get("coupon_code"),
            currency=p["currency"],
            created_at=event.occurred_at,
            payment_deadline=p["payment_deadline"],
        )
    if event.type in ("order.cancelled", "order.rejected"):
        columns["reason"] = p["reason"]
    if p.get("shipment_id") is not None:
        columns["shipment_id"] = p["shipment_id"]
    if event.type == "order.delivered":
        columns["delivered_at"] = p["delivered_at"]
    return columns


def saga_columns(event: Envelope | Event) -> dict[str, Any]:
    """What a reservation, payment or shipment event sets on its order's row."""
    columns: dict[str, Any] = {}
    if event.type == "reservation.confirmed":
        columns["reservation_expires_at"] = event.payload["expires_at"]
    if event.type == "shipment.created":
        columns["shipment_id"] = event.payload["shipment_id"]
    return columns


def timeline_detail(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: payload[k] for k in DETAIL_FIELDS if payload.get(k) is not None}


def _record(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """One timeline row per event; its id makes a re-published copy a no-op."""
    detail = timeline_detail(event.payload)
    cursor.execute(
        "INSERT INTO order_timeline (event_id, order_id, type, at, detail) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
        (event.event_id, event.payload["order_id"], event.type, event.occurred_at, Jsonb(detail)),
    )


def _upsert(
    cursor: psycopg.Cursor[Any], event: Envelope, columns: dict[str, Any], guard: str | None
) -> None:
    """Insert or update the order's row with `columns`, plus updated_at and saga_step."""
    values = [event.payload["order_id"], event.occurred_at, event.type, *columns.values()]
    cursor.execute(_upsert_query(tuple(columns), guard), values)


@cache
def _upsert_query(columns: tuple[str, ...], guard: str | None) -> str:
    """One query per set of columns (a handful), composed once: composing it per event
    was a third of the projection's Python time."""
    names = ["order_id", "updated_at", "saga_step", *columns]
    updates: list[sql.Composable] = [
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name)) for name in columns
    ]
    updates.append(
        sql.SQL(
            # The latest event names the step; on a tie (hand-set clocks, one millisecond) the
            # greater type does, so arrival order between topics never decides.
            "saga_step = CASE WHEN EXCLUDED.updated_at > orders_view.updated_at THEN EXCLUDED.saga_step "
            "WHEN EXCLUDED.updated_at = orders_view.updated_at "
            'THEN GREATEST(EXCLUDED.saga_step COLLATE "C", orders_view.saga_step COLLATE "C") '
            "ELSE orders_view.saga_step END"
        )
    )
    updates.append(sql.SQL("updated_at = GREATEST(orders_view.updated_at, EXCLUDED.updated_at)"))
    return (
        sql.SQL(
            "INSERT INTO orders_view ({names}) VALUES ({values}) "
            "ON CONFLICT (order_id) DO UPDATE SET {updates}{guard}"
        )
        .format(
            names=sql.SQL(", ").join(map(sql.Identifier, names)),
            values=sql.SQL(", ").join(sql.Placeholder() * len(names)),
            updates=sql.SQL(", ").join(updates),
            guard=sql.SQL(" WHERE " + guard) if guard else sql.SQL(""),
        )
        .as_string()
    )


def order_changed(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """Any order.* event: status from its type, applied only if newer than the row."""
    columns = order_columns(event)
    if "lines" in columns:
        columns["lines"] = Jsonb(columns["lines"])
    _upsert(cursor, event, columns, "orders_view.order_version < EXCLUDED.order_version")
    _record(cursor, event)


def saga_step(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """Reservation, payment and shipment events: deadlines, compensations, timeline."""
    _upsert(cursor, event, saga_columns(event), None)
    compensation = COMPENSATION_OF.get(event.type)
    if compensation is not None:
        cursor.execute(
            # Kept sorted: inventory and payments events arrive in no fixed order between
            # topics, and a rebuild must give the same row as the live worker.
            "UPDATE orders_view SET compensations = ARRAY(SELECT c FROM unnest(array_append("
            'compensations, %s)) AS c ORDER BY c COLLATE "C") '
            "WHERE order_id = %s AND NOT (%s = ANY(compensations))",
            (compensation, event.payload["order_id"], compensation),
        )
    _record(cursor, event)


SAGA_EVENTS = (
    "reservation.confirmed",
    "reservation.failed",
    "reservation.committed",
    "reservation.released",
    "payment.captured",
    "payment.declined",
    "payment.pending",
    "payment.refunded",
    "payment.voided",
    "shipment.created",
    "shipment.picked_up",
    "shipment.in_transit",
    "shipment.out_for_delivery",
    "shipment.delivered",
)
HANDLERS = {
    **{event_type: order_changed for event_type in STATUS_OF},
    **{event_type: saga_step for event_type in SAGA_EVENTS},
}

STORED = (
    "order_id",
    "buyer_id",
    "status",
    "reason",
    "lines",
    "total",
    "currency",
    "created_at",
    "updated_at",
    "payment_deadline",
    "reservation_expires_at",
    "delivered_at",
    "shipment_id",
    "compensations",
    "saga_step",
    "order_version",
    "discount_total",
    "coupon_code",
)


class Fold:
    """The handlers above as an in-memory fold, for bulk loads (projections.bulk): the same
    columns per event type, the same version guard, saga_step and updated_at rules."""

    columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "orders_view": STORED,
        "order_timeline": ("event_id", "order_id", "type", "at", "detail"),
    }

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.timeline: list[tuple[Any, ...]] = []

    def add(self, event: Event) -> None:
        if event.type in STATUS_OF:
            columns = order_columns(event)
            if "lines" in columns:
                columns["lines"] = orjson.dumps(columns["lines"]).decode()
            self._upsert(event, columns, guarded=True)
        else:
            row = self._upsert(event, saga_columns(event), guarded=False)
            compensation = COMPENSATION_OF.get(event.type)
            if compensation is not None and compensation not in row["compensations"]:
                row["compensations"] = sorted([*row["compensations"], compensation])
        self.timeline.append(
            (
                event.event_id,
                event.payload["order_id"],
                event.type,
                event.occurred_at,
                orjson.dumps(timeline_detail(event.payload)).decode(),
            )
        )

    def _upsert(self, event: Event, columns: dict[str, Any], *, guarded: bool) -> dict[str, Any]:
        order_id, at = event.payload["order_id"], event.occurred_at
        row = self.orders.get(order_id)
        if row is None:
            row = dict.fromkeys(STORED)
            row.update(
                order_id=order_id,
                lines="[]",
                compensations=[],
                order_version=0,
                discount_total=0,
                updated_at=at,
                saga_step=event.type,
            )
            row.update(columns)
            self.orders[order_id] = row
        elif not guarded or row["order_version"] < columns["order_version"]:
            row.update(columns)
            if at > row["updated_at"] or (
                at == row["updated_at"] and event.type > row["saga_step"]
            ):
                row["saga_step"] = event.type
            row["updated_at"] = max(row["updated_at"], at)
        return row

    def appended(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        rows, self.timeline = self.timeline, []
        yield "order_timeline", rows

    def folded(self) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        yield "orders_view", (tuple(row.values()) for row in self.orders.values())


COLUMNS = tuple(name for name in STORED if name != "order_version")  # what readers get
# A row is an order once its order.placed is projected (buyer_id comes only from it): a row
# a later event made first (a saga step's columns, a planted or partial log) is not served.
SELECT = (
    f"SELECT {', '.join(COLUMNS)} FROM orders_view"
    " WHERE status IS NOT NULL AND buyer_id IS NOT NULL"
)


def _view(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(COLUMNS, row, strict=True))


def get_order(conn: psycopg.Connection[Any], order_id: str) -> dict[str, Any] | None:
    """The order with its timeline (oldest first), or None until order.placed is projected.

    One statement, so one snapshot: read as two, a compensation committed between them
    showed in the timeline but not yet in `compensations`."""
    rows = conn.execute(GET_ORDER, (order_id,)).fetchall()
    if not rows:
        return None
    order = _view(rows[0][: len(COLUMNS)])
    order["timeline"] = [
        {"event_id": event_id, "type": type_, "at": at, "detail": detail}
        for event_id, type_, at, detail in (row[len(COLUMNS) :] for row in rows)
        if event_id is not None
    ]
    return order


NOT_BOUGHT = ("rejected", "cancelled")


def products_bought_by(conn: psycopg.Connection[Any], buyer_id: UUID) -> set[str]:
    """Every product on the buyer's orders that were not rejected or cancelled (pending
    ones included)."""
    rows = conn.execute(
        "SELECT DISTINCT line->>'product_id' FROM orders_view, "
        "jsonb_array_elements(lines) AS line "
        "WHERE buyer_id = %s AND NOT (status = ANY(%s))",
        (buyer_id, list(NOT_BOUGHT)),
    ).fetchall()
    return {str(row[0]) for row in rows if row[0] is not None}


GET_ORDER = (
    f"SELECT {', '.join('v.' + c for c in COLUMNS)}, t.event_id, t.type, t.at, t.detail "
    "FROM orders_view v LEFT JOIN order_timeline t ON t.order_id = v.order_id "
    "WHERE v.status IS NOT NULL AND v.order_id = %s ORDER BY t.at, t.type"
)


def list_orders(
    conn: psycopg.Connection[Any],
    buyer_id: str,
    *,
    status: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    cursors: Cursors,
) -> tuple[list[dict[str, Any]], str | None]:
    """The buyer's orders, newest first; returns a page and the next page's cursor."""
    query, params = SELECT + " AND buyer_id = %s", [buyer_id]
    if status is not None:
        query += " AND status = %s"
        params.append(status)
    if cursor is not None:
        created_at, last_id = cursors.decode(cursor, "orders")
        query += " AND (created_at, order_id) < (%s::timestamptz, %s::uuid)"
        params.extend([created_at, last_id])
    query += " ORDER BY created_at DESC, order_id DESC LIMIT %s"
    rows = [_view(row) for row in conn.execute(query, [*params, limit + 1]).fetchall()]
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = cursors.encode("orders", (last["created_at"], last["order_id"]))
    return page, next_cursor


def stuck_sagas(
    conn: psycopg.Connection[Any],
    now: datetime,
    *,
    stale_after: timedelta = STALE_AFTER,
    auto_complete_after: timedelta = timedelta(days=7),
    limit: int = 100,
    after: tuple[datetime, UUID] | None = None,
) -> list[dict[str, Any]]:
    """Non-terminal orders past a deadline their timers should already have acted on:
    pending/reserved past payment_deadline (should be cancelled), delivered past
    delivered_at + auto_complete_after (should be completed), or any other non-terminal
    order (paid, confirmed, shipped, or pending/reserved) with no event for stale_after.
    Oldest update first; `after` is the (updated_at, order_id) of the previous page's last."""
    page = "" if after is None else " AND (updated_at, order_id) > (%(at)s, %(id)s)"
    at, last = after or (None, None)
    rows = conn.execute(
        SELECT + " AND status NOT IN ('completed', 'cancelled', 'rejected') AND ("
        " (status IN ('pending', 'reserved') AND payment_deadline < %(now)s)"
        " OR (status = 'delivered' AND delivered_at + %(complete)s < %(now)s)"
        " OR (status <> 'delivered' AND updated_at + %(stale)s < %(now)s))"
        + page
        + " ORDER BY updated_at, order_id LIMIT %(limit)s",
        {
            "now": now,
            "complete": auto_complete_after,
            "stale": stale_after,
            "limit": limit,
            "at": at,
            "id": last,
        },
    ).fetchall()
    stuck = []
    for row in rows:
        order = _view(row)
        if order["status"] in ("pending", "reserved") and order["payment_deadline"] < now:
            order["stuck_because"] = "payment_deadline_passed"
        elif order["status"] == "delivered":
            order["stuck_because"] = "auto_completion_overdue"
        else:
            order["stuck_because"] = "no_progress"
        stuck.append(order)
    return stuck
