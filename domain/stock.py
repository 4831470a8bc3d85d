"""Stock: the units of one product, never oversold (0 <= reserved <= on_hand)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from domain.catalog import NotProductOwner
from domain.errors import Conflict, InvalidInput, NotFound
from domain.limits import MAX_STOCK, is_whole_number

STOCK_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:stock")


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


# Events stored before inventory split name the aggregate in its old module.
register_topic("domain.inventory:Stock", Stock)
