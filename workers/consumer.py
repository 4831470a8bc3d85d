"""A consumer group inside a Faust worker: batches in, effects out, poison to the dead-letter
topic, and offsets committed only for what was processed.

The group's consumer is a plain aiokafka consumer run as a service of the Faust app,
not a Faust agent. Faust's stream machinery keeps its own offset bookkeeping: a take
buffer's events are acked in a `finally` even when their batch was cancelled, and jumps
in read offsets are counted as done, with known rebalance bugs (faust-streaming issues
216, 221, 312). With agents, the scaling test once ended, in CI, with an `order.placed`
the inventory group never applied. Here the rule is simple enough to check by reading:

- a batch is handed to a plain synchronous function off the event loop (eventsourcing
  and psycopg are synchronous; running them on the loop would stall heartbeats);
- an offset is marked processed only after its batch's effects are committed (or the
  message is parked), and only marked offsets are ever committed;
- before partitions are revoked, and before the worker stops, the batch in flight is
  finished and the marked offsets committed, so the next owner starts exactly there.

One batch at a time per group (the old `concurrency=1`), on a thread of the group's own: a
worker process may host several groups (workers/host.py), and a slow or failing batch in
one of them must not wait for, or make wait, a thread another group needs.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from mode import Service
from opentelemetry.trace import SpanKind

from eventmart import tracing
from eventmart.contracts import CONTRACTS, Envelope, MalformedEvent, parse
from eventmart.metrics import METRICS
from eventmart.operations import REDRIVEN_FROM
from eventmart.outages import broker_away, database_away, dependency_away
from eventmart.settings import Settings
from projections.tracking import Delivery

log = logging.getLogger("eventmart.consumer")

BatchProcessor = Callable[[list[Delivery]], object]
MAX_OUTAGE_PAUSE_SECONDS = 5.0


class Postponed(Exception):
    """A batch left unprocessed and unmarked (the worker stopped during an outage): the
    group's next owner gets it again."""


def build_app(group: str, settings: Settings, **overrides: Any) -> faust.App:
    # Faust makes a table directory even with the memory store; keep it with the stack's
    # other state, not in whatever directory the worker was started from. (It creates
    # only the last level itself.)
    faust_dir = settings.state_dir / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.bootstrap_servers}",
        "store": "memory://",
        "web_enabled": False,
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        "autodiscover": False,
        "datadir": str(faust_dir / "{conf.name}-data"),
    }
    options.update(overrides)
    app = faust.App(group, **options)
    # The group's consumer and dead-letter producer are GroupConsumer's own (see the module
    # docstring); Faust hosts the process: services, timers, signals, logging.
    app.boot_strategy = app.BootStrategy(
        app, enable_kafka_consumer=False, enable_kafka_producer=False
    )
    return app


