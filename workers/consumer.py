"""A consumer group as a Faust app: batches in, effects out, poison to the dead-letter topic.

The agent is thin: it decodes a batch, hands it to a plain synchronous function
off the event loop (eventsourcing and psycopg are synchronous; running them on
the loop would stall heartbeats and rebalances), and parks what keeps failing.
concurrency=1: faust-streaming commits past in-flight messages otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from eventmart.contracts import CONTRACTS, MalformedEvent, parse
from eventmart.metrics import METRICS
from eventmart.settings import Settings
from projections.tracking import Delivery

log = logging.getLogger("eventmart.consumer")

BatchProcessor = Callable[[list[Delivery]], object]


def build_app(group: str, settings: Settings, **overrides: Any) -> faust.App:
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.bootstrap_servers}",
        "store": "memory://",
        "web_enabled": False,
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "stream_wait_empty": False,
        "broker_commit_interval": 0.5,
        # A killed replica's partitions move to the others after this, not after a minute.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        "autodiscover": False,
    }
    options.update(overrides)
    return faust.App(group, **options)


class GroupConsumer:
    """Runs `process` over batches of one group's topics; see the module docstring."""

    batch_size = 200
    batch_within = 0.02

    def __init__(self, app: faust.App, group: str, topics: list[str], process: BatchProcessor,
                 *, max_tries: int = 3, retry_backoff: float = 0.2,
                 wanted: frozenset[str] | None = None) -> None:
        self.app = app
        self.group = group
        self.process = process
        # Known event types outside `wanted` are passed over without validating their
        # payload (most of a topic is for other groups); unknown or broken ones still park.
        self.wanted = wanted
        self.max_tries = max_tries
        self.retry_backoff = retry_backoff
        source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
        self.dead_letters = app.topic(f"{group}.dlq", key_serializer="raw", value_serializer="raw")
        self.processed = 0
        self.parked = 0
        app.agent(source, name=f"{group}-agent", concurrency=1)(self._consume)

    async def _consume(self, stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(self.batch_size, within=self.batch_within):
            await self.handle([event.message for event in events])

    async def handle(self, messages: list[Any]) -> None:
        decoded, malformed = self._decode(messages)
        deliveries = [delivery for _, delivery in decoded]
        if deliveries:
            try:
                await asyncio.to_thread(self.process, deliveries)
                self.processed += len(deliveries)
                METRICS.events_processed.labels(self.group).inc(len(deliveries))
            except Exception:  # noqa: BLE001 - find the culprit one message at a time
                log.warning("%s: batch of %d failed; retrying one by one", self.group, len(deliveries))
                for message, delivery in decoded:
                    await self._one_by_one(message, delivery)
        for message, error in malformed:
            METRICS.events_failed.labels(self.group).inc()
            await self._park(message, error, tries=1)

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
            decoded.append((message, Delivery(message.topic, message.partition, message.offset, envelope)))
        return decoded, malformed

    def _passed_over(self, raw: Any) -> bool:
        if self.wanted is None or not isinstance(raw, dict):
            return False
        event_type = raw.get("type")
        return event_type in CONTRACTS and event_type not in self.wanted

    async def _one_by_one(self, message: Any, delivery: Delivery) -> None:
        for attempt in range(1, self.max_tries + 1):
            try:
                await asyncio.to_thread(self.process, [delivery])
                self.processed += 1
                METRICS.events_processed.labels(self.group).inc()
                return
            except Exception as error:  # noqa: BLE001 - retried, then parked with its error
                METRICS.events_failed.labels(self.group).inc()
                if attempt == self.max_tries:
                    await self._park(message, error, tries=attempt)
                    return
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
        pending = await self.dead_letters.send(key=message.key, value=message.value, headers=headers)
        await pending
        self.parked += 1
        METRICS.events_parked.labels(self.group).inc()
        log.error("%s: parked %s[%d]@%d after %d tries: %s", self.group, message.topic,
                  message.partition, message.offset, tries, error)


def run_worker(app: faust.App, loglevel: str = "warn") -> None:
    """Run a Faust app in this process until SIGINT/SIGTERM."""
    started = time.monotonic()
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        log.info("%s stopped after %.1fs", app.conf.id, time.monotonic() - started)
