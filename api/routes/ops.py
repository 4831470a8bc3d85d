"""Operations (admin only): sagas that stopped short of a terminal state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Db, ServicesDep, require_role
from api.security import Principal
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
    _: Admin, db: Db, services: ServicesDep,
    state: Literal["stuck"] = "stuck",
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> StuckSagaPage:
    """Orders not terminal past a deadline their timers should have acted on (oldest first)."""
    found = stuck_sagas(
        db, datetime.now(UTC),
        auto_complete_after=timedelta(seconds=services.settings.auto_complete_seconds),
        limit=limit,
    )
    return StuckSagaPage(items=[StuckSaga(**order) for order in found])
