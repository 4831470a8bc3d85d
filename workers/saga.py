"""The saga participant runner: a consumer group that turns events into commands on one
application, each consumed event tracked in the transaction of the events it causes.

Participants are plain policy functions (`policy(ctx, event)`), listed in a table
at the bottom of each participant module; this module is the thin part around them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError
from opentelemetry.trace import SpanKind
from psycopg_pool import ConnectionPool

from domain.errors import ConcurrentUpdate
from eventmart import tracing
from eventmart.contracts import Envelope
from eventmart.database import eventsourcing_env
from eventmart.metrics import METRICS
from eventmart.settings import Settings
from eventmart.wiring import application_dsn
from projections.tracking import Delivery
from workers.deadlines import Deadline
from workers.hosted import HostedGroup, SharedResources
from workers.tracking import (
    PROCESS_RECORDER_TOPIC,
    UnitOfWork,
    applied_events,
    identity,
    tracked,
    tracking_for,
    unit_of_work_context,
)

log = logging.getLogger("eventmart.saga")


@dataclass
class Context:
    """What a policy may use: its own application and adapters. Nothing of another context:
    what a participant needs to know of the others it keeps in its own store, from the bus."""

    settings: Settings
    application: Any
    pool: ConnectionPool
    adapters: dict[str, Any] = field(default_factory=dict)
    # What a timer remembers between its ticks, in this process only.
    memory: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


Policy = Callable[[Context, Envelope], object]
Timer = Callable[[Context], int]
# The ids of the participant's own aggregates an event's policy will load, so a batch
# loads them all with one query first (an id left out is loaded when asked for).
Touches = Callable[[Envelope], Iterable[UUID]]
# The deadlines one of the participant's aggregates has after a change (workers.deadlines).
Deadlines = Callable[[Settings, Any], Iterable[Deadline]]
# Before a batch's policies run: read what they will need from the participant's other
# stores with one query (payments' intents), as `touches` does for its aggregates.
Prepare = Callable[[Context, Sequence[Envelope]], None]


@dataclass(frozen=True)
class Participant:
    group: str
    topics: list[str]
    application: type[Application[UUID]]
    policies: Mapping[str, Policy]
    timers: Mapping[str, Timer] = field(default_factory=dict)
    adapters: Callable[[Settings], dict[str, Any]] = lambda settings: {}
    touches: Touches = lambda event: ()
    deadlines: Deadlines = lambda settings, aggregate: ()
    prepare: Prepare = lambda ctx, events: None


class PolicyProcessor:
    """Applies a batch of deliveries as one unit of work (one transaction); if that fails
    (another writer changed an aggregate meanwhile, or one event's policy fails), one event
    at a time, each its own transaction, so the culprit can be retried and parked alone."""

    max_conflict_retries = 20

    def __init__(self, participant: Participant, context: Context) -> None:
        self.participant = participant
        self.context = context
        self.batches_saved = 0
        self.batches_split = 0

    def __call__(self, deliveries: list[Delivery]) -> None:
        relevant = [d for d in deliveries if d.envelope.type in self.participant.policies]
        if len(relevant) > 1:
            try:
                self.apply_batch(relevant)
                self.batches_saved += 1
                return
            except Exception as error:  # noqa: BLE001 - redone one event at a time below
                self.batches_split += 1
                log.info(
                    "%s: batch of %d not saved (%s: %s); one event at a time",
                    self.participant.group,
                    len(relevant),
                    type(error).__name__,
                    error,
                )
        failures: list[Exception] = []
        for delivery in relevant:
            try:
                self.apply(delivery)
            except Exception as error:  # noqa: BLE001 - the others still go through
                failures.append(error)
        if failures:
            raise failures[0]  # the consumer retries the batch one message at a time, then parks

    def apply_batch(self, deliveries: list[Delivery]) -> None:
        application = self.context.application
        trackings = [tracking_for(delivery.envelope) for delivery in deliveries]
        applied = applied_events(application, trackings)
        unit = UnitOfWork()
        application.repository.prefetch(
            unit,
            [
                aggregate_id
                for delivery, tracking in zip(deliveries, trackings, strict=True)
                if identity(tracking) not in applied
                for aggregate_id in self.participant.touches(delivery.envelope)
            ],
            application.mapper,
        )
        self.participant.prepare(
            self.context,
            [
                delivery.envelope
                for delivery, tracking in zip(deliveries, trackings, strict=True)
                if identity(tracking) not in applied
            ],
        )
        with unit_of_work_context(unit):
            for delivery, tracking in zip(deliveries, trackings, strict=True):
                if identity(tracking) in applied:
                    self.skip(delivery)
                    continue
                with tracing.caused_by(delivery.cause):
                    policy = self.participant.policies[delivery.envelope.type]
                    policy(self.context, delivery.envelope)
                unit.trackings.append(tracking)
                applied.add(identity(tracking))
        if unit.trackings:
            span = transaction_span(self.participant.group, deliveries)
            try:
                application.save_unit_of_work(unit)
            except Exception as error:
                tracing.finish(span, "rolled_back", **{"error.type": type(error).__name__})
                raise
            tracing.finish(span, "committed")

    def apply(self, delivery: Delivery) -> None:
        """One event in its own transaction, again while another writer keeps winning."""
        if delivery.envelope.type not in self.participant.policies:
            return
        for _ in range(self.max_conflict_retries):
            try:
                self.apply_batch([delivery])
                return
            except (ConcurrentUpdate, IntegrityError):
                continue  # another writer won the race, or the copy was applied meanwhile
        raise ConcurrentUpdate(
            f"{delivery.envelope.type} {delivery.envelope.event_id} kept conflicting"
        )

    def skip(self, delivery: Delivery) -> None:
        """An event this participant applied before: a redelivered, re-published or redriven
        copy. Counted; a redriven one is also said aloud, as an operator asked for it."""
        METRICS.events_skipped.labels(self.participant.group).inc()
        delivery.mark("duplicate")
        envelope = delivery.envelope
        log.log(
            logging.WARNING if delivery.redriven else logging.INFO,
            "%s: %s%s %s (aggregate %s v%d) was applied already; skipped",
            self.participant.group,
            "redriven " if delivery.redriven else "",
            envelope.type,
            envelope.event_id,
            envelope.aggregate_id,
            envelope.aggregate_version,
        )


def transaction_span(group: str, deliveries: list[Delivery]) -> Any:
    """The database transaction of a batch: a child of its first event's span, linked to
    the others'."""
    if not tracing.ENABLED or not deliveries:
        return None
    return tracing.start(
        f"{group} transaction",
        SpanKind.CLIENT,
        tracing.traceparent_of(deliveries[0].span, None),
        {"db.system.name": "postgresql", "eventmart.batch_size": len(deliveries)},
        links=[d.span for d in deliveries[1:] if d.span is not None],
    )


def build_context(
    participant: Participant, settings: Settings, shared: SharedResources | None = None
) -> Context:
    """Its application on its context's database, with a pool of that database from the
    process's shared ones (several groups hosted in one process share them)."""
    shared = shared or SharedResources()
    env = {
        **eventsourcing_env(application_dsn(participant.application, settings), pool_size=4),
        "PROCESS_RECORDER_TOPIC": PROCESS_RECORDER_TOPIC,
        # Hot aggregates (a best-selling product's stock) are fast-forwarded, not replayed.
        "AGGREGATE_CACHE_MAXSIZE": "10000",
    }
    application: Any = tracked(participant.application)(env=env)
    application.deadlines_of = partial(participant.deadlines, settings)
    return Context(
        settings=settings,
        application=application,
        # Its own context's database: its deadline tables, or (orders) its read model.
        pool=shared.pool(application_dsn(participant.application, settings)),
        adapters=participant.adapters(settings),
    )


def build_participant_group(
    participant: Participant, settings: Settings, shared: SharedResources | None = None
) -> HostedGroup:
    """The participant as one consumer group of a worker host, with its timers."""
    context = build_context(participant, settings, shared)
    return HostedGroup(
        process=PolicyProcessor(participant, context),
        wanted=frozenset(participant.policies),
        timers={name: partial(timer, context) for name, timer in participant.timers.items()},
        timer_interval=settings.saga_timer_seconds,
    )
