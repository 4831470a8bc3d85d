"""Inventory: stock per product and all-or-nothing reservations per order, never oversold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.catalog import NotProductOwner
from domain.errors import ConcurrentUpdate, Conflict, InvalidInput, NotFound
from domain.idempotency import claim_key, find_key, result_as_left, save_with_key
from domain.limits import MAX_STOCK, is_whole_number

STOCK_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:stock")
RESERVATION_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:reservation")
RELEASE_REASONS = ("cancelled", "expired", "rejected")
ReleaseReason = Literal["cancelled", "expired", "rejected"]


class StockNotFound(NotFound):
    code = "product_not_found"


class InvalidQuantity(InvalidInput):
    code = "invalid_quantity"


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class StockLimitExceeded(InvalidInput):
    code = "stock_limit_exceeded"


def check_quantity(quantity: int) -> None:
    """Quantities are whole positive units, no more than a stock can hold."""
    if not is_whole_number(quantity, MAX_STOCK):
        raise InvalidQuantity(f"quantity must be a whole number from 1 to {MAX_STOCK}")


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


class Stock(Aggregate):
    """Units of one product. Invariant: 0 <= reserved <= on_hand."""

    @staticmethod
    def create_id(product_id: UUID, **_: Any) -> UUID:
        return uuid5(STOCK_NAMESPACE, str(product_id))

    @event("Registered")
    def __init__(self, product_id: UUID, seller_id: UUID) -> None:
        self.product_id = product_id
        self.seller_id = seller_id
        self.on_hand = 0
        self.reserved = 0
        self.sold = 0
        self.reservations: dict[str, int] = {}

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def receive(self, seller_id: UUID, quantity: int, received_at: datetime) -> None:
        if seller_id != self.seller_id:
            raise NotProductOwner(f"product {self.product_id} belongs to another seller")
        check_quantity(quantity)
        if self.on_hand + quantity > MAX_STOCK:
            raise StockLimitExceeded(
                f"a product holds at most {MAX_STOCK} units; {self.on_hand} are on hand"
            )
        self._receive(
            product_id=self.product_id,
            quantity=quantity,
            on_hand=self.on_hand + quantity,
            reserved=self.reserved,
            received_at=received_at,
        )

    @event("Received")
    def _receive(
        self, product_id: UUID, quantity: int, on_hand: int, reserved: int, received_at: datetime
    ) -> None:
        self.on_hand = on_hand

    def reserve(self, order_id: UUID, quantity: int, causation_id: UUID | None = None) -> None:
        """Reserving twice for one order is a no-op, so redelivered events hold nothing twice."""
        if str(order_id) in self.reservations:
            return
        check_quantity(quantity)
        if quantity > self.available:
            raise InsufficientStock(f"{self.available} of {self.product_id} available")
        self._reserve(
            product_id=self.product_id,
            order_id=order_id,
            quantity=quantity,
            on_hand=self.on_hand,
            reserved=self.reserved + quantity,
            correlation_id=order_id,
            causation_id=causation_id,
        )

    @event("Reserved")
    def _reserve(
        self,
        product_id: UUID,
        order_id: UUID,
        quantity: int,
        on_hand: int,
        reserved: int,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.reserved = reserved
        self.reservations[str(order_id)] = quantity

    def commit(self, order_id: UUID, causation_id: UUID | None = None) -> None:
        """The reserved units leave the shelf: reserved and on_hand fall, sold rises."""
        quantity = self.reservations.get(str(order_id))
        if quantity is None:
            return
        self._commit(
            product_id=self.product_id,
            order_id=order_id,
            quantity=quantity,
            on_hand=self.on_hand - quantity,
            reserved=self.reserved - quantity,
            correlation_id=order_id,
            causation_id=causation_id,
        )

    @event("Committed")
    def _commit(
        self,
        product_id: UUID,
        order_id: UUID,
        quantity: int,
        on_hand: int,
        reserved: int,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.on_hand = on_hand
        self.reserved = reserved
        self.sold += quantity
        del self.reservations[str(order_id)]

    def release(self, order_id: UUID, reason: str, causation_id: UUID | None = None) -> None:
        quantity = self.reservations.get(str(order_id))
        if quantity is None:
            return
        self._release(
            product_id=self.product_id,
            order_id=order_id,
            quantity=quantity,
            reason=reason,
            on_hand=self.on_hand,
            reserved=self.reserved - quantity,
            correlation_id=order_id,
            causation_id=causation_id,
        )

    @event("Released")
    def _release(
        self,
        product_id: UUID,
        order_id: UUID,
        quantity: int,
        reason: str,
        on_hand: int,
        reserved: int,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.reserved = reserved
        del self.reservations[str(order_id)]


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
