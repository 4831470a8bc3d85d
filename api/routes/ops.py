"""Operations (admin only): consumer lag, dead letters and their redrive, and sagas that
stopped short of a terminal state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.deps import OrdersDb, ServicesDep, require_role
from api.errors import ApiError, error_responses
from api.params import Cursor, Limit
from api.security import Principal
from eventmart.broker import consumer_groups
from eventmart.operations import (
    consumer_group_lag,
    dead_letter,
    dead_letter_summaries,
    redrive_dead_letters,
)
from eventmart.relay_operations import (
    RELAY_GROUP,
    dead_letter_summary,
    request_redrive,
    request_skip,
)
from eventmart.relay_operations import dead_letter as relay_dead_letter
from projections.order_trace import order_trace as rebuild_order_trace
from projections.orders import stuck_sagas

router = APIRouter(prefix="/v1/ops", tags=["ops"])

Admin = Annotated[Principal, require_role("admin")]
GROUP_NAME = r"^[a-z0-9][a-z0-9-]{0,99}$"
GroupQuery = Annotated[str | None, Query(pattern=GROUP_NAME, description="a consumer group")]
GroupPath = Annotated[str, Path(pattern=GROUP_NAME, description="a consumer group")]
Offset = Annotated[int, Path(ge=0, le=2**63 - 1, description="the dead letter's offset")]
Partition = Annotated[int, Query(ge=0, le=2**31 - 1)]
ADMIN_ERRORS = (401, 403, 503)
APPLICATION_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,99}$"
Application = Annotated[
    str, Query(pattern=APPLICATION_NAME, description="the application whose outbox holds it")
]
ApplicationQuery = Annotated[
    str | None, Query(pattern=APPLICATION_NAME, description="only this application's outbox")
]
NotificationPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="its outbox position")]
NotificationId = Annotated[int, Query(ge=1, le=2**63 - 1, description="its outbox position")]
NotificationQuery = Annotated[
    int | None, Query(ge=1, le=2**63 - 1, description="only this outbox position")
]


class StuckSaga(BaseModel):
    order_id: UUID
    buyer_id: UUID
    status: str
    saga_step: str | None
    stuck_because: Literal["payment_deadline_passed", "auto_completion_overdue", "no_progress"]
    created_at: datetime
    updated_at: datetime
    payment_deadline: datetime | None
    reservation_expires_at: datetime | None
    delivered_at: datetime | None
    compensations: list[str]


class StuckSagaPage(BaseModel):
    items: list[StuckSaga]
    next_cursor: str | None = None


@router.get("/sagas", response_model=StuckSagaPage, responses=error_responses(*ADMIN_ERRORS))
def sagas(
    _: Admin,
    db: OrdersDb,
    services: ServicesDep,
    state: Literal["stuck"] = "stuck",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> StuckSagaPage:
    """Orders not terminal past a deadline their timers should have acted on (oldest
    update first), one page at a time like every list."""
    found = stuck_sagas(
        db,
        datetime.now(UTC),
        auto_complete_after=timedelta(seconds=services.settings.auto_complete_seconds),
        limit=limit + 1,
        after=None if cursor is None else services.cursors.decode(cursor, "sagas"),
    )
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        next_cursor = services.cursors.encode(
            "sagas", (page[-1]["updated_at"], page[-1]["order_id"])
        )
    return StuckSagaPage(items=[StuckSaga(**order) for order in page], next_cursor=next_cursor)


class TraceSpan(BaseModel):
    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    started_at: datetime
    ended_at: datetime
    attributes: dict[str, str | int]


class OrderTrace(BaseModel):
    trace_id: str
    spans: list[TraceSpan]


@router.get(
    "/orders/{order_id}/trace",
    response_model=OrderTrace,
    responses=error_responses(*ADMIN_ERRORS, 404),
)
def order_trace(order_id: UUID, _: Admin, db: OrdersDb) -> OrderTrace:
    """The order's saga as one trace, rebuilt from the event log (works with tracing off):
    a span per stored event, relay publish and group's handling, parents by causation."""
    found = rebuild_order_trace(db, str(order_id))
    if found is None:
        raise ApiError(404, "order_not_found", str(order_id))
    return OrderTrace(**found)


class ConsumerGroupPartition(BaseModel):
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag: int
    members: int


class DeadLetter(BaseModel):
    """A parked message. For the `relay` group, offset is the notification id in its
    application's outbox, and the relay's own fields below are set."""

    offset: int
    partition: int
    key: str | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    error_type: str | None
    error_message: str | None
    tries: int | None
    parked_at: str | None
    redriven: bool
    error_trace: str | None = None
    value: str | None = None
    application: str | None = None
    notification_id: int | None = None
    aggregate_id: str | None = None
    aggregate_version: int | None = None
    event_type: str | None = None
    held_behind: int | None = None
    status: Literal["parked", "redriven", "skipped"] | None = None
    requested: Literal["redrive", "skip"] | None = None


class DeadLetterGroup(BaseModel):
    group: str
    parked: int
    redriven: int
    pending: int
    skipped: int = 0
    messages: list[DeadLetter]


class DeadLetterList(BaseModel):
    items: list[DeadLetterGroup]


class Redriven(BaseModel):
    group: str
    redriven: int


class Skipped(BaseModel):
    group: Literal["relay"]
    skipped: int


