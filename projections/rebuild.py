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

import asyncio
import gc
import json
import logging
import os
import pickle
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg import sql

from eventmart.contracts import MalformedEvent, parse
from eventmart.export import read_from_beginning
from projections.bulk import FOLDS, BulkLoad, Fold, chunk_for
from projections.decode_shard import HEADER, Frame, log_reader
from projections.registry import INSTALL_LOCK, READ_MODELS, ReadModel
from projections.tracking import TRACKING_DDL, Delivery, apply_deliveries

BATCH_SIZE = 2_000
BULK_FETCH_RECORDS = 10_000
# From this many records on, a bulk load decodes in other processes (start-up ~0.5 s each).
SHARDED_FROM = 200_000
FRAME_BUFFER = 16 * 1024 * 1024
DECODER_MODULE = "projections.decode_shard"
TRACKING_TABLES = ("applied_events", "consumer_positions")

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
    ) -> None:
        """`decoders`: processes decoding for a bulk load; None: one per core on a log
        of SHARDED_FROM records or more, else none (this process decodes)."""
        self.model, self.dsn, self.bootstrap = model, dsn, bootstrap
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
        shares: list[list[list[Any]]] = [[] for _ in range(min(decoders, len(behind)))]
        sizes = [0] * len(shares)
        for tp in sorted(behind, key=lambda tp: (self.positions.get(tp, 0) - targets[tp], tp)):
            lightest = sizes.index(min(sizes))
            shares[lightest].append(
                [tp.topic, tp.partition, self.positions.get(tp, 0), targets[tp]]
            )
            sizes[lightest] += targets[tp] - self.positions.get(tp, 0)
        self.decoding_processes = len(shares)
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                DECODER_MODULE,
                json.dumps(
                    {
                        "bootstrap": self.bootstrap,
                        "types": sorted(self.model.handlers),
                        "share": share,
                    }
                ),
                stdout=asyncio.subprocess.PIPE,
                limit=FRAME_BUFFER,
            )
            for share in shares
        ]
        frames: asyncio.Queue[Frame | None] = asyncio.Queue(maxsize=2 * len(processes))
        pumps = [asyncio.create_task(_pump(process, frames)) for process in processes]
        try:
            running = len(processes)
            while running:
                frame = await frames.get()
                if frame is None:
                    codes = [process.returncode for process in processes]
                    raise RuntimeError(
                        f"a decoding process (projections.decode_shard) failed: exit codes {codes}"
                    )
                reached, read, malformed, events = frame
                if events is None:
                    running -= 1
                    continue
                load.add_decoded(reached, malformed, events)
                self.read += read
                for (topic, partition), offset in reached.items():
                    self.positions[TopicPartition(topic, partition)] = offset
                if self.on_progress is not None:
                    self.on_progress(self.read, self.total)
        finally:
            for pump in pumps:
                pump.cancel()
            for process in processes:
                if process.returncode is None:
                    process.kill()
                await process.wait()
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
            self.applied += apply_deliveries(
                self.conn, self.model.group, self.model.handlers, deliveries
            )

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
        """In one transaction: catch up with the live worker under lock, then replace."""
        assert self.conn is not None
        group, shadow = self.model.group, sql.Identifier(self.schema)
        public = sql.Identifier("public")
        with self._phase("swap (live tables locked)"), self.conn.transaction():
            # Tracking first, then the model: the order a worker's transaction takes them.
            self.conn.execute(
                sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
                    sql.SQL(", ").join(sql.Identifier("public", table) for table in TRACKING_TABLES)
                )
            )
            self.conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.SQL(", ").join(sql.Identifier("public", table) for table in self.tables)
                )
            )
            await self._catch_up(live_positions(self.conn, group))
            self._replace_applied_events()
            self.conn.execute(
                sql.SQL(
                    "INSERT INTO public.consumer_positions (consumer_group, topic, partition, next_offset) "
                    "SELECT consumer_group, topic, partition, next_offset FROM {}.consumer_positions "
                    "WHERE consumer_group = %s ON CONFLICT (consumer_group, topic, partition) DO UPDATE "
                    "SET next_offset = GREATEST(consumer_positions.next_offset, EXCLUDED.next_offset), "
                    "updated_at = now()"
                ).format(shadow),
                (group,),
            )
            for table in self.tables:
                self.conn.execute(sql.SQL("DROP TABLE {}.{}").format(public, sql.Identifier(table)))
                self.conn.execute(
                    sql.SQL("ALTER TABLE {}.{} SET SCHEMA public").format(
                        shadow, sql.Identifier(table)
                    )
                )
            self.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(shadow))
            for table in self.tables:
                # Whoever caches a table's rows (api.product_cache) hears, on commit, that
                # every row may have changed; the channel is the table's name.
                self.conn.execute("SELECT pg_notify(%s, '*')", (table,))
            self.conn.execute("SET LOCAL search_path TO public")
        self.conn.execute("SET search_path TO public")

    def _replace_applied_events(self) -> None:
        """The group's event identities become the shadow's. Both sets are nearly always the
        same (the shadow caught up to the live positions), so instead of deleting and
        inserting every row under the lock, drop what the shadow lacks and add, in key
        order, what the live set lacks: two anti-joins, not a conflict check per row."""
        assert self.conn is not None
        group, shadow = self.model.group, sql.Identifier(self.schema)
        self.conn.execute(
            sql.SQL(
                "DELETE FROM public.applied_events AS live WHERE live.consumer_group = %(group)s "
                "AND NOT EXISTS (SELECT 1 FROM {}.applied_events AS rebuilt "
                "WHERE rebuilt.consumer_group = %(group)s AND rebuilt.aggregate_id = live.aggregate_id "
                "AND rebuilt.aggregate_version = live.aggregate_version)"
            ).format(shadow),
            {"group": group},
        )
        self.conn.execute(
            sql.SQL(
                "INSERT INTO public.applied_events SELECT * FROM {}.applied_events AS rebuilt "
                "WHERE rebuilt.consumer_group = %(group)s AND NOT EXISTS (SELECT 1 FROM "
                "public.applied_events AS live WHERE live.consumer_group = %(group)s "
                "AND live.aggregate_id = rebuilt.aggregate_id "
                "AND live.aggregate_version = rebuilt.aggregate_version) "
                "ORDER BY consumer_group, aggregate_id, aggregate_version"
            ).format(shadow),
            {"group": group},
        )

    @property
    def rate(self) -> float:
        return self.read / max(time.monotonic() - self.started, 1e-9)


async def _pump(process: asyncio.subprocess.Process, frames: asyncio.Queue[Frame | None]) -> None:
    """A decoding process's frames into `frames`, up to its last; None if it dies first."""
    assert process.stdout is not None
    try:
        while True:
            (size,) = HEADER.unpack(await process.stdout.readexactly(HEADER.size))
            frame: Frame = pickle.loads(
                await process.stdout.readexactly(size)
            )  # from our own child
            await frames.put(frame)
            if frame[3] is None:
                return
    except asyncio.IncompleteReadError:
        await process.wait()
        await frames.put(None)


async def rebuild(
    model: ReadModel, dsn: str, bootstrap: str, *, on_progress: Progress | None = None
) -> ShadowRebuild:
    """Build the shadow and swap it in; returns the finished rebuild for its counts."""
    async with ShadowRebuild(model, dsn, bootstrap, on_progress=on_progress) as job:
        await job.build()
        await job.swap()
    return job
