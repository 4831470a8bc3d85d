"""Rebuild a read model from offset zero beside the live one, then swap it in atomically.

How: the shadow lives in its own PostgreSQL schema, `rebuild_<group>`, holding the
model's tables and its own tracking tables (created by the model's DDL and
TRACKING_DDL under `search_path = rebuild_<group>, public`). A plain aiokafka
consumer (no group, so no live offset moves) reads the model's topics from offset
zero. Up to the end offsets seen at start, a model with a fold (projections.bulk)
is loaded in bulk: events folded per row in memory, tables written with COPY (on a
big log, records are decoded by one process per core, projections.decode_shard); a model
without one, or a bulk load that fails, is applied with the model's own handlers
through `apply_deliveries` in large batches. Then it applies, with the handlers,
until it has reached what the live group has applied (`public.consumer_positions`). The swap is one
transaction: lock the tracking tables, then the live tables; apply whatever the live
worker applied since; replace the group's `applied_events` and `consumer_positions`
with the shadow's; drop the live tables and move the shadow's into `public`.

Limits:
- During the swap every projection's writes wait (the tracking tables are shared and
  locked), and readers of the model wait; the lock is held while the group's
  `applied_events` are made the shadow's, which grows with the log (a few seconds per
  million events: the rows both sides have are only looked up, not rewritten).
- The live worker is not paused: it resumes from its Kafka offsets, and events the
  shadow applied ahead of it are skipped through the copied `applied_events`.
- Only tables the model's DDL creates are swapped; views or foreign keys onto them
  would block the DROP (the swap then fails and the live model is untouched).
- Malformed records are skipped (the live worker parks them in its dead-letter topic).
- Needs the whole history on the topics (event topics are kept forever).
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg import sql
from psycopg_pool import ConnectionPool

from eventmart.contracts import MalformedEvent, parse
from eventmart.database import make_pool
from eventmart.export import read_from_beginning
from eventmart.personal_data import FieldCipher, PostgresKeyService
from projections.bulk import FOLDS, BulkLoad, Fold, chunk_for
from projections.decode_shard import log_reader
from projections.decoders import DecodingProcesses, balanced_shares
from projections.registry import INSTALL_LOCK, READ_MODELS, ReadModel
from projections.shadow_swap import swap_in
from projections.tracking import TRACKING_DDL, Delivery, apply_deliveries

BATCH_SIZE = 2_000
BULK_FETCH_RECORDS = 10_000
# From this many records on, a bulk load decodes in other processes (start-up ~0.5 s each).
SHARDED_FROM = 200_000

Progress = Callable[[int, int], None]  # (events read, events to read)
log = logging.getLogger("eventmart.rebuild")


@contextmanager
def paused_garbage_collector() -> Iterator[None]:
    """The fold holds millions of long-lived objects and makes no reference cycles; the
    cyclic collector would walk them all again and again (over a tenth of the CPU)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def find_model(name: str) -> ReadModel:
    """By group name (`users-projection`) or short name (`users`)."""
    model = READ_MODELS.get(name) or READ_MODELS.get(f"{name}-projection")
    if model is None:
        raise KeyError(f"unknown read model {name!r}; choose from: {', '.join(READ_MODELS)}")
    return model


def tables_of(model: ReadModel) -> list[str]:
    return re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", model.ddl)


def shadow_schema(model: ReadModel) -> str:
    return "rebuild_" + re.sub(r"\W", "_", model.group)


def live_positions(
    conn: psycopg.Connection[Any], group: str, schema: str = "public"
) -> dict[TopicPartition, int]:
    rows = conn.execute(
        sql.SQL(
            "SELECT topic, partition, next_offset FROM {}.consumer_positions "
            "WHERE consumer_group = %s"
        ).format(sql.Identifier(schema)),
        (group,),
    ).fetchall()
    return {TopicPartition(topic, partition): offset for topic, partition, offset in rows}


