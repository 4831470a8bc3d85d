"""Sending one outbox's events, for the relay: batches in order with everything the
broker acknowledged before the position moves, events that fail parked with their
aggregate's later events held behind them (workers.outbox), and operators' redrives
and skips acted on in each aggregate's order."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.trace import Span, SpanKind

from eventmart import tracing
from eventmart.database import closed_by_the_server
from eventmart.outages import broker_away
from eventmart.settings import Settings
from workers.outbox import Encoded, Outbox, ParkedRow, plan

log = logging.getLogger("eventmart.relay")
T = TypeVar("T")


def publish_span(topic: str, event: Encoded) -> Span | None:
    """The relay's PRODUCER span for one event, child of the event's stored cause."""
    if not tracing.ENABLED:
        return None
    return tracing.start(
        f"{topic} publish",
        SpanKind.PRODUCER,
        event.traceparent,
        {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": event.key.decode() if event.key else "",
            "messaging.message.id": event.event_id or "",
            "eventmart.event_type": event.event_type,
        },
    )


def trace_headers(span: Span | None, event: Encoded) -> list[tuple[str, bytes]] | None:
    """The record's `traceparent`: the publish span, or (tracing off) the stored cause."""
    traceparent = tracing.traceparent_of(span, event.traceparent)
    return None if traceparent is None else [("traceparent", traceparent.encode())]


def published(span: Span | None, outcome: Any) -> None:
    if span is None:
        return
    if isinstance(outcome, BaseException):
        tracing.finish(span, "refused")
        return
    tracing.finish(
        span,
        "published",
        **{
            "messaging.destination.partition.id": str(outcome.partition),
            "messaging.kafka.offset": outcome.offset,
        },
    )


class LockLost(Exception):
    """The connection holding the relay's lock broke: another relay may be active now."""


