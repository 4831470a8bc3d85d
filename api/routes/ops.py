"""Operations (admin only): consumer lag, dead letters and their redrive, and sagas that
stopped short of a terminal state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import OrdersDb, ServicesDep, require_role
from api.errors import ApiError
from api.security import Principal
from eventmart.broker import consumer_groups
from eventmart.operations import (
    consumer_group_lag,
    dead_letter,
    dead_letter_summaries,
    redrive_dead_letters,
)
from projections.orders import stuck_sagas

router = APIRouter(prefix="/v1/ops", tags=["ops"])

Admin = Annotated[Principal, require_role("admin")]


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


@router.get("/sagas", response_model=StuckSagaPage)
def sagas(
    _: Admin,
    db: OrdersDb,
    services: ServicesDep,
    state: Literal["stuck"] = "stuck",
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> StuckSagaPage:
    """Orders not terminal past a deadline their timers should have acted on (oldest first)."""
    found = stuck_sagas(
        db,
        datetime.now(UTC),
        auto_complete_after=timedelta(seconds=services.settings.auto_complete_seconds),
        limit=limit,
    )
    return StuckSagaPage(items=[StuckSaga(**order) for order in found])


class ConsumerGroupPartition(BaseModel):
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag: int
    members: int


class DeadLetter(BaseModel):
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


class DeadLetterGroup(BaseModel):
    group: str
    parked: int
    redriven: int
    pending: int
    messages: list[DeadLetter]


class DeadLetterList(BaseModel):
    items: list[DeadLetterGroup]


class Redriven(BaseModel):
    group: str
    redriven: int


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


@router.get("/consumer-groups", response_model=list[ConsumerGroupPartition])
async def consumer_group_positions(_: Admin, services: ServicesDep) -> list[dict[str, Any]]:
    """Committed against end offsets per group and partition: how far behind each group is."""
    async with _broker():
        return await consumer_group_lag(services.settings.bootstrap_servers, consumer_groups())


@router.get("/dlq", response_model=DeadLetterList)
async def dead_letters(
    _: Admin,
    services: ServicesDep,
    group: str | None = None,
    limit: Annotated[int, Query(ge=0, le=100)] = 20,
) -> DeadLetterList:
    """Parked messages per group: counts, and the newest `limit` with their error headers."""
    groups = [_known_group(group)] if group else list(consumer_groups())
    async with _broker():
        summaries = await dead_letter_summaries(
            services.settings.bootstrap_servers, services.settings.dsn, groups, messages=limit
        )
    return DeadLetterList.model_validate({"items": summaries})


@router.get("/dlq/{group}/{offset}", response_model=DeadLetter)
async def dead_letter_detail(
    _: Admin, services: ServicesDep, group: str, offset: int, partition: int = 0
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


@router.post("/dlq/{group}/redrive", response_model=Redriven, status_code=202)
async def redrive(_: Admin, services: ServicesDep, group: str) -> Redriven:
    """Re-publish the group's pending dead letters to their original topics, each once."""
    async with _broker():
        count = await redrive_dead_letters(
            services.settings.bootstrap_servers, services.settings.dsn, _known_group(group)
        )
    return Redriven(group=group, redriven=count)
