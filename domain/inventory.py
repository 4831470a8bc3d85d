"""Inventory: stock per product and all-or-nothing reservations per order, never oversold.

The application only; its aggregates are domain.stock.Stock and
domain.reservations.Reservation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrentUpdate, InvalidInput
from domain.idempotency import claim_key, find_key, result_as_left, save_with_key
from domain.reservations import RELEASE_REASONS, Reservation, ReservationLine, merge_lines
from domain.stock import Stock, StockNotFound


class Inventory(Application[UUID]):
    """Command entry point for the inventory context (tables `inventory_events`)."""

    name = "Inventory"

    def register_product(self, product_id: UUID, seller_id: UUID) -> Stock:
        """Called on `product.created`; idempotent so a redelivered event changes nothing."""
        existing = self.find_stock(product_id)
        if existing is not None:
            return existing
        stock = Stock(product_id=product_id, seller_id=seller_id)
        try:
            self.save(stock)
        except IntegrityError:
            return self.get_stock(product_id)
        return stock

    def receive_stock(
        self,
        product_id: UUID,
        seller_id: UUID,
        quantity: int,
        now: datetime | None = None,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> int:
        """Answers the new on-hand count. With an Idempotency-Key, the same request again
        receives nothing and answers the count the first one left."""
        scope = f"receive_stock:{seller_id}"
        earlier = find_key(self, scope, idempotency_key)
        if earlier is not None:
            return result_as_left(self, earlier, fingerprint, Stock).on_hand
        stock = self.get_stock(product_id)
        stock.receive(seller_id, quantity, now or datetime.now(UTC))
        try:
            earlier = save_with_key(
                self, claim_key(scope, idempotency_key, fingerprint, stock), stock
            )
        except IntegrityError as error:
            raise ConcurrentUpdate("stock changed meanwhile; retry") from error
        if earlier is not None:
            return result_as_left(self, earlier, fingerprint, Stock).on_hand
        return stock.on_hand

    def reserve_order(
        self,
        order_id: UUID,
        lines: Iterable[ReservationLine | Mapping[str, Any]],
        expires_at: datetime,
        caused_by: UUID | None = None,
        coupon: dict[str, Any] | None = None,
    ) -> Reservation:
        """All lines or none, in one atomic save; optimistic concurrency forbids oversell.
        `coupon` ({code, buyer_id}) travels on with the hold, for the pricing context to
        lock one of its uses (the order is rejected, and this hold released, if none is
        left)."""
        existing = self.find_reservation(order_id)
        if existing is not None:
            return existing
        if expires_at.tzinfo is None:
            raise InvalidInput("expires_at must be timezone-aware")
        reservation = Reservation(order_id=order_id)
        try:
            merged = merge_lines(lines)
        except (InvalidInput, KeyError, ValueError, TypeError):
            return self._fail(reservation, "invalid_lines", None, caused_by)
        if not merged:
            return self._fail(reservation, "invalid_lines", None, caused_by)
        stocks: list[Stock] = []
        for line in merged:
            stock = self.find_stock(line.product_id)
            if stock is None:
                return self._fail(reservation, "unknown_product", line.product_id, caused_by)
            if stock.available < line.quantity:
                return self._fail(reservation, "insufficient_stock", line.product_id, caused_by)
            stock.reserve(order_id, line.quantity, causation_id=caused_by)
            stocks.append(stock)
        reservation._confirm(
            order_id=order_id,
            lines=[line.as_dict() for line in merged],
            expires_at=expires_at,
            correlation_id=order_id,
            causation_id=caused_by,
            coupon=coupon,
        )
        self._save(*stocks, reservation)
        return reservation

    def commit_order(self, order_id: UUID, caused_by: UUID | None = None) -> Reservation | None:
        """Called on `order.confirmed`; a no-op unless the reservation is still held."""
        return self._settle(order_id, None, caused_by)

    def release_order(
        self, order_id: UUID, reason: str, caused_by: UUID | None = None
    ) -> Reservation | None:
        """Called on cancel, expiry or rejection; a no-op unless the reservation is still held."""
        if reason not in RELEASE_REASONS:
            raise InvalidInput(f"release reason must be one of {', '.join(RELEASE_REASONS)}")
        return self._settle(order_id, reason, caused_by)

    def mark_order_paid(self, order_id: UUID, caused_by: UUID | None = None) -> bool:
        """Called on `order.confirmed`: the order's hold no longer expires."""
        reservation = self.find_reservation(order_id)
        if reservation is None or not reservation.mark_order_paid(causation_id=caused_by):
            return False
        self._save(reservation)
        return True

    def expire_reservation(self, order_id: UUID, now: datetime) -> bool:
        """Release the hold if it has expired by `now` (a held, unpaid order's); else False."""
        reservation = self.find_reservation(order_id)
        if reservation is None or not reservation.is_expired(now):
            return False
        self._settle(order_id, "expired", None)
        return True

    def get_stock(self, product_id: UUID) -> Stock:
        stock = self.find_stock(product_id)
        if stock is None:
            raise StockNotFound(str(product_id))
        return stock

    def find_stock(self, product_id: UUID) -> Stock | None:
        try:
            stock: object = self.repository.get(Stock.create_id(product_id))
        except AggregateNotFoundError:
            return None
        return stock if isinstance(stock, Stock) else None

    def find_reservation(self, order_id: UUID) -> Reservation | None:
        try:
            reservation: object = self.repository.get(Reservation.create_id(order_id))
        except AggregateNotFoundError:
            return None
        return reservation if isinstance(reservation, Reservation) else None

    def _settle(
        self, order_id: UUID, release_reason: str | None, caused_by: UUID | None
    ) -> Reservation | None:
        reservation = self.find_reservation(order_id)
        if reservation is None or reservation.status != "confirmed":
            return reservation
        stocks = [self.get_stock(line.product_id) for line in reservation.lines]
        for stock in stocks:
            if release_reason is None:
                stock.commit(order_id, causation_id=caused_by)
            else:
                stock.release(order_id, release_reason, causation_id=caused_by)
        if release_reason is None:
            reservation.commit(causation_id=caused_by)
        else:
            reservation.release(release_reason, causation_id=caused_by)
        self._save(*stocks, reservation)
        return reservation

    def _fail(
        self,
        reservation: Reservation,
        reason: str,
        product_id: UUID | None,
        caused_by: UUID | None,
    ) -> Reservation:
        reservation._fail(
            order_id=reservation.order_id,
            reason=reason,
            product_id=product_id,
            correlation_id=reservation.order_id,
            causation_id=caused_by,
        )
        self._save(reservation)
        return reservation

    def _save(self, *aggregates: Aggregate) -> None:
        try:
            self.save(*aggregates)
        except IntegrityError as error:
            raise ConcurrentUpdate("stock changed meanwhile; retry") from error