class SharedConnection:
    """The connection holding the relay's lock, shared by every outbox's task: one thread
    uses it at a time, so one outbox's transaction never interleaves with another's."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    @property
    def broken(self) -> bool:
        return self.conn.broken or self.conn.closed

    async def check_held(self) -> None:
        """Raise LockLost if PostgreSQL closed the connection (and so released the lock)
        since it was last used: a standby may be publishing already. No round trip for a
        connection that is fine (one select() on its socket, taken alone, so another
        outbox's query in flight is not mistaken for the server's goodbye)."""
        if await self.run(lambda conn: conn.closed or closed_by_the_server(conn)):
            raise LockLost("PostgreSQL closed the connection holding the relay's lock")

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(conn, *args)` in a thread, alone on the connection."""
        return await asyncio.to_thread(self._alone, work, *args)

    def _alone(self, work: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return work(self.conn, *args)


class OutboxSender:
    """One outbox's sending during one relay session (one producer, one locked connection)."""

    def __init__(
        self,
        outbox: Outbox,
        producer: AIOKafkaProducer,
        shared: SharedConnection,
        settings: Settings,
        stopping: asyncio.Event,
    ) -> None:
        self.outbox = outbox
        self.producer = producer
        self.shared = shared
        self.settings = settings
        self.stopping = stopping

    async def drain_all(self) -> float | None:
        """Relay batches until the outbox is empty; or seconds until a failed event's
        next try."""
        while not self.stopping.is_set():
            batch = await asyncio.to_thread(self.outbox.pending, self.settings.relay_batch_size)
            if not batch:
                return None
            retry = await self._drain(batch)
            if retry is not None:
                return retry
            if len(batch) < self.settings.relay_batch_size:
                return None
        return None

    async def _drain(self, batch: list[Encoded]) -> float | None:
        decided = plan(
            batch,
            self.outbox.blocked,
            self.outbox.tries,
            self.outbox.publish_errors,
            self.settings.relay_max_tries,
        )
        refused = await self._publish(decided.sends)
        stop = refused or decided.retry  # a refused send comes before the retry, if both
        reached = max(
            (
                e.notification_id
                for e in batch
                if stop is None or e.notification_id < stop.notification_id
            ),
            default=self.outbox.position,
        )
        parks = [p for p in decided.parks if p.event.notification_id <= reached]
        await self.shared.run(self.outbox.commit, parks, reached)
        for park in parks:
            log.error(
                "%s: parked notification %d (%s v%d, %s): %s",
                self.outbox.name,
                park.event.notification_id,
                park.event.aggregate_id,
                park.event.aggregate_version,
                park.event.event_type,
                park.error or f"held behind {park.held_behind}",
            )
        if refused is not None:
            return 0.5 * self.outbox.tries[refused.notification_id]
        if decided.retry is not None:
            self.outbox.tries[decided.retry.notification_id] = decided.retry_tries
            log.warning(
                "%s: notification %d cannot be encoded (try %d of %d): %s",
                self.outbox.name,
                decided.retry.notification_id,
                decided.retry_tries,
                self.settings.relay_max_tries,
                decided.retry.error,
            )
            return 0.5 * decided.retry_tries
        return None

    async def _publish(self, events: list[Encoded]) -> Encoded | None:
        """Send in order and wait for every acknowledgement (acks=all). The first event the
        broker refuses for itself (too large, say) is returned with a try counted, and
        nothing after it counts as sent; the broker being away raises."""
        await self.shared.check_held()  # not one event more once the lock may be gone
        deliveries: list[tuple[Encoded, Any]] = []
        refused: tuple[Encoded, Exception] | None = None
        spans: list[Span | None] = []
        for event in events:
            span = publish_span(self.outbox.topic, event)
            spans.append(span)
            try:
                deliveries.append(
                    (
                        event,
                        await self.producer.send(
                            self.outbox.topic,
                            value=event.value,
                            key=event.key,
                            headers=trace_headers(span, event),
                        ),
                    )
                )
            except KafkaError as error:
                tracing.finish(span, "refused")
                if broker_away(error):
                    raise
                refused = (event, error)
                break
        outcomes = await asyncio.gather(
            *(delivery for _, delivery in deliveries), return_exceptions=True
        )
        if tracing.ENABLED:
            for span, outcome in zip(spans, outcomes, strict=False):
                published(span, outcome)
        for (event, _), outcome in zip(deliveries, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, KafkaError) or broker_away(outcome):
                    raise outcome
                refused = (event, outcome)  # what came after it may be on the topic too:
                break  # sent again from here, consumers drop the copies
        if refused is None:
            return None
        event, refusal = refused
        self.outbox.tries[event.notification_id] = (
            self.outbox.tries.get(event.notification_id, 0) + 1
        )
        self.outbox.publish_errors[event.notification_id] = refusal
        log.warning(
            "%s: Kafka refused notification %d (try %d of %d): %s",
            self.outbox.name,
            event.notification_id,
            self.outbox.tries[event.notification_id],
            self.settings.relay_max_tries,
            refusal,
        )
        return event

    async def act_on_requests(self) -> None:
        """Operators' redrives and skips, one aggregate's queue at a time, in order: a
        skipped event is marked; the first of a queue is sent if asked for (or if the one
        it waited behind is resolved); the queue stops at the first that fails again."""
        for queue in await self.shared.run(self.outbox.parked_chains):
            waiting: list[int] = []
            first = True
            for row in queue:
                if row.requested == "skip":
                    await self.shared.run(self.outbox.resolve, row.notification_id, "skipped")
                    log.warning(
                        "%s: notification %d skipped", self.outbox.name, row.notification_id
                    )
                    continue
                if first and row.due and await self._redrive(row):
                    continue
                first = False
                waiting.append(row.notification_id)
            await self.shared.run(self.outbox.forget_requests, waiting)
        await self.shared.run(self.outbox.reload_blocked)

    async def _redrive(self, row: ParkedRow) -> bool:
        """Send one parked event again; True if the broker has it (or it is private)."""
        event = await asyncio.to_thread(self.outbox.one, row.notification_id)
        error = None if event is None else event.error
        if event is not None and error is None and event.value is not None:
            span = publish_span(self.outbox.topic, event)
            try:
                published(
                    span,
                    await (
                        await self.producer.send(
                            self.outbox.topic,
                            value=event.value,
                            key=event.key,
                            headers=trace_headers(span, event),
                        )
                    ),
                )
            except KafkaError as refused:
                tracing.finish(span, "refused")
                if broker_away(refused):
                    raise
                error = refused
        if error is not None:
            await self.shared.run(self.outbox.failed_again, row.notification_id, error)
            log.error(
                "%s: notification %d failed again: %s", self.outbox.name, row.notification_id, error
            )
            return False
        await self.shared.run(self.outbox.resolve, row.notification_id, "redriven")
        log.warning("%s: notification %d redriven", self.outbox.name, row.notification_id)
        return True
