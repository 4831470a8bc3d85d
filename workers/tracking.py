"""Saga participants record the events they cause and the tracking of the events that
caused them in one transaction (eventsourcing's process recorder).

Tracking is by exact event identity: application_name is the aggregate id and
notification_id the aggregate version, one row per event applied (the multi-row
tracking table). An event is a copy if and only if its own row exists: a redelivered
or re-published copy is dropped whatever its offset, and an event never applied is
applied even if later events of its aggregate were (a parked event, redriven after its
aggregate moved on). A high-water mark per aggregate would drop that one silently.

A batch of consumed events can be applied as one unit of work: policies run one
after another against aggregates kept in memory (each sees what the previous ones
did), and everything they changed is saved with every consumed event's tracking in
one transaction. eventsourcing's recorder locks the events table per transaction,
so one transaction per batch instead of per event is what lets a participant keep up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
)
from eventsourcing.persistence import Mapper, ProcessRecorder, Recording, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.utils import strtobool
from psycopg.sql import SQL, Identifier

from eventmart import tracing
from eventmart.contracts import Envelope
from workers.deadlines import (
    Deadline,
    DeadlinesOf,
    create_statements,
    deadlines_table,
    due_statement,
    no_deadlines,
    write_statements,
)

CURRENT_UNIT_OF_WORK: ContextVar[UnitOfWork | None] = ContextVar(
    "current_unit_of_work", default=None
)

A = TypeVar("A", bound=Application[Any])


@dataclass
class UnitOfWork:
    """What a batch of policies changed, not yet saved, and what they consumed; and the
    aggregates loaded for it up front (`prefetch`), present or known to be absent."""

    aggregates: dict[Any, Any] = field(default_factory=dict)
    trackings: list[Tracking] = field(default_factory=list)
    absent: set[UUID] = field(default_factory=set)


PROCESS_RECORDER_TOPIC = "workers.tracking:BatchProcessRecorder"


class BatchProcessRecorder(PostgresProcessRecorder):
    """A process recorder that also takes `trackings=[...]` (several consumed events) and
    `deadlines=[...]` (the context's deadline rows) into the events' transaction, and
    answers "which of these events were applied" in one query."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.deadlines_table_name = deadlines_table(self.events_table_name)
        self.sql_create_statements.extend(
            create_statements(self.datastore.schema, self.deadlines_table_name)
        )

    def _insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        for tracking in kwargs.get("trackings", ()):
            self._insert_tracking(curs, tracking=tracking)
        for statement, params in write_statements(
            self.datastore.schema, self.deadlines_table_name, kwargs.get("deadlines", ())
        ):
            curs.execute(statement, params)
        super()._insert_events(curs, stored_events, **kwargs)

    def applied_among(self, identities: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these (aggregate id, version) identities have a tracking row."""
        wanted = list(set(identities))
        if not wanted:
            return set()
        statement = SQL(
            "SELECT application_name, notification_id FROM {0}.{1} "
            "WHERE (application_name, notification_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::bigint[]))"
        ).format(Identifier(self.datastore.schema), Identifier(self.tracking_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                statement,
                ([name for name, _ in wanted], [version for _, version in wanted]),
                prepare=True,
            )
            return {(row["application_name"], row["notification_id"]) for row in curs.fetchall()}

    def due_order_ids(
        self, timer: str, now: datetime, *, excluding: Iterable[UUID] = (), limit: int = 500
    ) -> list[UUID]:
        """The orders whose `timer` deadline has passed by `now`, the oldest first."""
        statement = due_statement(self.datastore.schema, self.deadlines_table_name)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (timer, now, list(excluding), limit), prepare=True)
            return [row["order_id"] for row in curs.fetchall()]

    def select_events_after(self, versions: Mapping[UUID, int]) -> list[StoredEvent]:
        """Every stored event of these aggregates past the given version of each, in
        aggregate-version order, in one query."""
        statement = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%s::uuid[], %s::bigint[]) AS after(id, version) "
            "JOIN {0}.{1} AS e ON e.originator_id = after.id AND e.originator_version > after.version "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        ids = list(versions)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (ids, [versions[i] for i in ids]), prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


def copy_in_unit(aggregate: Any) -> Any:
    """A deep copy of an aggregate changed earlier in the batch, sharing its pending events
    rather than copying them: events are frozen, and a hot aggregate (a popular coupon, a
    product's stock) gathers one per event the batch applies, so copying them on every get
    made a batch quadratic (a quarter of the saga process's samples under coupon load)."""
    pending = getattr(aggregate, "_pending_events", None)
    if not pending:
        return deepcopy(aggregate)
    aggregate._pending_events = []
    try:
        copied = deepcopy(aggregate)
    finally:
        aggregate._pending_events = pending
    copied._pending_events = list(pending)
    return copied


def project(aggregate: Any, events: list[Any]) -> Any:
    """eventsourcing's project_aggregate without its `isinstance` check on a runtime
    Protocol per event: typing's protocol checks were 4% of a saga process's samples."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


# The traceparent of the last stored event a loaded aggregate was projected from ("" for
# none): a timer's change continues that trace without a query per aggregate.
LAST_TRACE = "_last_traceparent"


def remember_trace(aggregate: Any, events: list[Any]) -> None:
    if events:
        setattr(aggregate, LAST_TRACE, vars(events[-1]).get("traceparent") or "")


class UnitOfWorkRepository(Repository):  # type: ignore[type-arg]
    """Inside a unit of work, an aggregate changed earlier in the batch is served from
    memory (a copy: a policy that fails half-way leaves the batch's version untouched).

    Ids are normalised to UUIDs first: policies pass ids from event payloads, which are
    strings on the wire, while the unit keys aggregates by their UUID. A string id once
    missed the unit, so a second policy on the same order started from the stored
    version and its save replaced the first one's changes (a capture overtaking its
    reservation in one batch was tracked but lost)."""

    def get(self, aggregate_id: Any, *, version: int | None = None, **kwargs: Any) -> Any:
        if isinstance(aggregate_id, str):
            aggregate_id = UUID(aggregate_id)
        unit = CURRENT_UNIT_OF_WORK.get()
        if unit is not None and version is None:
            if aggregate_id in unit.aggregates:
                return copy_in_unit(unit.aggregates[aggregate_id])
            if aggregate_id in unit.absent:
                raise AggregateNotFoundError(aggregate_id)
        return super().get(aggregate_id, version=version, **kwargs)

    def prefetch(
        self, unit: UnitOfWork, aggregate_ids: Iterable[UUID], mapper: Mapper[Any]
    ) -> None:
        """Load (or fast-forward from the cache) every aggregate a batch is about to touch,
        with one query, into the unit of work: a participant's policies each loaded their
        aggregate with a query of its own, half of a saga worker's time.

        Read here, written at the batch's save: if another writer (the API cancelling an
        order) saves in between, the save's version check fails and the batch is redone
        one event at a time, without the unit, as before."""
        cached: dict[UUID, Any] = {}
        for aggregate_id in set(aggregate_ids) - unit.aggregates.keys() - unit.absent:
            try:
                cached[aggregate_id] = (
                    self.cache.get(aggregate_id) if self.cache is not None else None
                )
            except KeyError:
                cached[aggregate_id] = None
        if not cached:
            return
        recorder: BatchProcessRecorder = self.event_store.recorder  # type: ignore[assignment]
        stored = recorder.select_events_after(
            {
                aggregate_id: 0 if start is None else start.version
                for aggregate_id, start in cached.items()
            }
        )
        newer: dict[Any, list[Any]] = {}
        for event in stored:
            newer.setdefault(event.originator_id, []).append(mapper.to_domain_event(event))
        for aggregate_id, start in cached.items():
            events = newer.get(aggregate_id, [])
            if start is None:
                aggregate = project(None, events)
                if aggregate is None:
                    unit.absent.add(aggregate_id)
                    continue
                remember_trace(aggregate, events)
                if self.cache is not None:
                    self.cache.put(aggregate_id, deepcopy(aggregate))
            else:
                # Fast-forwarded in place under its lock, as Repository.get does (the
                # timers' thread may be at it too: events it applied meanwhile are skipped).
                lock = self._use_fastforward_lock(aggregate_id)
                try:
                    with lock:
                        events = [e for e in events if e.originator_version > start.version]
                        aggregate = project(start, events)
                        remember_trace(aggregate, events)
                        aggregate = deepcopy(aggregate)
                finally:
                    self._disuse_fastforward_lock(aggregate_id)
            unit.aggregates[aggregate_id] = aggregate


class TrackedMixin:
    """Makes an Application's saves go into the current unit of work (or into one of their
    own), so every save carries the tracking of what was consumed and the deadlines of
    what changed."""

    factory: Any
    env: Any
    events: Any
    snapshots: Any
    # Set per participant (workers.saga.build_context): the deadlines an aggregate has.
    deadlines_of: DeadlinesOf = staticmethod(no_deadlines)

    def construct_recorder(self) -> ProcessRecorder:
        recorder: ProcessRecorder = self.factory.process_recorder()
        return recorder

    def construct_repository(self) -> Repository:  # type: ignore[type-arg]
        maxsize = self.env.get(Application.AGGREGATE_CACHE_MAXSIZE)
        return UnitOfWorkRepository(
            event_store=self.events,
            snapshot_store=self.snapshots,
            cache_maxsize=int(maxsize) if maxsize else None,
            fastforward=strtobool(self.env.get(Application.AGGREGATE_CACHE_FASTFORWARD, "y")),
        )

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Into the current unit of work (saved with the batch), or, outside one, at once in
        a unit of its own: either way with the deadlines of what changed."""
        current = CURRENT_UNIT_OF_WORK.get()
        unit = current if current is not None else UnitOfWork()
        for obj in objs:
            if obj is not None:
                # Stamped now, while the policy that changed it runs: the batch saves later.
                pending = getattr(obj, "_pending_events", ())
                cause = tracing.CAUSE.get()  # None only outside any handling: a timer
                tracing.stamp(pending, self._trace_of(obj, pending) if cause is None else cause)
                unit.aggregates[obj.id] = obj
        return [] if current is not None else self.save_unit_of_work(unit)

    def _trace_of(self, aggregate: Any, pending: Any) -> str | None:
        """A timer's change (no consumed event caused it) continues its aggregate's trace:
        the traceparent of the aggregate's last stored event, as the batch's load saw it
        (`remember_trace`), or else read with a query of its own."""
        if not pending or "traceparent" in vars(pending[0]):
            return None
        known = vars(aggregate).get(LAST_TRACE)
        if known is not None:
            return known or None
        version = pending[0].originator_version - 1
        if version < 1:
            return None
        for stored in self.events.get(pending[0].originator_id, gt=version - 1, lte=version):
            return getattr(stored, "traceparent", None)
        return None

    def save_unit_of_work(self, unit: UnitOfWork) -> list[Recording[Any]]:
        """Every changed aggregate's new events, every tracking and the deadlines of what
        changed, in one transaction."""
        changed = [a for a in unit.aggregates.values() if getattr(a, "pending_events", None)]
        deadlines: list[Deadline] = [d for a in changed for d in self.deadlines_of(a)]
        if not changed and not unit.trackings:
            return []
        processing_event: ProcessingEvent[Any] = ProcessingEvent()
        for aggregate in changed:  # ProcessingEvent.collect_events, without its isinstance
            processing_event.events.extend(aggregate.collect_events())  # checks on Protocols
            processing_event.aggregates[aggregate.id] = aggregate
        recordings: list[Recording[Any]] = self.events.put(
            processing_event.events, trackings=unit.trackings, deadlines=deadlines
        )
        self._notify(recordings)  # type: ignore[attr-defined]
        return recordings


def tracked(application_class: type[A]) -> type[A]:
    """The same application (same tables) with a process recorder."""
    return type(
        f"Tracked{application_class.__name__}",
        (TrackedMixin, application_class),
        {"name": application_class.name},
    )


def tracking_for(envelope: Envelope) -> Tracking:
    return Tracking(
        application_name=str(envelope.aggregate_id), notification_id=envelope.aggregate_version
    )


def applied_events(
    application: Application[Any], trackings: Iterable[Tracking]
) -> set[tuple[str, int]]:
    """Which of these consumed events were applied already (one query)."""
    recorder: BatchProcessRecorder = application.recorder  # type: ignore[assignment]
    return recorder.applied_among(
        (tracking.application_name, tracking.notification_id) for tracking in trackings
    )


def identity(tracking: Tracking) -> tuple[str, int]:
    return tracking.application_name, tracking.notification_id


@contextmanager
def _bound(variable: ContextVar[Any], value: Any) -> Iterator[None]:
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


def unit_of_work_context(unit: UnitOfWork) -> AbstractContextManager[None]:
    return _bound(CURRENT_UNIT_OF_WORK, unit)
