"""Every read model, by consumer-group name, for the runner, rebuild and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from projections import catalog, order_trace, orders, purchases, ratings, reviews, sales, users
from projections.tracking import TRACKING_DDL, Handler, Recorder


@dataclass(frozen=True)
class ReadModel:
    group: str
    topics: list[str]
    ddl: str
    handlers: Mapping[str, Handler]
    # Also given each batch's deliveries, in its transaction (tables outside the rebuild).
    recorder: Recorder | None = None


READ_MODELS: dict[str, ReadModel] = {
    users.GROUP: ReadModel(users.GROUP, users.TOPICS, users.DDL, users.HANDLERS),
    catalog.GROUP: ReadModel(catalog.GROUP, catalog.TOPICS, catalog.DDL, catalog.HANDLERS),
    orders.GROUP: ReadModel(
        orders.GROUP, orders.TOPICS, orders.DDL, orders.HANDLERS, order_trace.record_hops
    ),
    sales.GROUP: ReadModel(sales.GROUP, sales.TOPICS, sales.DDL, sales.HANDLERS),
    purchases.GROUP: ReadModel(
        purchases.GROUP, purchases.TOPICS, purchases.DDL, purchases.HANDLERS
    ),
    reviews.GROUP: ReadModel(reviews.GROUP, reviews.TOPICS, reviews.DDL, reviews.HANDLERS),
    ratings.GROUP: ReadModel(ratings.GROUP, ratings.TOPICS, ratings.DDL, ratings.HANDLERS),
}


# Held while read-model DDL runs, so processes starting together don't race on it.
INSTALL_LOCK = 7003


def install(conn: psycopg.Connection[Any]) -> None:
    """Create the tracking tables and every read model's tables (idempotent)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK,))
        conn.execute(TRACKING_DDL)
        for model in READ_MODELS.values():
            conn.execute(model.ddl)
        conn.execute(order_trace.DDL)