class GroupConsumer(Service):
    """Runs `process` over batches of one group's topics; see the module docstring."""

    batch_size = 200
    commit_interval = 0.5  # seconds between offset commits while the group is busy
    poll_timeout_ms = 500

    def __init__(
        self,
        app: faust.App | None,
        group: str,
        topics: list[str],
        process: BatchProcessor,
        *,
        bootstrap: str,
        max_tries: int = 3,
        retry_backoff: float = 0.2,
        wanted: frozenset[str] | None = None,
        gather_ms: int = 0,
        dead_letters: DeadLetterProducer | None = None,
    ) -> None:
        """With `app`, the consumer starts and stops with that Faust app; without, whoever
        hosts it does (workers/host.py). `dead_letters` is a producer shared with the other
        groups in the process, started and stopped by its owner; without it the consumer
        runs its own."""
        super().__init__()
        self.bootstrap = bootstrap
        self.group = group
        self.topics = topics
        self.process = process
        # Known event types outside `wanted` are passed over without validating their
        # payload (most of a topic is for other groups); unknown or broken ones still park.
        self.wanted = wanted
        self.max_tries = max_tries
        self.retry_backoff = retry_backoff
        # 0: the broker answers a fetch as soon as there is anything (a saga step's latency).
        # More: it holds the fetch that long unless a megabyte gathers (a projection's
        # throughput: one fetch and one transaction for many events, not one each).
        self.gather_ms = gather_ms
        self.dead_letters = f"{group}.dlq"
        self._consumer: AIOKafkaConsumer | None = None
        self._owns_producer = dead_letters is None
        self._producer = dead_letters or DeadLetterProducer(bootstrap, f"{group}-dlq")
        # One thread of its own: batches run one at a time anyway, and the event loop's
        # default pool (cores + 4 threads) is shared by every group and timer in the process.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=group)
        # The next offset to commit per partition: everything before it is applied or parked.
        self._done: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._batch = asyncio.Lock()  # held while a batch is in flight

        async def start_with_app() -> None:
            assert app is not None
            await app.add_runtime_dependency(self)

        if app is not None:
            start_with_app.__name__ = f"{group}_consumer".replace("-", "_")
            app.task(start_with_app)

    async def on_start(self) -> None:
        gather = (
            {"fetch_max_wait_ms": self.gather_ms, "fetch_min_bytes": 1024 * 1024}
            if self.gather_ms
            else {}
        )
        if self._owns_producer:
            await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A killed replica's partitions move to the others after this, not after a minute.
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **gather,
        )
        self._consumer.subscribe(self.topics, listener=_HandOver(self))
        await self._consumer.start()

    async def on_stop(self) -> None:
        """Finish the batch in flight, commit what is done, leave the group."""
        async with self._batch:
            await self._commit()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._owns_producer:
            await self._producer.stop()
        self._thread.shutdown(wait=False)

    async def _in_thread(self, deliveries: list[Delivery]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self.process, deliveries)

    @Service.task
    async def _consume(self) -> None:
        assert self._consumer is not None
        while not self.should_stop:
            try:
                fetched = await self._consumer.getmany(
                    timeout_ms=self.poll_timeout_ms, max_records=self.batch_size
                )
            except ConsumerStoppedError:
                return
            # Partitions interleaved by record time, each one's order kept: a batch is
            # applied roughly in the order its events happened, as a stream would see them.
            messages = list(heapq.merge(*fetched.values(), key=lambda message: message.timestamp))
            if messages and not self.should_stop:
                async with self._batch:
                    # Shielded: a worker told to stop still finishes (and commits) the batch
                    # it started; on_stop waits for it under the same lock.
                    try:
                        await asyncio.shield(self._handle_and_mark(messages))
                    except Postponed:
                        return  # told to stop while PostgreSQL was away: redelivered later
            if time.monotonic() - self._last_commit >= self.commit_interval:
                async with self._batch:
                    await self._commit()

    async def _handle_and_mark(self, messages: list[Any]) -> None:
        await self.handle(messages)
        for message in messages:
            self._done[TopicPartition(message.topic, message.partition)] = message.offset + 1

    async def _commit(self) -> None:
        self._last_commit = time.monotonic()
        due = {tp: offset for tp, offset in self._done.items() if self._committed.get(tp) != offset}
        if not due or self._consumer is None:
            return
        try:
            await self._consumer.commit(
                {tp: OffsetAndMetadata(offset, "") for tp, offset in due.items()}
            )
            self._committed.update(due)
        except KafkaError as error:
            # The group moved on without us (e.g. a stalled member was evicted): the next
            # owner starts from the last commit and deduplication absorbs the repeats.
            log.warning(
                "%s: offsets not committed (%s: %s)", self.group, type(error).__name__, error
            )

    async def _hand_over(self, revoked: set[TopicPartition]) -> None:
        async with self._batch:
            await self._commit()
            for tp in revoked:
                self._done.pop(tp, None)
                self._committed.pop(tp, None)

    async def handle(self, messages: list[Any]) -> None:
        decoded, malformed = self._decode(messages)
        deliveries = [delivery for _, delivery in decoded]
        if deliveries:
            try:
                await self._processed(deliveries)
                METRICS.events_processed.labels(self.group).inc(len(deliveries))
                handled(deliveries, "applied")
            except Postponed:
                handled(deliveries, "postponed")
                raise
            except Exception:  # noqa: BLE001 - find the culprit one message at a time
                handled(deliveries, "retried")
                log.warning(
                    "%s: batch of %d failed; retrying one by one", self.group, len(deliveries)
                )
                for message, delivery in decoded:
                    await self._one_by_one(message, delivery)
        for message, error in malformed:
            METRICS.events_failed.labels(self.group).inc()
            span = self._span(message, None, message_traceparent(message))
            await self._park(message, error, tries=1)
            tracing.finish(span, "parked", **{"error.type": type(error).__name__})

    def _span(self, message: Any, envelope: Envelope | None, parent: str | None) -> Any:
        """The group's CONSUMER span for one record (None with tracing off)."""
        if not tracing.ENABLED:
            return None
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.consumer.group.name": self.group,
            "messaging.destination.name": message.topic,
            "messaging.destination.partition.id": str(message.partition),
            "messaging.kafka.offset": message.offset,
        }
        if envelope is not None:
            attributes["messaging.message.id"] = str(envelope.event_id)
            attributes["eventmart.event_type"] = envelope.type
        return tracing.start(f"{message.topic} process", SpanKind.CONSUMER, parent, attributes)

    def _traced(self, message: Any, delivery: Delivery) -> Delivery:
        """The delivery with a span of its own (an attempt) and what it causes carries."""
        incoming = message_traceparent(message) or delivery.envelope.traceparent
        span = self._span(message, delivery.envelope, incoming)
        return replace(delivery, span=span, cause=tracing.traceparent_of(span, incoming))

    def _decode(
        self, messages: list[Any]
    ) -> tuple[list[tuple[Any, Delivery]], list[tuple[Any, Exception]]]:
        decoded: list[tuple[Any, Delivery]] = []
        malformed: list[tuple[Any, Exception]] = []
        for message in messages:
            try:
                raw = orjson.loads(message.value)
                if self._passed_over(raw):
                    continue
                envelope = parse(raw)
            except (orjson.JSONDecodeError, TypeError) as error:
                malformed.append((message, MalformedEvent(f"not an EventMart envelope: {error}")))
                continue
            except MalformedEvent as error:
                malformed.append((message, error))
                continue
            redriven = any(name == REDRIVEN_FROM for name, _ in message.headers or ())
            incoming = message_traceparent(message) or envelope.traceparent
            span = self._span(message, envelope, incoming)
            delivery = Delivery(
                message.topic,
                message.partition,
                message.offset,
                envelope,
                redriven,
                timestamp=message.timestamp,
                cause=tracing.traceparent_of(span, incoming),
                span=span,
            )
            decoded.append((message, delivery))
        return decoded, malformed

    def _passed_over(self, raw: Any) -> bool:
        if self.wanted is None or not isinstance(raw, dict):
            return False
        event_type = raw.get("type")
        return event_type in CONTRACTS and event_type not in self.wanted

    async def _processed(self, deliveries: list[Delivery]) -> None:
        """`process`, waiting out PostgreSQL or Kafka being away: that is no fault of these
        events, so it counts no try towards the dead-letter topic. The same deliveries are
        processed again once it is back (what was committed before is dropped as a copy).
        Told to stop meanwhile, raises Postponed: nothing is marked, all is redelivered."""
        pause = 0.0
        while True:
            try:
                await self._in_thread(deliveries)
                return
            except Exception as error:
                if not dependency_away(error):
                    raise
                if self.should_stop:
                    raise Postponed(str(error)) from error
                pause = min(MAX_OUTAGE_PAUSE_SECONDS, pause * 2 or 0.5)
                log.warning(
                    "%s: %s (%s); %d events wait %.1fs",
                    self.group,
                    "PostgreSQL away" if database_away(error) else "Kafka away",
                    error,
                    len(deliveries),
                    pause,
                )
                await asyncio.sleep(pause)

    async def _one_by_one(self, message: Any, delivery: Delivery) -> None:
        for attempt in range(1, self.max_tries + 1):
            delivery = self._traced(message, delivery)
            try:
                await self._processed([delivery])
                METRICS.events_processed.labels(self.group).inc()
                handled([delivery], "applied")
                return
            except Postponed:
                handled([delivery], "postponed")
                raise
            except Exception as error:  # noqa: BLE001 - retried, then parked with its error
                METRICS.events_failed.labels(self.group).inc()
                if attempt == self.max_tries:
                    await self._park(message, error, tries=attempt)
                    handled([delivery], "parked", error)
                    return
                handled([delivery], "retried", error)
                await asyncio.sleep(self.retry_backoff * attempt)

    async def _park(self, message: Any, error: Exception, *, tries: int) -> None:
        """Send to <group>.dlq with the error in headers, and wait for the broker to have it
        before the offset can move past the message."""
        headers = {
            "x-error-type": type(error).__name__.encode(),
            "x-error-message": str(error)[:2000].encode(),
            "x-error-trace": "".join(traceback.format_exception(error))[-4000:].encode(),
            "x-tries": str(tries).encode(),
            "x-original-topic": message.topic.encode(),
            "x-original-partition": str(message.partition).encode(),
            "x-original-offset": str(message.offset).encode(),
            "x-consumer-group": self.group.encode(),
            "x-parked-at": datetime.now(UTC).isoformat().encode(),
        }
        pause = 0.0
        while True:  # the offset must not move past it until the DLQ has it
            try:
                await self._producer.send_and_wait(
                    self.dead_letters,
                    key=message.key,
                    value=message.value,
                    headers=list(headers.items()),
                )
                break
            except KafkaError as refused:
                if not broker_away(refused):
                    raise
                if self.should_stop:
                    raise Postponed(f"could not park: {refused}") from refused
                pause = min(MAX_OUTAGE_PAUSE_SECONDS, pause * 2 or 0.5)
                await asyncio.sleep(pause)
        METRICS.events_parked.labels(self.group).inc()
        log.error(
            "%s: parked %s[%d]@%d after %d tries: %s",
            self.group,
            message.topic,
            message.partition,
            message.offset,
            tries,
            error,
        )