class ShadowRebuild:
    """One rebuild: `build()` fills the shadow while traffic continues, `swap()` installs it."""

    def __init__(
        self,
        model: ReadModel,
        dsn: str,
        bootstrap: str,
        *,
        batch_size: int = BATCH_SIZE,
        on_progress: Progress | None = None,
        decoders: int | None = None,
        cipher: FieldCipher | None = None,
    ) -> None:
        """`decoders`: processes decoding for a bulk load; None: one per core on a log
        of SHARDED_FROM records or more, else none (this process decodes). `cipher`: how a
        personal model opens sealed fields; None: through the keys in `dsn`'s database
        (where they are unless the users context has a database of its own)."""
        self.model, self.dsn, self.bootstrap = model, dsn, bootstrap
        self.cipher = cipher
        self.key_pool: ConnectionPool | None = None  # made here, closed at the end
        if model.personal and cipher is None:
            self.key_pool = make_pool(dsn, max_size=2, autocommit=True)
            self.cipher = FieldCipher(PostgresKeyService(self.key_pool))
        self.handlers = model.handlers_opening(self.cipher)
        self.batch_size, self.on_progress, self.decoders = batch_size, on_progress, decoders
        self.schema = shadow_schema(model)
        self.tables = tables_of(model)
        self.read = self.applied = self.malformed = 0
        self.total = 0
        self.bulk = False  # whether the first phase was the bulk load
        self.decoding_processes = 0  # how many other processes decoded for it
        self.started = time.monotonic()
        self.conn: psycopg.Connection[Any] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.positions: dict[TopicPartition, int] = {}
        self.phases: dict[str, float] = {}  # seconds per phase, in order, for the analyst

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - began

    async def __aenter__(self) -> Self:
        self.conn = psycopg.connect(self.dsn, autocommit=True)
        self.consumer = log_reader(self.bootstrap)
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.conn is not None:
            self.conn.close()
        if self.key_pool is not None:
            self.key_pool.close()

    def _create_shadow(self) -> None:
        assert self.conn is not None
        schema = sql.Identifier(self.schema)
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK,))
            self.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
            self.conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
            self.conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(schema))
            self.conn.execute(TRACKING_DDL)
            self.conn.execute(self.model.ddl)
        # The session applies into the shadow from now on; swap names schemas explicitly.
        self.conn.execute(sql.SQL("SET search_path TO {}, public").format(schema))

    async def build(self) -> None:
        """Shadow from offset zero up to the end offsets at start, then up to the live group."""
        assert self.consumer is not None and self.conn is not None
        self.phases["connect"] = time.monotonic() - self.started
        with self._phase("shadow tables"):
            self._create_shadow()
            partitions, ends = await read_from_beginning(self.consumer, self.model.topics)
            starts = await self.consumer.beginning_offsets(partitions)
        self.positions = dict(starts)
        self.total = sum(ends[tp] - starts[tp] for tp in partitions)
        fold = FOLDS.get(self.model.group)
        if fold is None:
            with self._phase("read and apply"):
                await self._catch_up(ends)
        else:
            try:
                await self._bulk_load(ends, fold())
            except (psycopg.IntegrityError, psycopg.DataError) as error:
                log.warning(
                    "bulk load of %s failed (%s); rebuilding event by event",
                    self.model.group,
                    error,
                )
                self._create_shadow()
                await self.consumer.seek_to_beginning(*partitions)
                self.positions, self.read, self.applied, self.malformed = dict(starts), 0, 0, 0
                with self._phase("read and apply"):
                    await self._catch_up(ends)
        with self._phase("catch up with the live group"):
            await self._catch_up(live_positions(self.conn, self.model.group))
        with self._phase("analyze"):
            # Statistics now, outside the swap's locks, so that the swap's anti-joins plan
            # as merge or hash joins instead of one index lookup per event identity.
            self.conn.execute(
                sql.SQL("ANALYZE {}.applied_events").format(sql.Identifier(self.schema))
            )

    async def _bulk_load(self, targets: dict[TopicPartition, int], fold: Fold) -> None:
        """The empty shadow up to `targets` by folding in memory and COPY (projections.bulk)."""
        assert self.consumer is not None and self.conn is not None
        behind = {tp for tp, target in targets.items() if self.positions.get(tp, 0) < target}
        records = sum(targets[tp] - self.positions.get(tp, 0) for tp in behind)
        load = BulkLoad(
            self.conn,
            self.model.group,
            frozenset(self.model.handlers),
            fold,
            chunk=chunk_for(records),
            cipher=self.cipher,
        )
        try:
            decoders = self._decoders_for(records)
            with paused_garbage_collector(), self._phase("read and fold"):
                if decoders > 1:
                    await self._bulk_fetch_sharded(load, targets, behind, decoders)
                else:
                    await self._bulk_fetch(load, targets, behind)
            with self._phase("write folded rows"):
                load.finish()
        finally:
            load.close()
        self.bulk = True
        self.applied += load.applied
        self.malformed += load.malformed

    async def _bulk_fetch(
        self, load: BulkLoad, targets: dict[TopicPartition, int], behind: set[TopicPartition]
    ) -> None:
        assert self.consumer is not None
        while behind:
            batches = await self.consumer.getmany(
                *behind, timeout_ms=1000, max_records=BULK_FETCH_RECORDS
            )
            for tp, records in batches.items():
                for record in records:
                    load.add(tp.topic, tp.partition, record.offset, record.value)
                self.read += len(records)
                self.positions[tp] = await self.consumer.position(tp)
                if self.positions[tp] >= targets[tp]:
                    behind.discard(tp)
            if self.on_progress is not None:
                self.on_progress(self.read, self.total)

    def _decoders_for(self, records: int) -> int:
        if self.decoders is not None:
            return self.decoders
        return (os.cpu_count() or 1) if records >= SHARDED_FROM else 1

    async def _bulk_fetch_sharded(
        self,
        load: BulkLoad,
        targets: dict[TopicPartition, int],
        behind: set[TopicPartition],
        decoders: int,
    ) -> None:
        """`_bulk_fetch`, with the records decoded by `decoders` processes, each reading a
        share of the partitions (balanced by record count); folded here as they arrive."""
        assert self.consumer is not None
        shares = balanced_shares(self.positions, targets, behind, decoders)
        self.decoding_processes = len(shares)
        async with DecodingProcesses(
            self.bootstrap, sorted(self.model.handlers), shares
        ) as running:
            async for reached, read, malformed, events in running.frames():
                load.add_decoded(reached, malformed, events)
                self.read += read
                for (topic, partition), offset in reached.items():
                    self.positions[TopicPartition(topic, partition)] = offset
                if self.on_progress is not None:
                    self.on_progress(self.read, self.total)
        # This consumer read nothing: the catch-up goes on from where the decoders stopped.
        for tp in behind:
            self.consumer.seek(tp, self.positions.get(tp, 0))

    async def _catch_up(self, targets: dict[TopicPartition, int]) -> None:
        """Consume and apply until every partition's position reaches its target."""
        assert self.consumer is not None and self.conn is not None
        behind = {tp for tp, target in targets.items() if self.positions.get(tp, 0) < target}
        self.total = max(
            self.total, self.read + sum(targets[tp] - self.positions.get(tp, 0) for tp in behind)
        )
        pending: list[Delivery] = []
        while behind:
            batches = await self.consumer.getmany(
                *behind, timeout_ms=1000, max_records=self.batch_size
            )
            for tp, records in batches.items():
                for record in records:
                    self.read += 1
                    try:
                        pending.append(
                            Delivery(tp.topic, tp.partition, record.offset, parse(record.value))
                        )
                    except MalformedEvent:
                        self.malformed += 1
                self.positions[tp] = await self.consumer.position(tp)
                if self.positions[tp] >= targets[tp]:
                    behind.discard(tp)
            if len(pending) >= self.batch_size or not behind:
                self._apply(pending)
                pending = []
            if self.on_progress is not None:
                self.on_progress(self.read, self.total)

    def _apply(self, deliveries: list[Delivery]) -> None:
        assert self.conn is not None
        if deliveries:
            self.applied += apply_deliveries(self.conn, self.model.group, self.handlers, deliveries)

    def rows(self, schema: str) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every model table in `schema`, in a stable order, for comparison."""
        assert self.conn is not None
        return {
            table: sorted(
                self.conn.execute(
                    sql.SQL("SELECT * FROM {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table)
                    )
                ).fetchall(),
                key=repr,
            )
            for table in self.tables
        }

    async def swap(self) -> None:
        """In one transaction: catch up with the live worker under lock, then replace
        (projections.shadow_swap)."""
        assert self.conn is not None
        conn, group = self.conn, self.model.group
        with self._phase("swap (live tables locked)"):
            await swap_in(
                conn,
                group,
                self.schema,
                self.tables,
                lambda: self._catch_up(live_positions(conn, group)),
            )

    @property
    def rate(self) -> float:
        return self.read / max(time.monotonic() - self.started, 1e-9)


async def rebuild(
    model: ReadModel,
    dsn: str,
    bootstrap: str,
    *,
    on_progress: Progress | None = None,
    cipher: FieldCipher | None = None,
) -> ShadowRebuild:
    """Build the shadow and swap it in; returns the finished rebuild for its counts."""
    async with ShadowRebuild(model, dsn, bootstrap, on_progress=on_progress, cipher=cipher) as job:
        await job.build()
        await job.swap()
    return job
