"""Reservations: what one order holds of each stock, all lines or none, until committed,
released or expired."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from domain.errors import InvalidInput
from domain.stock import check_quantity

RESERVATION_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:reservation")
RELEASE_REASONS = ("cancelled", "expired", "rejected")
ReleaseReason = Literal["cancelled", "expired", "rejected"]


@dataclass(frozen=True)
class ReservationLine:
    product_id: UUID
    quantity: int

    @staticmethod
    def coerce(line: ReservationLine | Mapping[str, Any]) -> ReservationLine:
        """Workers pass order lines straight from an `order.placed` payload."""
        if isinstance(line, ReservationLine):
            return line
        product_id = line["product_id"]
        return ReservationLine(
            product_id=product_id if isinstance(product_id, UUID) else UUID(str(product_id)),
            quantity=line["quantity"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {"product_id": self.product_id, "quantity": self.quantity}


def merge_lines(lines: Iterable[ReservationLine | Mapping[str, Any]]) -> list[ReservationLine]:
    """One line per product, so a stock is reserved once per order."""
    totals: dict[UUID, int] = {}
    for line in map(ReservationLine.coerce, lines):
        check_quantity(line.quantity)
        totals[line.product_id] = totals.get(line.product_id, 0) + line.quantity
    return [ReservationLine(product_id, quantity) for product_id, quantity in totals.items()]


class Reservation(Aggregate):
    """What one order holds: confirmed (all lines) or failed, then committed or released.
    A confirmed hold expires unless inventory has seen its order confirmed (paid) first."""

    @staticmethod
    def create_id(order_id: UUID, **_: Any) -> UUID:
        return uuid5(RESERVATION_NAMESPACE, str(order_id))

    @event("Opened")
    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id
        self.status = "opened"
        self.lines: list[ReservationLine] = []
        self.expires_at: datetime | None = None
        self.reason: str | None = None
        self.failed_product_id: UUID | None = None
        self.order_paid = False
        self.coupon: dict[str, Any] | None = None

    @property
    def expiry(self) -> datetime | None:
        """When this hold expires, while it still may: held for an order not paid yet."""
        if self.status != "confirmed" or self.order_paid:
            return None
        return self.expires_at

    def is_expired(self, now: datetime) -> bool:
        """Only a confirmed hold of an unpaid order expires (Inventory.expire_reservation)."""
        expiry = self.expiry
        return expiry is not None and now >= expiry

    def mark_order_paid(self, causation_id: UUID | None = None) -> bool:
        """The order is confirmed: its hold no longer expires (it is committed on shipment
        or released on cancellation)."""
        if self.status != "confirmed" or self.order_paid:
            return False
        self._order_paid(
            order_id=self.order_id, correlation_id=self.order_id, causation_id=causation_id
        )
        return True

    @event("OrderPaid")
    def _order_paid(
        self, order_id: UUID, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.order_paid = True

    @event("Confirmed")
    def _confirm(
        self,
        order_id: UUID,
        lines: list[dict[str, Any]],
        expires_at: datetime,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        coupon: dict[str, Any] | None = None,
    ) -> None:
        """`coupon` ({code, buyer_id}): the order's coupon, whose use the pricing context
        locks once the stock is held (holds stored before coupons have none)."""
        self.status = "confirmed"
        self.lines = [ReservationLine.coerce(line) for line in lines]
        self.expires_at = expires_at
        self.coupon = coupon

    @event("Failed")
    def _fail(
        self,
        order_id: UUID,
        reason: str,
        product_id: UUID | None,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status = "failed"
        self.reason = reason
        self.failed_product_id = product_id

    def commit(self, causation_id: UUID | None = None) -> bool:
        if self.status != "confirmed":
            return False
        self._commit(
            order_id=self.order_id, correlation_id=self.order_id, causation_id=causation_id
        )
        return True

    @event("Committed")
    def _commit(
        self, order_id: UUID, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status = "committed"

    def release(self, reason: str, causation_id: UUID | None = None) -> bool:
        if reason not in RELEASE_REASONS:
            raise InvalidInput(f"release reason must be one of {', '.join(RELEASE_REASONS)}")
        if self.status != "confirmed":
            return False
        self._release(
            order_id=self.order_id,
            reason=reason,
            correlation_id=self.order_id,
            causation_id=causation_id,
        )
        return True

    @event("Released")
    def _release(
        self, order_id: UUID, reason: str, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status = "released"
        self.reason = reason


# Events stored before inventory split name the aggregate in its old module.
register_topic("domain.inventory:Reservation", Reservation)
