"""Aggregates read without being changed (a quote's promotions, rules, coupon and product),
answered from memory while their event store announces no change of theirs.

eventsourcing's aggregate cache still asks the store for newer events on every read (one
query each: a quote made about ten), and asks again for every aggregate that does not exist
(most of a product's promotion indexes). Here a trigger on the application's events table
announces each new event's aggregate on a channel named after the table (delivered at
commit, whichever process wrote it), and a read is answered from memory until its
aggregate is announced, or for `max_age` at most (api.notified_cache closes the races).
So a read is as fresh as the store, give or take the notification's trip (about a
millisecond). Commands never read through here: they load and save as before.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application

from api.notified_cache import NotifiedCache
from domain.reads import ReadsWithoutChanging
from eventmart.wiring import events_table

# Installed at start by every API process (idempotent; an advisory lock serialises them, as
# concurrent CREATE OR REPLACE of one function can fail).
ANNOUNCE_FUNCTION = """
SELECT pg_advisory_xact_lock(hashtext('eventmart.aggregate_changed'));
CREATE OR REPLACE FUNCTION public.eventmart_aggregate_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_NAME, NEW.originator_id::text);
    RETURN NULL;
END $$;
"""
ANNOUNCE_TRIGGER = (
    "CREATE OR REPLACE TRIGGER aggregate_changed AFTER INSERT ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION public.eventmart_aggregate_changed()"
)


async def announce_changes(dsn: str, table: str) -> None:
    """Make `table` (an application's events) announce each new event's aggregate id on
    the channel named `table`."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
        await conn.execute(ANNOUNCE_FUNCTION)
        await conn.execute(ANNOUNCE_TRIGGER.format(table=table))  # our own table name


MISSING = object()  # a cached "no such aggregate"


class QuietReads:
    """`get(id)`: the aggregate (not a copy: never change it) or None if there is none."""

    def __init__(
        self,
        application: ReadsWithoutChanging,
        dsn: str,
        *,
        max_entries: int = 20_000,
    ) -> None:
        assert isinstance(application, Application)
        self.application = application
        self.dsn = dsn
        self.table = events_table(application)
        self.unchanged: NotifiedCache[object] = NotifiedCache(
            dsn, (self.table,), max_entries=max_entries, name=f"{self.table} reads"
        )

    async def start(self) -> None:
        """Listen, then serve the application's read-only reads (domain.reads)."""
        await announce_changes(self.dsn, self.table)
        await self.unchanged.start()
        self.application.quiet_reads = self.get
        self.application.quiet_forget = self.forget

    async def stop(self) -> None:
        self.application.quiet_reads = self.application.quiet_forget = None
        await self.unchanged.stop()

    def forget(self, aggregate_id: UUID) -> None:
        """Saved by this process: the next read asks the store (no need to wait for the
        notification)."""
        self.unchanged.changed(str(aggregate_id))

    def get(self, aggregate_id: UUID) -> Any | None:
        key = str(aggregate_id)
        found = self.unchanged.get(key)
        if found is not None:
            return None if found is MISSING else found
        ticket = self.unchanged.ticket()
        try:
            found = self.application.repository.get(aggregate_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            found = None
        self.unchanged.put(key, MISSING if found is None else found, ticket)
        return found
