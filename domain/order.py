"""The Order aggregate: the saga's state machine, tolerant of duplicate and late events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from domain.coupons import normalise_code
from domain.errors import Conflict, InvalidInput, NotFound
from domain.limits import MAX_REASON_LENGTH, check_currency, check_text
from domain.order_lines import OrderLine, check_address, check_lines, check_payment, order_total
from domain.order_status import (
    APPLY,
    SKIP,
    TRANSITIONS,
    InvalidOrderTransition,
)


class OrderNotFound(NotFound):
    code = "order_not_found"


class PaymentAmountMismatch(Conflict):
    code = "payment_amount_mismatch"


class Order(Aggregate):
    """One buyer's order. Every command consults TRANSITIONS first."""

    @staticmethod
    def create_id(order_id: UUID, **_: Any) -> UUID:
        return order_id

    @event("Placed")
    def __init__(
        self,
        order_id: UUID,
        buyer_id: UUID,
        lines: list[dict[str, Any]],
        total: int,
        currency: str,
        shipping_address: dict[str, str],
        payment: dict[str, str],
        payment_deadline: datetime,
        correlation_id: UUID | None,
        discount_total: int = 0,
        coupon_code: str | None = None,
        limited_promotion_ids: list[UUID] | None = None,
    ) -> None:
        """`payment` is {method, intent_id}; orders placed before payment intents stored
        {method, token} here (the public event never carries it). Orders placed before the
        pricing context have no discounts and no coupon."""
        self.order_id = order_id
        self.buyer_id = buyer_id
        self.lines = [OrderLine.coerce(line) for line in lines]
        self.total = total
        self.currency = currency
        self.shipping_address = shipping_address
        self.payment = payment
        self.payment_deadline = payment_deadline
        self.status = "pending"
        self.reason: str | None = None
        self.paid_amount = 0
        self.shipment_id: UUID | None = None
        self.delivered_at: datetime | None = None
        self.discount_total = discount_total
        self.coupon_code = coupon_code
        # The promotions taken whose uses are limited: the saga locks one use of each.
        self.limited_promotion_ids = list(limited_promotion_ids or ())

    @staticmethod
    def place(
        buyer_id: UUID,
        lines: Iterable[OrderLine | Mapping[str, Any]],
        shipping_address: Mapping[str, str],
        payment: Mapping[str, Any],
        currency: str,
        now: datetime,
        payment_timeout: timedelta,
        order_id: UUID | None = None,
        coupon_code: str | None = None,
        limited_promotion_ids: Sequence[UUID] = (),
    ) -> Order:
        checked = check_lines(lines)
        if now.tzinfo is None:
            raise InvalidInput("now must be timezone-aware")
        order_id = order_id or uuid4()
        return Order(
            order_id=order_id,
            buyer_id=buyer_id,
            lines=[line.as_dict() for line in checked],
            total=order_total(checked),
            currency=check_currency(currency),
            shipping_address=check_address(shipping_address),
            payment=check_payment(payment),
            payment_deadline=now + payment_timeout,
            correlation_id=order_id,
            discount_total=sum(line.discount_total for line in checked),
            coupon_code=None if coupon_code is None else normalise_code(coupon_code),
            limited_promotion_ids=list(limited_promotion_ids),
        )

    def _may(self, command: str) -> bool:
        """True to apply, False for a harmless duplicate or late event; raises otherwise."""
        outcome = TRANSITIONS[command][self.status]
        if outcome == APPLY:
            return True
        if outcome == SKIP:
            return False
        assert isinstance(outcome, type)
        raise outcome(f"cannot {command.replace('_', ' ')} order {self.id}: it is {self.status}")

    def is_payment_overdue(self, now: datetime) -> bool:
        return self.status in ("pending", "reserved") and now >= self.payment_deadline

    def is_completion_due(self, now: datetime, after: timedelta) -> bool:
        return (
            self.status == "delivered"
            and self.delivered_at is not None
            and now >= self.delivered_at + after
        )

    def mark_reserved(self, causation_id: UUID | None = None) -> bool:
        if not self._may("mark_reserved"):
            return False
        self._reserved(order_id=self.id, correlation_id=self.id, causation_id=causation_id)
        return True

    def reject(self, reason: str, causation_id: UUID | None = None) -> bool:
        reason = check_text("reason", reason, MAX_REASON_LENGTH)
        if not self._may("reject"):
            return False
        self._rejected(
            order_id=self.id, reason=reason, correlation_id=self.id, causation_id=causation_id
        )
        return True

    def mark_paid_and_confirm(self, amount: int, causation_id: UUID | None = None) -> bool:
        """A capture may overtake the reservation event: then record reserved first."""
        if not self._may("mark_paid_and_confirm"):
            return False
        if amount != self.total:
            raise PaymentAmountMismatch(f"captured {amount}, order total is {self.total}")
        if self.status == "pending":
            self._reserved(order_id=self.id, correlation_id=self.id, causation_id=causation_id)
        # One event, not `order.paid` then `order.confirmed`: the two always came together,
        # in this aggregate and this transaction, and the second said all the first did (a
        # confirmed order is paid its total). Old logs keep their `Paid` events (_paid).
        self._confirmed(
            order_id=self.id, total=self.total, correlation_id=self.id, causation_id=causation_id
        )
        return True

    def cancel(self, reason: str, causation_id: UUID | None = None) -> bool:
        reason = check_text("reason", reason, MAX_REASON_LENGTH)
        if not self._may("cancel"):
            return False
        self._cancelled(
            order_id=self.id,
            reason=reason,
            refund_due=self.status in ("paid", "confirmed"),
            correlation_id=self.id,
            causation_id=causation_id,
        )
        return True

    def cancel_overdue_payment(self, now: datetime) -> bool:
        """The payment deadline passed unpaid: cancel. Paid (or ended) meanwhile, it is not
        overdue whatever the read model that found it says (it may lag the payment)."""
        if not self.is_payment_overdue(now):
            return False
        return self.cancel("payment_timeout")

    def mark_shipped(self, shipment_id: UUID, causation_id: UUID | None = None) -> bool:
        if not self._may("mark_shipped"):
            return False
        self._shipped(
            order_id=self.id,
            shipment_id=shipment_id,
            correlation_id=self.id,
            causation_id=causation_id,
        )
        return True

    def mark_delivered(
        self, shipment_id: UUID | None, delivered_at: datetime, causation_id: UUID | None = None
    ) -> bool:
        """Delivery implies shipment, so a delivery that overtakes pick-up records both."""
        if not self._may("mark_delivered"):
            return False
        shipment_id = shipment_id or self.shipment_id
        if self.status == "confirmed":
            if shipment_id is None:
                raise InvalidOrderTransition(f"order {self.id} was never shipped")
            self.mark_shipped(shipment_id, causation_id)
        self._delivered(
            order_id=self.id,
            shipment_id=shipment_id,
            delivered_at=delivered_at,
            correlation_id=self.id,
            causation_id=causation_id,
        )
        return True

    def confirm_receipt(self, buyer_id: UUID) -> bool:
        if buyer_id != self.buyer_id:
            raise OrderNotFound(str(self.id))
        if not self._may("confirm_receipt"):
            return False
        self._completed(
            order_id=self.id, automatic=False, correlation_id=self.id, causation_id=None
        )
        return True

    def complete(self, causation_id: UUID | None = None) -> bool:
        if not self._may("complete"):
            return False
        self._completed(
            order_id=self.id, automatic=True, correlation_id=self.id, causation_id=causation_id
        )
        return True

    @event("Reserved")
    def _reserved(
        self, order_id: UUID, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status = "reserved"

    @event("Rejected")
    def _rejected(
        self, order_id: UUID, reason: str, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status, self.reason = "rejected", reason

    @event("Paid")
    def _paid(
        self, order_id: UUID, amount: int, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status, self.paid_amount = "paid", amount

    @event("Confirmed")
    def _confirmed(
        self, order_id: UUID, total: int, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status, self.paid_amount = "confirmed", total

    @event("Cancelled")
    def _cancelled(
        self,
        order_id: UUID,
        reason: str,
        refund_due: bool,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status, self.reason = "cancelled", reason

    @event("Shipped")
    def _shipped(
        self,
        order_id: UUID,
        shipment_id: UUID,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status, self.shipment_id = "shipped", shipment_id

    @event("Delivered")
    def _delivered(
        self,
        order_id: UUID,
        shipment_id: UUID | None,
        delivered_at: datetime,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status, self.delivered_at = "delivered", delivered_at

    @event("Completed")
    def _completed(
        self,
        order_id: UUID,
        automatic: bool,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status = "completed"


# Events stored before orders split name the aggregate in its old module.
register_topic("domain.orders:Order", Order)