@asynccontextmanager
async def _broker() -> AsyncIterator[None]:
    """A broker that cannot answer yet (starting, electing a coordinator) is a 503, not a 500."""
    try:
        yield
    except KafkaError as error:
        raise ApiError(503, "broker_unavailable", f"Kafka could not answer: {error}") from error


def _known_group(group: str) -> str:
    if group not in consumer_groups():
        raise ApiError(
            404, "unknown_consumer_group", f"no consumer group {group!r} in the catalogue"
        )
    return group


@router.get(
    "/consumer-groups",
    response_model=list[ConsumerGroupPartition],
    responses=error_responses(*ADMIN_ERRORS),
)
async def consumer_group_positions(_: Admin, services: ServicesDep) -> list[dict[str, Any]]:
    """Committed against end offsets per group and partition: how far behind each group is."""
    async with _broker():
        return await consumer_group_lag(services.settings.bootstrap_servers, consumer_groups())


@router.get("/dlq", response_model=DeadLetterList, responses=error_responses(*ADMIN_ERRORS, 404))
async def dead_letters(
    _: Admin,
    services: ServicesDep,
    group: GroupQuery = None,
    limit: Annotated[int, Query(ge=0, le=100)] = 20,
) -> DeadLetterList:
    """Parked messages per group: counts, and the newest `limit` with their error headers.
    The `relay` group holds the events the outbox relay could not publish."""
    summaries = []
    if group in (None, RELAY_GROUP):
        summaries.append(await asyncio.to_thread(_relay_summary, services, limit))
    groups = [_known_group(group)] if group and group != RELAY_GROUP else []
    if group is None:
        groups = list(consumer_groups())
    if groups:
        async with _broker():
            summaries += await dead_letter_summaries(
                services.settings.bootstrap_servers, services.settings.dsn, groups, messages=limit
            )
    return DeadLetterList.model_validate({"items": summaries})


def _relay_summary(services: Any, limit: int) -> dict[str, Any]:
    with services.pool.connection() as conn:
        return dead_letter_summary(conn, messages=limit)


@router.get(
    "/dlq/relay/{notification_id:int}",
    response_model=DeadLetter,
    responses=error_responses(*ADMIN_ERRORS, 404),
)
def relay_dead_letter_detail(
    _: Admin, services: ServicesDep, notification_id: NotificationPath, application: Application
) -> dict[str, Any]:
    """One event the relay parked, with its stack trace (`application` names its outbox)."""
    with services.pool.connection() as conn:
        found = relay_dead_letter(conn, application, notification_id)
    if found is None:
        raise ApiError(
            404,
            "dead_letter_not_found",
            f"the relay parked no notification {notification_id} of {application!r}",
        )
    return found


@router.post(
    "/dlq/relay/redrive",
    response_model=Redriven,
    status_code=202,
    responses=error_responses(*ADMIN_ERRORS),
)
def relay_redrive(
    _: Admin,
    services: ServicesDep,
    application: ApplicationQuery = None,
    notification_id: NotificationQuery = None,
) -> Redriven:
    """Ask the relay to publish parked events again (after a fix): all, one application's
    or one. Each one's held-back successors follow it in order; one that fails again
    stays parked. The relay acts within a poll interval; 202 counts what was asked for."""
    with services.pool.connection() as conn:
        count = request_redrive(conn, application, notification_id)
    return Redriven(group=RELAY_GROUP, redriven=count)


@router.post(
    "/dlq/relay/skip",
    response_model=Skipped,
    status_code=202,
    responses=error_responses(*ADMIN_ERRORS, 404),
)
def relay_skip(
    _: Admin, services: ServicesDep, application: Application, notification_id: NotificationId
) -> Skipped:
    """Ask the relay to give up on one parked event: it is never published, and the events
    of its aggregate held behind it are released (in order)."""
    with services.pool.connection() as conn:
        count = request_skip(conn, application, notification_id)
    if count == 0:
        raise ApiError(
            404,
            "dead_letter_not_found",
            f"the relay has no parked notification {notification_id} of {application!r}",
        )
    return Skipped(group=RELAY_GROUP, skipped=count)


@router.get(
    "/dlq/{group}/{offset:int}",  # digits only: ".../redrive" is not an offset
    response_model=DeadLetter,
    responses=error_responses(*ADMIN_ERRORS, 404),
)
async def dead_letter_detail(
    _: Admin, services: ServicesDep, group: GroupPath, offset: Offset, partition: Partition = 0
) -> dict[str, Any]:
    """One parked message with its value and stack trace."""
    async with _broker():
        found = await dead_letter(
            services.settings.bootstrap_servers,
            services.settings.dsn,
            _known_group(group),
            offset,
            partition,
        )
    if found is None:
        raise ApiError(404, "dead_letter_not_found", f"{group}.dlq has no retained offset {offset}")
    return found


@router.post(
    "/dlq/{group}/redrive",
    response_model=Redriven,
    status_code=202,
    responses=error_responses(*ADMIN_ERRORS, 404),
)
async def redrive(_: Admin, services: ServicesDep, group: GroupPath) -> Redriven:
    """Re-publish the group's pending dead letters to their original topics, each once."""
    async with _broker():
        count = await redrive_dead_letters(
            services.settings.bootstrap_servers, services.settings.dsn, _known_group(group)
        )
    return Redriven(group=group, redriven=count)