def message_traceparent(message: Any) -> str | None:
    """The record's `traceparent` header (the relay's publish span), if it has one."""
    for name, value in message.headers or ():
        if name == "traceparent":
            text = bytes(value).decode("ascii", "replace")
            # A malformed one is not continued: stamped on events, it would break them.
            return text if tracing.parse(text) is not None else None
    return None


def handled(deliveries: list[Delivery], outcome: str, error: Exception | None = None) -> None:
    """End each delivery's span with its outcome: `outcome`, unless the group marked it
    (a duplicate, an event it does not handle)."""
    if not tracing.ENABLED:
        return
    for delivery in deliveries:
        span = delivery.span
        if span is None:
            continue
        marked = getattr(span, "attributes", None) or {}
        if outcome not in ("applied",) or "eventmart.outcome" not in marked:
            span.set_attribute("eventmart.outcome", outcome)
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
        span.end()


class DeadLetterProducer:
    """The producer that parks messages: acks from every in-sync replica, idempotent. One
    per process, shared by the groups it hosts; made when started (aiokafka wants a loop)."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap, self.client_id = bootstrap, client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            client_id=self.client_id,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send_and_wait(self, topic: str, **message: Any) -> None:
        """Until the broker has it."""
        assert self._producer is not None, "the dead-letter producer was not started"
        await self._producer.send_and_wait(topic, **message)


class _HandOver(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Before partitions move, the batch in flight finishes and its offsets are committed,
    so the next owner starts where this one stopped (aiokafka waits for this callback)."""

    def __init__(self, owner: GroupConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner._hand_over(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "%s: assigned %s", self.owner.group, sorted((tp.topic, tp.partition) for tp in assigned)
        )


def run_worker(app: faust.App, loglevel: str = "warn") -> None:
    """Run a Faust app in this process until SIGINT/SIGTERM."""
    started = time.monotonic()
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # At `warn` and above Faust adds a terminal spinner that "spins for every log message":
    # it sets the root logger to DEBUG, so every library's debug call (aiokafka logs per
    # fetch and commit) builds a record for it. That was ~9% of a busy worker's CPU.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    finally:
        log.info("%s stopped after %.1fs", app.conf.id, time.monotonic() - started)
