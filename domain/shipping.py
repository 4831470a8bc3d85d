"""Shipping: one shipment per confirmed order, advanced by what the carrier reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrentUpdate, Conflict, InvalidInput, NotFound

SHIPMENT_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:shipment")
DESTINATION_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:destination")
TRACKING_STATUSES = ("picked_up", "in_transit", "out_for_delivery", "delivered")
SHIPMENT_STATUSES = ("created", *TRACKING_STATUSES)
ADDRESS_FIELDS = ("name", "line1", "city", "postal_code", "country")


class ShipmentNotFound(NotFound):
    code = "shipment_not_found"


class TrackingOutOfOrder(Conflict):
    code = "tracking_out_of_order"


class DestinationNotFound(NotFound):
    """Shipping was asked to ship an order it never saw placed."""

    code = "destination_not_found"


class Carrier(Protocol):
    """The carrier port: which tracking statuses have happened by `now`, in order."""

    def statuses_due(
        self, shipment_id: UUID, created_at: datetime, now: datetime
    ) -> Sequence[str]: ...


@dataclass(frozen=True)
class SandboxCarrier:
    """A carrier that moves one tracking step every `step_seconds`, after `delay_seconds`
    (a late carrier) from the shipment's creation."""

    step_seconds: float = 60.0
    delay_seconds: float = 0.0

    def statuses_due(self, shipment_id: UUID, created_at: datetime, now: datetime) -> Sequence[str]:
        elapsed = now - created_at - timedelta(seconds=self.delay_seconds)
        steps = max(0, int(elapsed.total_seconds() // self.step_seconds))
        return TRACKING_STATUSES[: min(steps, len(TRACKING_STATUSES))]


class Shipment(Aggregate):
    """created -> picked_up -> in_transit -> out_for_delivery -> delivered, each once."""

    @staticmethod
    def create_id(order_id: UUID, **_: Any) -> UUID:
        return uuid5(SHIPMENT_NAMESPACE, str(order_id))

    @event("Created")
    def __init__(
        self,
        order_id: UUID,
        address: dict[str, Any],
        created_at: datetime,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.order_id = order_id
        self.address = address
        self.created_at = created_at
        self.status = "created"

    def track(self, status: str, causation_id: UUID | None = None) -> bool:
        """Record one tracking step; a step already recorded is a no-op, a skipped one an error."""
        if status not in TRACKING_STATUSES:
            raise InvalidInput(f"unknown tracking status {status!r}")
        current, target = SHIPMENT_STATUSES.index(self.status), SHIPMENT_STATUSES.index(status)
        if target <= current:
            return False
        if target != current + 1:
            raise TrackingOutOfOrder(f"shipment {self.id} is {self.status}, not ready for {status}")
        record = {
            "picked_up": self._picked_up,
            "in_transit": self._in_transit,
            "out_for_delivery": self._out_for_delivery,
            "delivered": self._delivered,
        }[status]
        record(order_id=self.order_id, correlation_id=self.order_id, causation_id=causation_id)
        return True

    @event("PickedUp")
    def _picked_up(
        self, order_id: UUID, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status = "picked_up"

    @event("InTransit")
    def _in_transit(
        self, order_id: UUID, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status = "in_transit"

    @event("OutForDelivery")
    def _out_for_delivery(
        self, order_id: UUID, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status = "out_for_delivery"

    @event("Delivered")
    def _delivered(
        self, order_id: UUID, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status = "delivered"


class Destination(Aggregate):
    """Where an order goes, as the buyer gave it when placing it. Shipping keeps it from
    `order.placed`, so shipping an order needs nothing from the orders context's store.
    Private: the address is on the bus already, in `order.placed`."""

    @staticmethod
    def create_id(order_id: UUID, **_: Any) -> UUID:
        return uuid5(DESTINATION_NAMESPACE, str(order_id))

    @event("Recorded")
    def __init__(self, order_id: UUID, address: dict[str, Any]) -> None:
        self.order_id = order_id
        self.address = address


def check_address(address: Mapping[str, Any]) -> dict[str, Any]:
    """Every line present; a line that is not text is sealed under the buyer's key
    (eventmart.sealing) and kept as it came: shipping never needs to read it, a carrier
    adapter that prints labels would open it."""
    checked = {
        field: value if isinstance(value := address.get(field, ""), Mapping) else str(value).strip()
        for field in ADDRESS_FIELDS
    }
    blank = [field for field, value in checked.items() if not value]
    if blank:
        raise InvalidInput(f"address needs {', '.join(blank)}")
    return checked


class Shipping(Application[UUID]):
    """Command entry point for the shipping context (tables `shipping_events`)."""

    name = "Shipping"

    def record_destination(self, order_id: UUID, address: Mapping[str, Any]) -> UUID:
        """On `order.placed`; idempotent, the destination's id is derived from the order id."""
        if self.find_destination(order_id) is not None:
            return Destination.create_id(order_id)
        destination = Destination(order_id=order_id, address=check_address(address))
        try:
            self.save(destination)
        except IntegrityError:
            pass  # recorded by another writer meanwhile
        return destination.id

    def get_destination(self, order_id: UUID) -> Destination:
        try:
            destination: object = self.repository.get(Destination.create_id(order_id))
        except AggregateNotFoundError as error:
            raise DestinationNotFound(f"no destination for order {order_id}") from error
        if not isinstance(destination, Destination):
            raise DestinationNotFound(f"no destination for order {order_id}")
        return destination

    def find_destination(self, order_id: UUID) -> Destination | None:
        try:
            return self.get_destination(order_id)
        except DestinationNotFound:
            return None

    def create_shipment(
        self,
        order_id: UUID,
        address: Mapping[str, Any],
        now: datetime | None = None,
        caused_by: UUID | None = None,
    ) -> UUID:
        """On `order.confirmed`; idempotent, the shipment id is derived from the order id."""
        existing = self.find_shipment(order_id)
        if existing is not None:
            return existing.id
        shipment = Shipment(
            order_id=order_id,
            address=check_address(address),
            created_at=now or datetime.now(UTC),
            correlation_id=order_id,
            causation_id=caused_by,
        )
        try:
            self.save(shipment)
        except IntegrityError:
            return Shipment.create_id(order_id)
        return shipment.id

    def advance(
        self, order_id: UUID, now: datetime, carrier: Carrier, caused_by: UUID | None = None
    ) -> list[str]:
        """Record every tracking status now due, in order, once; returns the new ones."""
        shipment = self.get_shipment(order_id)
        recorded = [
            status
            for status in carrier.statuses_due(shipment.id, shipment.created_at, now)
            if shipment.track(status, causation_id=caused_by)
        ]
        if recorded:
            try:
                self.save(shipment)
            except IntegrityError as error:
                raise ConcurrentUpdate(f"shipment {shipment.id} changed; retry") from error
        return recorded

    def get_shipment(self, order_id: UUID) -> Shipment:
        shipment = self.find_shipment(order_id)
        if shipment is None:
            raise ShipmentNotFound(str(order_id))
        return shipment

    def find_shipment(self, order_id: UUID) -> Shipment | None:
        try:
            shipment: object = self.repository.get(Shipment.create_id(order_id))
        except AggregateNotFoundError:
            return None
        return shipment if isinstance(shipment, Shipment) else None
