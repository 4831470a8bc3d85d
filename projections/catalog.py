"""The catalogue read model: what product listing, search and detail answer from.

Catalogue and stock events travel on different topics, so either may arrive first:
rows are upserted with nullable catalogue columns, and queries show only rows whose
`product.created` has arrived (`sku IS NOT NULL`). Each side keeps its own aggregate
version, so a re-published older event never rolls a row back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import psycopg
from psycopg import sql

from domain.errors import InvalidInput
from eventmart.contracts import Envelope, Event
from projections import ratings
from projections.cursors import Cursors

GROUP = "catalog-projection"
TOPICS = ["catalog.events", "inventory.events"]
SORTS = ("price", "-price", "rating", "newest")
EDITABLE_COLUMNS = ("name", "description", "category")

DDL = """
CREATE TABLE IF NOT EXISTS products_view (
    product_id uuid PRIMARY KEY,
    seller_id uuid,
    sku text,
    name text,
    description text,
    category text,
    price_amount bigint,
    currency text,
    on_hand int NOT NULL DEFAULT 0,
    reserved int NOT NULL DEFAULT 0,
    available int NOT NULL DEFAULT 0,
    rating_average numeric,
    rating_count int NOT NULL DEFAULT 0,
    created_at timestamptz,
    updated_at timestamptz NOT NULL,
    catalog_version bigint NOT NULL DEFAULT 0,
    stock_version bigint NOT NULL DEFAULT 0,
    search tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(description, ''))
    ) STORED
);
CREATE INDEX IF NOT EXISTS products_view_search ON products_view USING GIN (search);
CREATE INDEX IF NOT EXISTS products_view_category_newest
    ON products_view (category, created_at DESC, product_id DESC);
CREATE INDEX IF NOT EXISTS products_view_seller ON products_view (seller_id, created_at DESC);
CREATE INDEX IF NOT EXISTS products_view_price ON products_view (price_amount, product_id);
CREATE INDEX IF NOT EXISTS products_view_newest ON products_view (created_at DESC, product_id DESC);
CREATE OR REPLACE FUNCTION public.products_view_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_SCHEMA = 'public' THEN
        PERFORM pg_notify(TG_TABLE_NAME,
                          CASE WHEN TG_OP = 'DELETE' THEN OLD.product_id ELSE NEW.product_id END::text);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER products_view_changed AFTER INSERT OR UPDATE OR DELETE ON products_view
    FOR EACH ROW EXECUTE FUNCTION public.products_view_changed();
