"""Every read model, by consumer-group name, for the runner, rebuild and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from eventmart.contracts import Envelope
from eventmart.personal_data import FieldCipher
from eventmart.sealing import open_envelope
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
    # Shows personal fields: its handlers see them opened (`opening`), `[erased]` once the
    # subject's key is gone.
    personal: bool = False

    def handlers_opening(self, cipher: FieldCipher | None) -> Mapping[str, Handler]:
        """The handlers as they must run: for a personal model, each given the event with
        its sealed fields opened through `cipher`."""
        if not self.personal:
            return self.handlers
        if cipher is None:
            raise ValueError(f"{self.group} shows personal fields: it needs the key service")
        return {kind: _opening(handler, cipher) for kind, handler in self.handlers.items()}


def _opening(handler: Handler, cipher: FieldCipher) -> Handler:
    def opened(cursor: psycopg.Cursor[Any], envelope: Envelope) -> None:
        handler(cursor, open_envelope(envelope, cipher))

    return opened


READ_MODELS: dict[str, ReadModel] = {
    users.GROUP: ReadModel(users.GROUP, users.TOPICS, users.DDL, users.HANDLERS, personal=True),
    catalog.GROUP: ReadModel(catalog.GROUP, catalog.TOPICS, catalog.DDL, catalog.HANDLERS),
    orders.GROUP: ReadModel(
        orders.GROUP, orders.TOPICS, orders.DDL, orders.HANDLERS, order_trace.record_hops
    ),
    sales.GROUP: ReadModel(sales.GROUP, sales.TOPICS, sales.DDL, sales.HANDLERS),
    purchases.GROUP: ReadModel(
        purchases.GROUP, purchases.TOPICS, purchases.DDL, purchases.HANDLERS
    ),
    reviews.GROUP: ReadModel(
        reviews.GROUP, reviews.TOPICS, reviews.DDL, reviews.HANDLERS, personal=True
    ),
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
