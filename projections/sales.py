"""The seller sales read model: what a seller sold, refunded and earned, per product and
per order line.

What counts as a sale: an order line counts as sold when its order is confirmed (the
payment was captured), at the time of `order.confirmed`. It is reversed (refunded) when
that order is later cancelled with a refund due (`order.cancelled` with `refund_due`,
which the orders context sets only for paid or confirmed orders), at the time of the
cancellation. Lines of orders that are rejected, or cancelled before payment, were
never sold and are dropped. Delivery and completion change nothing: the money moved at
confirmation.

Self-contained: the seller of a product comes from `product.created` on catalog.events,
not from the catalogue read model. Catalogue and order events travel on different
topics (possibly consumed by different replicas at once), so neither side waits for the
other: lines are stored by product and joined to `sales_products` when queried, and a
line whose product has not arrived yet simply shows up once it has. Within one order,
events arrive in aggregate order (same key, same partition): placed, confirmed,
cancelled.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

import psycopg

from eventmart.contracts import Envelope, Event
from projections.cursors import Cursors

GROUP = "sales-projection"
TOPICS = ["catalog.events", "orders.events"]

DDL = """
CREATE TABLE IF NOT EXISTS sales_products (
    product_id uuid PRIMARY KEY,
    seller_id uuid NOT NULL,
    name text NOT NULL,
    catalog_version bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS sales_products_seller ON sales_products (seller_id);
CREATE TABLE IF NOT EXISTS sale_lines (
    order_id uuid NOT NULL,
    product_id uuid NOT NULL,
    quantity int NOT NULL,
    unit_price bigint NOT NULL,
    currency text NOT NULL,
    placed_at timestamptz NOT NULL,
    sold_at timestamptz,
    refunded_at timestamptz,
    list_price bigint,
    line_total bigint,
    PRIMARY KEY (order_id, product_id)
);
-- Added with the pricing context (a line's list price and what was charged for it); lines
-- stored before have neither: they cost their unit price, undiscounted.
ALTER TABLE sale_lines ADD COLUMN IF NOT EXISTS list_price bigint;
ALTER TABLE sale_lines ADD COLUMN IF NOT EXISTS line_total bigint;
CREATE INDEX IF NOT EXISTS sale_lines_product_sold ON sale_lines (product_id, sold_at);
CREATE INDEX IF NOT EXISTS sale_lines_product_refunded ON sale_lines (product_id, refunded_at)
    WHERE refunded_at IS NOT NULL;
"""


def product_created(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    p = event.payload
    cursor.execute(
        "INSERT INTO sales_products (product_id, seller_id, name, catalog_version) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (product_id) DO UPDATE SET "
        "seller_id = EXCLUDED.seller_id, name = EXCLUDED.name, "
        "catalog_version = EXCLUDED.catalog_version "
        "WHERE sales_products.catalog_version < EXCLUDED.catalog_version",
        (p["product_id"], p["seller_id"], p["name"], event.aggregate_version),
    )


def product_updated(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """Only the name is shown with sales; a rename older than the row changes nothing."""
    name = event.payload["changes"].get("name")
    if name is not None:
        cursor.execute(
            "UPDATE sales_products SET name = %s, catalog_version = %s "
            "WHERE product_id = %s AND catalog_version < %s",
            (name, event.aggregate_version, event.payload["product_id"], event.aggregate_version),
        )


def order_placed(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """Lines wait here, unsold, until the order is confirmed or dropped."""
    p = event.payload
    cursor.executemany(
        "INSERT INTO sale_lines (order_id, product_id, quantity, unit_price, currency, placed_at, "
        "list_price, line_total) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (order_id, product_id) DO NOTHING",
        [
            (
                p["order_id"],
                line["product_id"],
                line["quantity"],
                line["unit_price"],
                p["currency"],
                event.occurred_at,
                line.get("list_price"),
                line.get("line_total"),
            )
            for line in p["lines"]
        ],
    )


def order_confirmed(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    cursor.execute(
        "UPDATE sale_lines SET sold_at = %s WHERE order_id = %s AND sold_at IS NULL",
        (event.occurred_at, event.payload["order_id"]),
    )


def order_cancelled(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """After payment: the sale is reversed. Before: it never happened."""
    if event.payload["refund_due"]:
        cursor.execute(
            "UPDATE sale_lines SET refunded_at = %s "
            "WHERE order_id = %s AND sold_at IS NOT NULL AND refunded_at IS NULL",
            (event.occurred_at, event.payload["order_id"]),
        )
    else:
        order_rejected(cursor, event)


def order_rejected(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    cursor.execute(
        "DELETE FROM sale_lines WHERE order_id = %s AND sold_at IS NULL",
        (event.payload["order_id"],),
    )


HANDLERS = {
    "product.created": product_created,
    "product.updated": product_updated,
    "order.placed": order_placed,
    "order.confirmed": order_confirmed,
    "order.cancelled": order_cancelled,
    "order.rejected": order_rejected,
}


class Fold:
    """The handlers above as an in-memory fold, for bulk loads (projections.bulk)."""

    columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "sales_products": ("product_id", "seller_id", "name", "catalog_version"),
        "sale_lines": (
            "order_id",
            "product_id",
            "quantity",
            "unit_price",
            "currency",
            "placed_at",
            "sold_at",
            "refunded_at",
            "list_price",
            "line_total",
        ),
    }

    def __init__(self) -> None:
        self.products: dict[str, list[Any]] = {}
        self.lines: dict[str, dict[str, list[Any]]] = {}  # order -> product -> row

    def add(self, event: Event) -> None:
        p, at = event.payload, event.occurred_at
        if event.type == "product.created":
            row = self.products.get(p["product_id"])
            if row is None or row[3] < event.aggregate_version:
                self.products[p["product_id"]] = [
                    p["product_id"],
                    p["seller_id"],
                    p["name"],
                    event.aggregate_version,
                ]
        elif event.type == "product.updated":
            row = self.products.get(p["product_id"])
            name = p["changes"].get("name")
            if name is not None and row is not None and row[3] < event.aggregate_version:
                row[2:4] = [name, event.aggregate_version]
        elif event.type == "order.placed":
            lines = self.lines.setdefault(p["order_id"], {})
            for line in p["lines"]:
                lines.setdefault(
                    line["product_id"],
                    [
                        p["order_id"],
                        line["product_id"],
                        line["quantity"],
                        line["unit_price"],
                        p["currency"],
                        at,
                        None,
                        None,
                        line.get("list_price"),
                        line.get("line_total"),
                    ],
                )
        else:
            self._order_moved(event)

    def _order_moved(self, event: Event) -> None:
        lines = self.lines.get(event.payload["order_id"], {})
        if event.type == "order.confirmed":
            for row in lines.values():
                if row[6] is None:
                    row[6] = event.occurred_at
        elif event.type == "order.cancelled" and event.payload["refund_due"]:
            for row in lines.values():
                if row[6] is not None and row[7] is None:
                    row[7] = event.occurred_at
        else:  # rejected, or cancelled before payment
            for product_id in [k for k, row in lines.items() if row[6] is None]:
                del lines[product_id]

    def appended(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        return iter(())

    def folded(self) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        yield "sales_products", (tuple(row) for row in self.products.values())
        yield "sale_lines", (tuple(row) for lines in self.lines.values() for row in lines.values())


# ---- queries --------------------------------------------------------------------------

# `from` inclusive, `to` exclusive; None is open-ended.
SOLD = (
    "l.sold_at >= coalesce(%(since)s::timestamptz, '-infinity') "
    "AND l.sold_at < coalesce(%(until)s::timestamptz, 'infinity')"
)
REFUNDED = (
    "l.refunded_at >= coalesce(%(since)s::timestamptz, '-infinity') "
    "AND l.refunded_at < coalesce(%(until)s::timestamptz, 'infinity')"
)
# What a line was charged (after discounts), and what it would have been at list price;
# lines stored before the pricing context were charged their unit price, undiscounted.
CHARGED = "coalesce(l.line_total, l.quantity * l.unit_price)"
LISTED = "l.quantity * coalesce(l.list_price, l.unit_price)"
MEASURES = f"""
    count(DISTINCT l.order_id) FILTER (WHERE {SOLD}) AS orders,
    coalesce(sum(l.quantity) FILTER (WHERE {SOLD}), 0)::bigint AS units,
    coalesce(sum({CHARGED}) FILTER (WHERE {SOLD}), 0)::bigint AS gross,
    coalesce(sum({LISTED}) FILTER (WHERE {SOLD}), 0)::bigint AS gross_before_discounts,
    count(DISTINCT l.order_id) FILTER (WHERE {REFUNDED}) AS refunded_orders,
    coalesce(sum(l.quantity) FILTER (WHERE {REFUNDED}), 0)::bigint AS refunded_units,
    coalesce(sum({CHARGED}) FILTER (WHERE {REFUNDED}), 0)::bigint AS refunds
"""
MEASURE_NAMES = (
    "orders",
    "units",
    "gross",
    "gross_before_discounts",
    "refunded_orders",
    "refunded_units",
    "refunds",
)
SELLERS_LINES = (
    f"FROM sale_lines l JOIN sales_products p USING (product_id) "
    f"WHERE p.seller_id = %(seller)s AND (({SOLD}) OR ({REFUNDED}))"
)


def most_sold(conn: psycopg.Connection[Any], limit: int) -> list[tuple[str, float]]:
    """Products by distinct orders sold and not refunded, most first (ties by id)."""
    rows = conn.execute(
        "SELECT product_id::text, count(DISTINCT order_id) FROM sale_lines "
        "WHERE refunded_at IS NULL GROUP BY product_id ORDER BY 2 DESC, 1 LIMIT %s",
        (limit,),
    ).fetchall()
    return [(str(row[0]), float(row[1])) for row in rows]


def _measures(row: tuple[Any, ...]) -> dict[str, int]:
    measures = dict(zip(MEASURE_NAMES, row, strict=True))
    measures["net"] = measures["gross"] - measures["refunds"]
    measures["discounts"] = measures["gross_before_discounts"] - measures["gross"]
    return measures


def sales_summary(
    conn: psycopg.Connection[Any],
    seller_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Totals and a per-product breakdown (largest gross first) over [since, until): sales
    counted when confirmed, refunds when the sale was reversed, net = gross - refunds."""
    params = {"seller": seller_id, "since": since, "until": until}
    totals = conn.execute(f"SELECT {MEASURES} {SELLERS_LINES}", params).fetchone()
    assert totals is not None  # an aggregate without GROUP BY always answers one row
    products = conn.execute(
        f"SELECT l.product_id, p.name, {MEASURES} {SELLERS_LINES} GROUP BY l.product_id, p.name "
        "ORDER BY gross DESC, l.product_id",
        params,
    ).fetchall()
    return {
        "totals": _measures(totals),
        "products": [
            {"product_id": product_id, "name": name, **_measures(measures)}
            for product_id, name, *measures in products
        ],
    }


LINE_COLUMNS = (
    "order_id",
    "product_id",
    "name",
    "quantity",
    "unit_price",
    "currency",
    "sold_at",
    "refunded_at",
    "list_price",
    "line_total",
)


def list_sale_lines(
    conn: psycopg.Connection[Any],
    seller_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    cursor: str | None = None,
    cursors: Cursors,
) -> tuple[list[dict[str, Any]], str | None]:
    """The seller's lines sold in [since, until), newest sale first, each with its refund
    time if reversed (whenever that was); a page and the next page's cursor."""
    query = (
        "SELECT l.order_id, l.product_id, p.name, l.quantity, l.unit_price, l.currency, "
        "l.sold_at, l.refunded_at, coalesce(l.list_price, l.unit_price), "
        "coalesce(l.line_total, l.quantity * l.unit_price) FROM sale_lines l JOIN sales_products p USING (product_id) "
        f"WHERE p.seller_id = %(seller)s AND {SOLD}"
    )
    params: dict[str, Any] = {
        "seller": seller_id,
        "since": since,
        "until": until,
        "limit": limit + 1,
    }
    if cursor is not None:
        sold_at, order_id, product_id = cursors.decode(cursor, "sales")
        query += (
            " AND (l.sold_at, l.order_id, l.product_id) < "
            "(%(sold_at)s::timestamptz, %(order_id)s::uuid, %(product_id)s::uuid)"
        )
        params.update(sold_at=sold_at, order_id=order_id, product_id=product_id)
    query += " ORDER BY l.sold_at DESC, l.order_id DESC, l.product_id DESC LIMIT %(limit)s"
    rows = [
        dict(zip(LINE_COLUMNS, row, strict=True)) for row in conn.execute(query, params).fetchall()
    ]
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = cursors.encode(
            "sales", (last["sold_at"], last["order_id"], last["product_id"])
        )
    return page, next_cursor