"""
# The API keeps product-detail answers in memory (api.product_cache); every change of a
# live row is announced on the channel named after its table (the trigger's TG_TABLE_NAME),
# delivered when its transaction commits. A rebuild announces "*" on the same channel when
# it swaps the table in (projections.rebuild). Shadow tables stay quiet.
CHANGES_CHANNEL = "products_view"


def product_created(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    p = event.payload
    cursor.execute(
        "INSERT INTO products_view (product_id, seller_id, sku, name, description, category, "
        "price_amount, currency, created_at, updated_at, catalog_version) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (product_id) DO UPDATE SET seller_id = EXCLUDED.seller_id, sku = EXCLUDED.sku, "
        "name = EXCLUDED.name, description = EXCLUDED.description, category = EXCLUDED.category, "
        "price_amount = EXCLUDED.price_amount, currency = EXCLUDED.currency, "
        "created_at = EXCLUDED.created_at, catalog_version = EXCLUDED.catalog_version, "
        "updated_at = GREATEST(products_view.updated_at, EXCLUDED.updated_at) "
        "WHERE products_view.catalog_version < EXCLUDED.catalog_version",
        (
            p["product_id"],
            p["seller_id"],
            p["sku"],
            p["name"],
            p["description"],
            p["category"],
            p["price_amount"],
            p["currency"],
            event.occurred_at,
            event.occurred_at,
            event.aggregate_version,
        ),
    )


def _update_catalog(cursor: psycopg.Cursor[Any], event: Envelope, changes: dict[str, Any]) -> None:
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(column)) for column in changes
    )
    cursor.execute(
        sql.SQL(
            "UPDATE products_view SET {}, catalog_version = %s, "
            "updated_at = GREATEST(updated_at, %s) "
            "WHERE product_id = %s AND catalog_version < %s"
        ).format(assignments),
        (
            *changes.values(),
            event.aggregate_version,
            event.occurred_at,
            event.payload["product_id"],
            event.aggregate_version,
        ),
    )


def product_updated(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    changes = {k: v for k, v in event.payload["changes"].items() if k in EDITABLE_COLUMNS}
    if changes:
        _update_catalog(cursor, event, changes)


def product_price_changed(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    _update_catalog(cursor, event, {"price_amount": event.payload["new_amount"]})


def stock_changed(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """Stock payloads carry the counts after the change: copy them if newer."""
    p = event.payload
    cursor.execute(
        "INSERT INTO products_view (product_id, on_hand, reserved, available, stock_version, "
        "updated_at) VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (product_id) DO UPDATE SET on_hand = EXCLUDED.on_hand, "
        "reserved = EXCLUDED.reserved, available = EXCLUDED.available, "
        "stock_version = EXCLUDED.stock_version, "
        "updated_at = GREATEST(products_view.updated_at, EXCLUDED.updated_at) "
        "WHERE products_view.stock_version < EXCLUDED.stock_version",
        (
            p["product_id"],
            p["on_hand"],
            p["reserved"],
            p["available"],
            event.aggregate_version,
            event.occurred_at,
        ),
    )


HANDLERS = {
    "product.created": product_created,
    "product.updated": product_updated,
    "product.price_changed": product_price_changed,
    "stock.received": stock_changed,
    "stock.reserved": stock_changed,
    "stock.committed": stock_changed,
    "stock.released": stock_changed,
}

STORED = (
    "product_id",
    "seller_id",
    "sku",
    "name",
    "description",
    "category",
    "price_amount",
    "currency",
    "on_hand",
    "reserved",
    "available",
    "rating_average",
    "rating_count",
    "created_at",
    "updated_at",
    "catalog_version",
    "stock_version",
)
CATALOG_FIELDS = ("seller_id", "sku", "name", "description", "category", "price_amount", "currency")


class Fold:
    """The handlers above as an in-memory fold, for bulk loads (projections.bulk): the same
    version guards, the same GREATEST for updated_at, the same defaults."""

    columns: ClassVar[dict[str, tuple[str, ...]]] = {"products_view": STORED}

    def __init__(self) -> None:
        self.products: dict[str, dict[str, Any]] = {}

    def _new(self, product_id: str, event: Event) -> dict[str, Any]:
        row = dict.fromkeys(STORED)
        row.update(
            product_id=product_id,
            on_hand=0,
            reserved=0,
            available=0,
            rating_count=0,
            catalog_version=0,
            stock_version=0,
            updated_at=event.occurred_at,
        )
        self.products[product_id] = row
        return row

    def add(self, event: Event) -> None:
        p = event.payload
        row = self.products.get(p["product_id"])
        version, at = event.aggregate_version, event.occurred_at
        if event.type == "product.created":
            if row is None:
                row = self._new(p["product_id"], event)
            elif row["catalog_version"] >= version:
                return
            row.update({field: p[field] for field in CATALOG_FIELDS})
            row.update(
                created_at=at, catalog_version=version, updated_at=max(row["updated_at"], at)
            )
        elif event.type in ("product.updated", "product.price_changed"):
            if event.type == "product.updated":
                changes = {k: v for k, v in p["changes"].items() if k in EDITABLE_COLUMNS}
            else:
                changes = {"price_amount": p["new_amount"]}
            if changes and row is not None and row["catalog_version"] < version:
                row.update(changes)
                row.update(catalog_version=version, updated_at=max(row["updated_at"], at))
        else:  # stock.*
            if row is None:
                row = self._new(p["product_id"], event)
            elif row["stock_version"] >= version:
                return
            row.update(
                on_hand=p["on_hand"],
                reserved=p["reserved"],
                available=p["available"],
                stock_version=version,
                updated_at=max(row["updated_at"], at),
            )

    def appended(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        return iter(())

    def folded(self) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        yield "products_view", (tuple(row.values()) for row in self.products.values())


COLUMNS = (
    "product_id",
    "sku",
    "name",
    "description",
    "category",
    "seller_id",
    "price_amount",
    "currency",
    "on_hand",
    "reserved",
    "available",
    "created_at",
    "updated_at",
    *ratings.COLUMNS,
)
# The rating comes from the ratings read model (projections.ratings), beside each row.
SELECT = f"SELECT {', '.join(COLUMNS)} FROM products_view {ratings.JOIN} WHERE sku IS NOT NULL"

# sort -> (key expression, direction, how a cursor's key is cast back)
ORDERINGS: dict[str, tuple[str, str, str]] = {
    "price": ("price_amount", "ASC", "bigint"),
    "-price": ("price_amount", "DESC", "bigint"),
    "rating": (f"coalesce({ratings.BAYESIAN}, -1)", "DESC", "numeric"),
    "newest": ("created_at", "DESC", "timestamptz"),
}


def _view(row: tuple[Any, ...]) -> dict[str, Any]:
    r = dict(zip(COLUMNS, row, strict=True))
    return {
        "product_id": r["product_id"],
        "sku": r["sku"],
        "name": r["name"],
        "description": r["description"],
        "category": r["category"],
        "seller_id": r["seller_id"],
        "price": {"amount": r["price_amount"], "currency": r["currency"]},
        "stock": {"on_hand": r["on_hand"], "reserved": r["reserved"], "available": r["available"]},
        "rating": ratings.rating_view(*row[-len(ratings.COLUMNS) :]),
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
    }


async def get_product(conn: psycopg.AsyncConnection[Any], product_id: str) -> dict[str, Any] | None:
    """One primary-key lookup (prepared by psycopg after a few uses on a connection)."""
    cursor = await conn.execute(SELECT + " AND product_id = %s", (product_id,))
    row = await cursor.fetchone()
    return _view(row) if row is not None else None


async def product_category(conn: psycopg.AsyncConnection[Any], product_id: UUID) -> str | None:
    """The category of a product the read model has (None until `product.created` arrived)."""
    cursor = await conn.execute(
        "SELECT category FROM products_view WHERE product_id = %s", (product_id,)
    )
    row = await cursor.fetchone()
    return None if row is None or row[0] is None else str(row[0])


CANDIDATE_COLUMNS = (
    "product_id",
    "name",
    "description",
    "category",
    "price_amount",
    "currency",
    "seller_id",
    "available",
)


def candidate_rows(conn: psycopg.Connection[Any], product_ids: list[str]) -> list[tuple[Any, ...]]:
    """What the recommendation rules check of each product (CANDIDATE_COLUMNS, ids as
    text), for those of `product_ids` whose `product.created` arrived."""
    rows = conn.execute(
        "SELECT product_id::text, name, description, category, price_amount, currency, "
        "seller_id::text, available FROM products_view "
        "WHERE product_id = ANY(%s::uuid[])",
        (product_ids,),
    ).fetchall()
    return [tuple(row) for row in rows if row[1] is not None]


def _sort_key(row: tuple[Any, ...], sort: str) -> Any:
    """The last row's key as the SQL ORDER BY sees it (exact numeric, full timestamp)."""
    r = dict(zip(COLUMNS, row, strict=True))
    if sort in ("price", "-price"):
        return r["price_amount"]
    if sort == "rating":
        bayesian: Decimal | None = row[-1]
        return bayesian if bayesian is not None else Decimal(-1)
    created_at: datetime = r["created_at"]
    return created_at


