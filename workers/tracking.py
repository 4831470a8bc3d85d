"""Saga participants record the events they cause and the tracking of the events that
caused them in one transaction (eventsourcing's process recorder).

Tracking is by event identity: application_name is the aggregate id and
notification_id the aggregate version. Per-aggregate order holds on a topic,
so "a tracking record >= this version exists" means "this event, or a later one
of the same aggregate, was already applied" — a copy is dropped, whatever its offset.

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
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
    project_aggregate,
)
from eventsourcing.persistence import Mapper, ProcessRecorder, Recording, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.utils import strtobool
from psycopg.sql import SQL, Identifier

from eventmart.contracts import Envelope

CURRENT_TRACKING: ContextVar[Tracking | None] = ContextVar("current_tracking", default=None)
CURRENT_UNIT_OF_WORK: ContextVar[UnitOfWork | None] = ContextVar(
    "current_unit_of_work", default=None
)

A = TypeVar("A", bound=Application)


@dataclass
class UnitOfWork:
    """What a batch of policies changed, not yet saved, and what they consumed; and the
    aggregates loaded for it up front (`prefetch`), present or known to be absent."""

    aggregates: dict[Any, Any] = field(default_factory=dict)
    trackings: list[Tracking] = field(default_factory=list)
    absent: set[UUID] = field(default_factory=set)


class BatchProcessRecorder(PostgresProcessRecorder):
    """A process recorder that also takes `trackings=[...]` (several consumed events)
    and answers "how far has each of these aggregates been applied" in one query."""

    def _insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        for tracking in kwargs.get("trackings", ()):
            self._insert_tracking(curs, tracking=tracking)
        super()._insert_events(curs, stored_events, **kwargs)

    def max_tracking_ids(self, application_names: Iterable[str]) -> dict[str, int]:
        statement = SQL(
            "SELECT application_name, MAX(notification_id) AS applied FROM {0}.{1} "
            "WHERE application_name = ANY(%s) GROUP BY application_name"
        ).format(Identifier(self.datastore.schema), Identifier(self.tracking_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (list(application_names),), prepare=True)
            return {row["application_name"]: row["applied"] for row in curs.fetchall()}

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
                return deepcopy(unit.aggregates[aggregate_id])
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
                aggregate = project_aggregate(None, events)
                if aggregate is None:
                    unit.absent.add(aggregate_id)
                    continue
                if self.cache is not None:
                    self.cache.put(aggregate_id, deepcopy(aggregate))
            else:
                # Fast-forwarded in place under its lock, as Repository.get does (the
                # timers' thread may be at it too: events it applied meanwhile are skipped).
                lock = self._use_fastforward_lock(aggregate_id)
                try:
                    with lock:
                        aggregate = project_aggregate(
                            start, [e for e in events if e.originator_version > start.version]
                        )
                        aggregate = deepcopy(aggregate)
                finally:
                    self._disuse_fastforward_lock(aggregate_id)
            unit.aggregates[aggregate_id] = aggregate


class TrackedMixin:
    """Makes an Application's saves carry the tracking of the event being processed,
    or collect into the current unit of work."""

    factory: Any
    env: Any
    events: Any
    snapshots: Any

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
        unit = CURRENT_UNIT_OF_WORK.get()
        if unit is not None:
            for obj in objs:
                if obj is not None:
                    unit.aggregates[obj.id] = obj
            return []
        tracking = CURRENT_TRACKING.get()
        if tracking is None:
            return super().save(*objs, **kwargs)  # type: ignore[misc]
        CURRENT_TRACKING.set(None)  # one consumed event, one transaction
        processing_event: ProcessingEvent[Any] = ProcessingEvent(tracking)
        processing_event.collect_events(*objs, **kwargs)
        recordings = self._record(processing_event)  # type: ignore[attr-defined]
        self._take_snapshots(processing_event)  # type: ignore[attr-defined]
        self._notify(recordings)  # type: ignore[attr-defined]
        return recordings

    def save_unit_of_work(self, unit: UnitOfWork) -> list[Recording[Any]]:
        """Every changed aggregate's new events and every tracking, in one transaction."""
        processing_event: ProcessingEvent[Any] = ProcessingEvent()
        processing_event.collect_events(*unit.aggregates.values())
        recordings: list[Recording[Any]] = self.events.put(
            processing_event.events, trackings=unit.trackings
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


def already_applied(application: Application, tracking: Tracking) -> bool:
    recorder: ProcessRecorder = application.recorder  # type: ignore[assignment]
    return recorder.has_tracking_id(tracking.application_name, tracking.notification_id)


def applied_versions(application: Application, trackings: Iterable[Tracking]) -> dict[str, int]:
    """How far each of these aggregates' events have been applied already (one query)."""
    recorder: BatchProcessRecorder = application.recorder  # type: ignore[assignment]
    return recorder.max_tracking_ids({tracking.application_name for tracking in trackings})


@contextmanager
def _bound(variable: ContextVar[Any], value: Any) -> Iterator[None]:
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


def tracking_context(tracking: Tracking) -> AbstractContextManager[None]:
    return _bound(CURRENT_TRACKING, tracking)


def unit_of_work_context(unit: UnitOfWork) -> AbstractContextManager[None]:
    return _bound(CURRENT_UNIT_OF_WORK, unit)
