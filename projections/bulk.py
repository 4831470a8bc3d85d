"""Bulk load of an empty read model from the log: the fast first phase of a rebuild.

Applying a million events one transaction statement at a time is round trips all the
way down. When the tables start empty (a rebuild's shadow), the same result comes from
folding the events per row in memory and writing each table once with COPY:

- Each read model that offers it has a `Fold` beside its handlers, which must end in
  exactly the rows its handlers would write for the same events (the rebuild test
  checks both against each other and against the live model).
- Deduplication is the same as `claim`: the first copy of an (aggregate id, version)
  in log order is applied, later copies are dropped. Records are decoded by
  `contracts.Decoder` (the same checks and values as `parse`, in one pass).
- Append-only rows (the event identities in `applied_events`, an order's timeline) go
  out with COPY every chunk of events (an eighth of the load, 5,000 to 50,000 events,
  so a small load overlaps its writes too), from a writer thread while the next chunk is
  decoded, so memory stays bounded; folded rows go out at the end. A COPY that breaks a constraint (say two different events sharing an event id)
  fails the bulk load, and the caller starts over on the event-at-a-time path.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, ClassVar, Protocol

import psycopg
from psycopg import sql

from eventmart.contracts import Decoder, Event, MalformedEvent
from eventmart.personal_data import FieldCipher
from eventmart.sealing import open_event
from projections import catalog, orders, sales, users
from projections.tracking import save_positions

CHUNK = 50_000


def chunk_for(events: int) -> int:
    """Events per chunk for a load of about `events`."""
    return max(5_000, min(CHUNK, events // 8))


Rows = Iterator[tuple[Any, ...]]
Chunk = list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]  # table, columns, rows


class Fold(Protocol):
    """A read model's handlers, as an in-memory fold over events in log order."""

    columns: ClassVar[dict[str, tuple[str, ...]]]  # table -> the columns its rows carry

    def add(self, event: Event) -> None: ...

    def appended(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """Rows of append-only tables since the last call (then forgotten)."""
        ...

    def folded(self) -> Iterator[tuple[str, Rows]]:
        """Every row of the folded tables, once all events are in."""
        ...


FOLDS: dict[str, type[Fold]] = {
    users.GROUP: users.Fold,
    catalog.GROUP: catalog.Fold,
    orders.GROUP: orders.Fold,
    sales.GROUP: sales.Fold,
}


def copy_rows(
    cursor: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], rows: Rows
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


class BulkLoad:
    """Feed it records in log order (`add`), then `finish`; writes on `conn`'s search path.

    Append-only rows are written by one writer thread while decoding goes on (psycopg
    waits for the server without the GIL), one chunk at a time, so PostgreSQL ingests a
    chunk while the next one is folded."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        group: str,
        handled: frozenset[str],
        fold: Fold,
        chunk: int = CHUNK,
        cipher: FieldCipher | None = None,
    ) -> None:
        """`cipher`: a personal model's, to fold events with their sealed fields opened
        as its handlers see them (projections.registry.ReadModel.handlers_opening)."""
        self.conn, self.group, self.fold, self.chunk = conn, group, fold, chunk
        self.cipher = cipher
        self.decode = Decoder(handled)
        self.seen: set[tuple[str, int]] = set()
        self.identities: list[tuple[Any, ...]] = []
        self.reached: dict[tuple[str, int], int] = {}
        self.applied = self.malformed = 0
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="bulk-load-writer")
        self.writing: Future[None] | None = None

    def add(self, topic: str, partition: int, offset: int, raw: bytes) -> None:
        self.reached[(topic, partition)] = offset + 1
        try:
            event = self.decode(raw)
        except MalformedEvent:
            self.malformed += 1
            return
        if event is None:
            return  # a type this model ignores (the live worker skips it too)
        self.apply(event)

    def add_decoded(
        self, reached: dict[tuple[str, int], int], malformed: int, events: list[Event]
    ) -> None:
        """What `add` would have done with records another process decoded
        (projections.decode_shard): `events` in their partitions' order."""
        self.reached.update(reached)
        self.malformed += malformed
        for event in events:
            self.apply(event)

    def apply(self, event: Event) -> None:
        """One decoded event: dropped if a copy came first, else folded."""
        identity = (event.aggregate_id, event.aggregate_version)
        if identity in self.seen:
            return
        self.seen.add(identity)
        self.identities.append((self.group, *identity))
        self.fold.add(event if self.cipher is None else open_event(event, self.cipher))
        self.applied += 1
        if len(self.identities) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Hand the append-only rows so far to the writer (after the chunk before them)."""
        self._wait_for_writer()
        chunk: Chunk = [
            (
                "applied_events",
                ("consumer_group", "aggregate_id", "aggregate_version"),
                self.identities,
            )
        ]
        chunk += [(table, self.fold.columns[table], rows) for table, rows in self.fold.appended()]
        self.identities = []
        self.writing = self.writer.submit(self._write, chunk)

    def _write(self, chunk: Chunk) -> None:
        """One chunk in one transaction."""
        with self.conn.transaction(), self.conn.cursor() as cursor:
            for table, columns, rows in chunk:
                copy_rows(cursor, table, columns, iter(rows))

    def _wait_for_writer(self) -> None:
        if self.writing is not None:
            writing, self.writing = self.writing, None
            writing.result()  # a failed chunk fails the load here

    def finish(self) -> None:
        try:
            self.flush()
            self._wait_for_writer()
            with self.conn.transaction(), self.conn.cursor() as cursor:
                for table, rows in self.fold.folded():
                    copy_rows(cursor, table, self.fold.columns[table], rows)
                save_positions(cursor, self.group, self.reached)
        finally:
            self.close()

    def close(self) -> None:
        """Wait for the writer to stop (a load given up half way must not write on)."""
        if self.writing is not None:
            self.writing.cancel()
            wait([self.writing])
        self.writer.shutdown(wait=True)