async def list_products(
    conn: psycopg.AsyncConnection[Any],
    *,
    category: str | None = None,
    seller_id: str | None = None,
    q: str | None = None,
    sort: str = "newest",
    limit: int = 20,
    cursor: str | None = None,
    cursors: Cursors,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of products and the cursor of the next page (None on the last)."""
    if sort not in ORDERINGS:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
    key, direction, cast = ORDERINGS[sort]
    where, params = [SELECT], []
    if category is not None:
        where.append("category = %s")
        params.append(category)
    if seller_id is not None:
        where.append("seller_id = %s")
        params.append(seller_id)
    if q is not None and q.strip():
        where.append("search @@ websearch_to_tsquery('simple', %s)")
        params.append(q)
    if cursor is not None:
        last_key, last_id = cursors.decode(cursor, f"products:{sort}")
        compare = ">" if direction == "ASC" else "<"
        where.append(f"({key}, product_id) {compare} (%s::{cast}, %s::uuid)")
        params.extend([last_key, last_id])
    query = " AND ".join(where) + f" ORDER BY {key} {direction}, product_id {direction} LIMIT %s"
    rows = await (await conn.execute(query, [*params, limit + 1])).fetchall()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = cursors.encode(f"products:{sort}", (_sort_key(page[-1], sort), page[-1][0]))
    return [_view(row) for row in page], next_cursor
