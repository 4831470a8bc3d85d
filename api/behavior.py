"""The behaviour stream's producer in the API process: one shared idempotent producer
(acks=all, batched by `linger_ms`), started with the app and again on demand if Kafka was
away at start.

A view is answered 202 only after the broker acknowledged it (`publish`): acks=all and the
idempotent producer mean an acknowledged record is in the log once, even if the producer
retried its batch across a broker restart. Impressions and searches are published without
waiting (`publish_soon`): losing one costs a click-through or search figure, never an
answer. While Kafka is away such sends pile up only to `MAX_PENDING`; past it they are
dropped (counted, and logged once per outage) rather than queued without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import BaseModel, ConfigDict

from api.idempotency import RecentKeys
from eventmart.contracts import CONTRACTS, Envelope
from eventmart.contracts.behavior import SESSION_NAMESPACE, SessionId, ViewSource, visitor_id
from eventmart.settings import Settings

log = logging.getLogger("eventmart.api.behavior")

MAX_PENDING = 1000  # fire-and-forget sends in flight at once; more are dropped


def behavior_envelope(
    event_type: str,
    payload: dict[str, Any],
    *,
    user_id: UUID | None,
    session_id: str | None,
    idempotency_key: str | None = None,
) -> Envelope:
    """The envelope of a behaviour event, checked against its contract. With an
    Idempotency-Key the event id is derived from it and the visitor, so a retried view is
    the same event (the recommender counts an event id once). An event of nobody (a
    contract that allows it: searches) is keyed by its own id."""
    contract = CONTRACTS[event_type]
    checked = contract.payload.model_validate(
        {**payload, "user_id": user_id, "session_id": session_id}
    )
    if user_id is None and session_id is None:
        event_id = uuid4()
        visitor = event_id
    else:
        visitor = visitor_id(user_id, session_id)
        event_id = (
            uuid5(SESSION_NAMESPACE, f"{event_type}:{visitor}:{idempotency_key}")
            if idempotency_key
            else uuid4()
        )
    return Envelope(
        event_id=event_id,
        type=event_type,
        schema_version=contract.schema_version,
        aggregate_id=visitor,
        aggregate_version=0,
        occurred_at=datetime.now(UTC),
        correlation_id=event_id,
        payload=checked.model_dump(mode="json"),
    )


class RecordView(BaseModel):
    """The body of `POST /v1/events/view`."""

    model_config = ConfigDict(extra="forbid")

    product_id: UUID
    session_id: SessionId | None = None
    source: ViewSource = "direct"


async def publish_view(
    state: Any,
    view: RecordView,
    category: str,
    user_id: UUID | None,
    idempotency_key: str | None,
) -> Envelope:
    """Publish a view of a product of `category` (returning once Kafka acknowledged it)
    with the app's producer, and remember the category for the visitor (cold start).
    IdempotencyKeyReused, before anything is published, for a key this process saw with
    another view of the visitor."""
    keys: RecentKeys = state.view_keys
    visitor = visitor_id(user_id, view.session_id)
    request = f"{view.product_id}:{view.source}"
    if idempotency_key is not None:
        keys.check(str(visitor), idempotency_key, request)
    envelope = behavior_envelope(
        "behavior.viewed",
        {"product_id": view.product_id, "source": view.source},
        user_id=user_id,
        session_id=view.session_id,
        idempotency_key=idempotency_key,
    )
    publisher: BehaviorPublisher = state.behavior
    await publisher.publish(envelope)
    if idempotency_key is not None:
        keys.remember(str(visitor), idempotency_key, request)
    recent: RecentCategories = state.recent_categories
    recent.viewed(visitor, category)
    return envelope


class BehaviorPublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.behavior_publish_timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._dropping = False
        self.dropped = 0  # events dropped since the process started

    async def start(self) -> None:
        """Start now if Kafka answers; otherwise the first publish tries again."""
        try:
            await self._started()
        except KafkaError as error:
            log.warning("behaviour producer: Kafka away at start (%s); will retry", error)

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=self.settings.behavior_linger_ms,
                    max_batch_size=262144,
                    request_timeout_ms=int(self.timeout * 1000),
                    client_id="eventmart-api-behavior",
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    async def publish(self, envelope: Envelope) -> None:
        """Returns once the broker acknowledged the record; a KafkaError (503) otherwise."""
        producer = await self._started()
        topic = CONTRACTS[envelope.type].topic
        try:
            sent = await producer.send(topic, envelope.to_bytes(), key=envelope.key())
            await asyncio.wait_for(asyncio.shield(sent), self.timeout)
        except (TimeoutError, KafkaError) as error:
            # A batch that expired while the broker was away leaves a gap in the idempotent
            # producer's sequence numbers, and aiokafka then fails every later batch
            # (OutOfOrderSequenceNumber): a failed send retires the producer, and the next
            # publish starts a fresh one (a new producer id, new sequences).
            self._retire(producer)
            raise KafkaConnectionError(
                f"the broker did not acknowledge in time ({type(error).__name__})"
            ) from error

    def _retire(self, producer: AIOKafkaProducer) -> None:
        if id(self._producer) != id(producer):
            return  # another request retired it already
        self._producer = None
        log.warning("behaviour producer: a send failed; starting a fresh producer")
        task = asyncio.get_running_loop().create_task(producer.stop())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def publish_soon(self, envelope: Envelope) -> None:
        """Publish without making anyone wait; a failure is logged. With `MAX_PENDING`
        sends already in flight (Kafka slow or away) the event is dropped and counted."""
        if self._pending >= MAX_PENDING:
            if not self._dropping:
                self._dropping = True
                log.warning("behaviour: %d sends in flight; dropping until they drain", MAX_PENDING)
            self.dropped += 1
            return
        self._pending += 1

        async def send() -> None:
            try:
                await self.publish(envelope)
            except Exception as error:  # noqa: BLE001 - an impression lost is only logged
                log.warning("behaviour: %s not published (%s)", envelope.type, error)
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._dropping = False

        task = asyncio.get_running_loop().create_task(send())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()


class RecentCategories:
    """The categories each visitor viewed lately, as this API process saw their views: what
    the cold-start rule ("popular in the categories you viewed") needs before the next
    model knows the visitor. Bounded in visitors and in categories per visitor."""

    def __init__(self, max_visitors: int = 100_000, per_visitor: int = 10) -> None:
        self.max_visitors = max_visitors
        self.per_visitor = per_visitor
        self._seen: OrderedDict[UUID, deque[str]] = OrderedDict()

    def viewed(self, visitor: UUID, category: str) -> None:
        recent = self._seen.pop(visitor, None) or deque(maxlen=self.per_visitor)
        if category in recent:
            recent.remove(category)
        recent.appendleft(category)
        self._seen[visitor] = recent
        if len(self._seen) > self.max_visitors:
            self._seen.popitem(last=False)

    def of(self, visitor: UUID) -> list[str]:
        return list(self._seen.get(visitor, ()))


class KnownProducts:
    """Product id -> category of products known to exist (products are never deleted), so
    a view checks its product from memory after the first time. Bounded."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._categories: OrderedDict[UUID, str] = OrderedDict()

    def get(self, product_id: UUID) -> str | None:
        return self._categories.get(product_id)

    def add(self, rows: Iterable[tuple[UUID, str]]) -> None:
        for product_id, category in rows:
            self._categories[product_id] = category
            if len(self._categories) > self.max_entries:
                self._categories.popitem(last=False)
