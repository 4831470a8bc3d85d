"""Orders: the saga's state machine, tolerant of duplicate and late events."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import register_topic

from domain.coupons import normalise_code
from domain.errors import ConcurrentUpdate, Conflict, InvalidInput, NotFound
from domain.idempotency import claim_key, find_key, save_with_key
from domain.limits import (
    MAX_ADDRESS_LINE_LENGTH,
    MAX_ADDRESS_NAME_LENGTH,
    MAX_CITY_LENGTH,
    MAX_LINE_DISCOUNTS,
    MAX_LINE_QUANTITY,
    MAX_MONEY_AMOUNT,
    MAX_ORDER_LINES,
    MAX_ORDER_TOTAL,
    MAX_POSTAL_CODE_LENGTH,
    MAX_REASON_LENGTH,
    check_currency,
    check_text,
    is_whole_number,
)
from domain.order_status import (
    APPLY,
    SKIP,
    TRANSITIONS,
    InvalidOrderTransition,
)
from domain.payments import PAYMENT_METHODS

ADDRESS_LIMITS = {
    "name": MAX_ADDRESS_NAME_LENGTH,
    "line1": MAX_ADDRESS_LINE_LENGTH,
    "city": MAX_CITY_LENGTH,
    "postal_code": MAX_POSTAL_CODE_LENGTH,
    "country": 2,
}
ADDRESS_FIELDS = tuple(ADDRESS_LIMITS)
COUNTRY_CODE = re.compile("[A-Za-z]{2}")


class OrderNotFound(NotFound):
    code = "order_not_found"


class PaymentAmountMismatch(Conflict):
    code = "payment_amount_mismatch"


def _key_scope(buyer_id: UUID) -> str:
    """Keys are per buyer and per command: two buyers may pick the same key."""
    return f"place_order:{buyer_id}"


@dataclass(frozen=True)
class OrderLine:
    """A line as the pricing context priced it at placement: `list_price` per unit, the
    `discounts` taken, and `line_total` (what is charged; `unit_price` is it divided by
    the quantity, rounded down). A line without pricing (placed before the pricing
    context) is its quantity at its unit price."""

    product_id: UUID
    quantity: int
    unit_price: int
    list_price: int | None = None
    discounts: tuple[Mapping[str, Any], ...] = ()
    total: int | None = None

    @property
    def line_total(self) -> int:
        return self.quantity * self.unit_price if self.total is None else self.total

    @property
    def listed_price(self) -> int:
        return self.unit_price if self.list_price is None else self.list_price

    @property
    def discount_total(self) -> int:
        return sum(int(discount["amount"]) for discount in self.discounts)

    @staticmethod
    def coerce(line: OrderLine | Mapping[str, Any]) -> OrderLine:
        if isinstance(line, OrderLine):
            return line
        product_id = line["product_id"]
        return OrderLine(
            product_id=product_id if isinstance(product_id, UUID) else UUID(str(product_id)),
            quantity=line["quantity"],
            unit_price=line["unit_price"],
            list_price=line.get("list_price"),
            discounts=tuple(line.get("discounts") or ()),
            total=line.get("line_total"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "list_price": self.listed_price,
            "discounts": [dict(discount) for discount in self.discounts],
            "line_total": self.line_total,
        }


def check_pricing(line: OrderLine) -> None:
    """The figures of a priced line agree: list total less discounts is the line total."""
    if not is_whole_number(line.listed_price, MAX_MONEY_AMOUNT):
        raise InvalidInput(f"list_price must be a whole number from 1 to {MAX_MONEY_AMOUNT}")
    if len(line.discounts) > MAX_LINE_DISCOUNTS:
        raise InvalidInput(f"a line has at most {MAX_LINE_DISCOUNTS} discounts")
    for discount in line.discounts:
        if not is_whole_number(discount.get("amount"), MAX_ORDER_TOTAL):
            raise InvalidInput("a discount amount must be a positive whole number")
    if line.line_total != line.listed_price * line.quantity - line.discount_total:
        raise InvalidInput("line_total must be the list total less the discounts")
    if line.line_total < line.quantity or line.unit_price != line.line_total // line.quantity:
        raise InvalidInput("unit_price must be the line total divided by the quantity")


def check_lines(lines: Iterable[OrderLine | Mapping[str, Any]]) -> list[OrderLine]:
    """Prices come from the pricing context at placing time; one line per product."""
    checked = [OrderLine.coerce(line) for line in lines]
    if not 1 <= len(checked) <= MAX_ORDER_LINES:
        raise InvalidInput(f"an order needs 1 to {MAX_ORDER_LINES} lines")
    for line in checked:
        if not is_whole_number(line.quantity, MAX_LINE_QUANTITY):
            raise InvalidInput(f"quantity must be a whole number from 1 to {MAX_LINE_QUANTITY}")
        if not is_whole_number(line.unit_price, MAX_MONEY_AMOUNT):
            raise InvalidInput(f"unit_price must be a whole number from 1 to {MAX_MONEY_AMOUNT}")
        check_pricing(line)
    if len({line.product_id for line in checked}) != len(checked):
        raise InvalidInput("each product may appear on one line only")
    return checked


def check_address(address: Mapping[str, str]) -> dict[str, str]:
    unknown = set(address) - set(ADDRESS_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown address fields: {', '.join(sorted(unknown))}")
    missing = [field for field in ADDRESS_FIELDS if not address.get(field)]
    if missing:
        raise InvalidInput(f"address needs {', '.join(missing)}")
    checked = {
        field: check_text(f"address {field}", address[field], limit)
        for field, limit in ADDRESS_LIMITS.items()
    }
    if not COUNTRY_CODE.fullmatch(checked["country"]):
        raise InvalidInput("address country must be a two-letter code")
    return checked


def check_payment(payment: Mapping[str, Any]) -> dict[str, str]:
    """An order names its payment intent (kept by the payments context), never a token:
    the order's events are relayed to the bus."""
    if "token" in payment:
        raise InvalidInput("a payment token goes to the payments context, not into an order")
    method, intent_id = payment.get("method"), payment.get("intent_id")
    if method not in PAYMENT_METHODS:
        raise InvalidInput(f"payment method must be one of {', '.join(PAYMENT_METHODS)}")
    try:
        intent = intent_id if isinstance(intent_id, UUID) else UUID(str(intent_id))
    except ValueError as error:
        raise InvalidInput("payment needs the id of its payment intent") from error
    return {"method": method, "intent_id": str(intent)}


def order_total(lines: Iterable[OrderLine | Mapping[str, Any]]) -> int:
    """What an order of these lines costs (the lines checked as placing checks them)."""
    return sum(line.line_total for line in check_lines(lines))


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


# Events stored before this module was named domain.order name the aggregate in the old one.
register_topic("domain.orders:Order", Order)
