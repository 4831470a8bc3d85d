"""Orders: the orders context's application; its aggregate is domain.order.Order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrentUpdate
from domain.idempotency import claim_key, find_key, save_with_key
from domain.order import Order, OrderNotFound
from domain.order_lines import OrderLine


def _key_scope(buyer_id: UUID) -> str:
    """Keys are per buyer and per command: two buyers may pick the same key."""
    return f"place_order:{buyer_id}"


class Orders(Application[UUID]):
    """Command entry point for the orders context (tables `orders_events`)."""

    name = "Orders"

    def place_order(
        self,
        buyer_id: UUID,
        lines: Iterable[OrderLine | Mapping[str, Any]],
        shipping_address: Mapping[str, str],
        payment: Mapping[str, Any],
        idempotency_key: str | None,
        request_fingerprint: str,
        now: datetime,
        payment_timeout: timedelta,
        currency: str = "CNY",
        order_id: UUID | None = None,
        coupon_code: str | None = None,
        limited_promotion_ids: Sequence[UUID] = (),
    ) -> tuple[UUID, bool]:
        """Returns (order_id, created); a repeated key with the same body creates nothing.
        `payment` is {method, intent_id}: the intent the payments context opened for
        `order_id` (see domain.payments)."""
        placed = self.placed_with_key(buyer_id, idempotency_key, request_fingerprint)
        if placed is not None:
            return placed, False
        order = Order.place(
            buyer_id,
            lines,
            shipping_address,
            payment,
            currency,
            now,
            payment_timeout,
            order_id,
            coupon_code,
            limited_promotion_ids,
        )
        scope = _key_scope(buyer_id)
        claim = claim_key(scope, idempotency_key, request_fingerprint, order)
        try:
            earlier = save_with_key(self, claim, order)
        except IntegrityError as error:
            raise ConcurrentUpdate("order store changed meanwhile; retry") from error
        if earlier is not None:
            return earlier.replay(request_fingerprint), False
        return order.id, True

    def placed_with_key(
        self, buyer_id: UUID, idempotency_key: str | None, request_fingerprint: str
    ) -> UUID | None:
        """The order an earlier request with this key placed (IdempotencyKeyReused if that
        request had another body); None if the key is new (or there is none)."""
        earlier = find_key(self, _key_scope(buyer_id), idempotency_key)
        return None if earlier is None else earlier.replay(request_fingerprint)

    def mark_reserved(self, order_id: UUID, caused_by: UUID | None = None) -> bool:
        return self._command(order_id, lambda order: order.mark_reserved(caused_by))

    def reject(self, order_id: UUID, reason: str, caused_by: UUID | None = None) -> bool:
        return self._command(order_id, lambda order: order.reject(reason, caused_by))

    def mark_paid_and_confirm(
        self, order_id: UUID, amount: int, caused_by: UUID | None = None
    ) -> bool:
        """On `payment.captured`: paid and confirmed in one save; ignored once cancelled."""
        return self._command(order_id, lambda order: order.mark_paid_and_confirm(amount, caused_by))

    def cancel(
        self,
        order_id: UUID,
        reason: str,
        by_buyer_id: UUID | None = None,
        caused_by: UUID | None = None,
    ) -> bool:
        """By the buyer (by_buyer_id set: another buyer's order is not found) or by the saga."""
        order = self.get_order(order_id, buyer_id=by_buyer_id)
        return self._save_if(order, order.cancel(reason, caused_by))

    def cancel_overdue_payment(self, order_id: UUID, now: datetime) -> bool:
        """The payment-deadline timer's command: the order decides whether it is overdue."""
        return self._command(order_id, lambda order: order.cancel_overdue_payment(now))

    def mark_shipped(
        self, order_id: UUID, shipment_id: UUID, caused_by: UUID | None = None
    ) -> bool:
        return self._command(order_id, lambda order: order.mark_shipped(shipment_id, caused_by))

    def mark_delivered(
        self,
        order_id: UUID,
        shipment_id: UUID | None = None,
        now: datetime | None = None,
        caused_by: UUID | None = None,
    ) -> bool:
        delivered_at = now or datetime.now(UTC)
        return self._command(
            order_id, lambda order: order.mark_delivered(shipment_id, delivered_at, caused_by)
        )

    def confirm_receipt(self, order_id: UUID, buyer_id: UUID) -> bool:
        order = self.get_order(order_id, buyer_id=buyer_id)
        return self._save_if(order, order.confirm_receipt(buyer_id))

    def complete(self, order_id: UUID, caused_by: UUID | None = None) -> bool:
        """Auto-completion, for delivered orders whose `is_completion_due(now, after)`."""
        return self._command(order_id, lambda order: order.complete(caused_by))

    def get_order(self, order_id: UUID, buyer_id: UUID | None = None) -> Order:
        """With buyer_id, another buyer's order is reported as not found (HTTP 404)."""
        try:
            order: object = self.repository.get(order_id)
        except AggregateNotFoundError as error:
            raise OrderNotFound(str(order_id)) from error
        if not isinstance(order, Order) or (buyer_id is not None and order.buyer_id != buyer_id):
            raise OrderNotFound(str(order_id))
        return order

    def _command(self, order_id: UUID, command: Callable[[Order], bool]) -> bool:
        order = self.get_order(order_id)
        return self._save_if(order, command(order))

    def _save_if(self, order: Order, changed: bool) -> bool:
        if changed:
            try:
                self.save(order)
            except IntegrityError as error:
                raise ConcurrentUpdate(f"order {order.id} changed meanwhile; retry") from error
        return changed
