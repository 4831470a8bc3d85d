"""Payments: one payment per order, charged at most once, refunded at most once.

The buyer's payment token never leaves this context: the API hands it to the payments
context as a payment intent (kept in the context's own table, never in an event — an
event store is an outbox), and the order names the intent. The charge reads the intent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrentUpdate, InvalidInput, NotFound
from domain.limits import (
    MAX_ORDER_TOTAL,
    MAX_PAYMENT_TOKEN_LENGTH,
    MAX_REASON_LENGTH,
    MAX_REFERENCE_LENGTH,
    check_currency,
    check_text,
    is_whole_number,
)

PAYMENT_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:payment")
SANDBOX_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:sandbox-gateway")
PAYMENT_METHODS = ("card", "alipay", "wechat")
ChargeStatus = Literal["approved", "declined", "pending"]


class PaymentNotFound(NotFound):
    code = "payment_not_found"


class PaymentIntentNotFound(NotFound):
    code = "payment_intent_not_found"


def check_amount(amount: int) -> None:
    if not is_whole_number(amount, MAX_ORDER_TOTAL):
        raise InvalidInput(f"amount must be a whole number of minor units, 1 to {MAX_ORDER_TOTAL}")


@dataclass(frozen=True)
class PaymentIntent:
    """What the buyer authorised when placing an order: the terms to charge and the
    gateway token. The token is not part of the repr, so no log line can show it."""

    intent_id: UUID
    order_id: UUID
    amount: int
    currency: str
    method: str
    token: str = field(repr=False)

    @staticmethod
    def open(order_id: UUID, amount: int, currency: str, method: str, token: str) -> PaymentIntent:
        check_amount(amount)
        if method not in PAYMENT_METHODS:
            raise InvalidInput(f"payment method must be one of {', '.join(PAYMENT_METHODS)}")
        token = check_text("payment token", token, MAX_PAYMENT_TOKEN_LENGTH)
        return PaymentIntent(uuid4(), order_id, amount, check_currency(currency), method, token)

    @property
    def reference(self) -> dict[str, str]:
        """What the order may carry instead of the token."""
        return {"method": self.method, "intent_id": str(self.intent_id)}


class PaymentIntents(Protocol):
    """The payments context's store of intents, one per order."""

    def open(self, intent: PaymentIntent) -> PaymentIntent:
        """Store the intent; if the order has one already, that one stays and is returned."""
        ...

    def find(self, order_id: UUID) -> PaymentIntent | None: ...


@dataclass
class MemoryPaymentIntents:
    """Intents in a dict, for domain tests (the platform keeps them in PostgreSQL)."""

    intents: dict[UUID, PaymentIntent] = field(default_factory=dict)

    def open(self, intent: PaymentIntent) -> PaymentIntent:
        return self.intents.setdefault(intent.order_id, intent)

    def find(self, order_id: UUID) -> PaymentIntent | None:
        return self.intents.get(order_id)


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    reference: str | None = None
    reason: str | None = None


class PaymentGateway(Protocol):
    """The payment provider port. Real providers key charges by order id, so a retried
    charge after a crash is not a second charge."""

    def charge(
        self, order_id: UUID, amount: int, currency: str, method: str, token: str
    ) -> ChargeResult: ...

    def refund(self, reference: str, amount: int) -> str:
        """Returns the refund's own reference."""
        ...


@dataclass
class SandboxGateway:
    """Behaves like a provider, driven by the token: tok_ok approves, tok_declined declines,
    tok_timeout never answers (pending forever); anything else is declined."""

    charges: list[tuple[UUID, int, str]] = field(default_factory=list)
    refunds: list[tuple[str, int]] = field(default_factory=list)

    def charge(
        self, order_id: UUID, amount: int, currency: str, method: str, token: str
    ) -> ChargeResult:
        self.charges.append((order_id, amount, token))
        reference = f"sbx_ch_{uuid5(SANDBOX_NAMESPACE, str(order_id)).hex[:24]}"
        if token == "tok_ok":
            return ChargeResult("approved", reference=reference)
        if token == "tok_timeout":
            return ChargeResult("pending", reference=reference)
        if token == "tok_declined":
            return ChargeResult("declined", reason="card_declined")
        return ChargeResult("declined", reason="invalid_token")

    def refund(self, reference: str, amount: int) -> str:
        self.refunds.append((reference, amount))
        return f"sbx_re_{uuid5(SANDBOX_NAMESPACE, reference).hex[:24]}"


class Payment(Aggregate):
    """new -> captured | declined | pending; captured -> refunded; new | pending -> voided."""

    @staticmethod
    def create_id(order_id: UUID, **_: Any) -> UUID:
        return uuid5(PAYMENT_NAMESPACE, str(order_id))

    @event("Opened")
    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id
        self.status = "new"
        self.amount = 0
        self.currency: str | None = None
        self.method: str | None = None
        self.reference: str | None = None
        self.reason: str | None = None
        self.refund_reference: str | None = None

    @property
    def may_charge(self) -> bool:
        """Only a payment never attempted may be charged; voided ones are skipped."""
        return self.status == "new"

    def record_charge(
        self,
        result: ChargeResult,
        amount: int,
        currency: str,
        method: str,
        causation_id: UUID | None = None,
    ) -> None:
        if not self.may_charge:
            raise InvalidInput(f"payment for order {self.order_id} is already {self.status}")
        order_id = self.order_id
        if result.status == "approved":
            if not result.reference:
                raise InvalidInput("an approved charge needs a reference")
            self._captured(
                amount=amount,
                currency=currency,
                method=method,
                reference=check_text("charge reference", result.reference, MAX_REFERENCE_LENGTH),
                order_id=order_id,
                correlation_id=order_id,
                causation_id=causation_id,
            )
        elif result.status == "pending":
            self._pending(
                amount=amount,
                currency=currency,
                method=method,
                reference=result.reference,
                order_id=order_id,
                correlation_id=order_id,
                causation_id=causation_id,
            )
        else:
            self._declined(
                reason=check_text("decline reason", result.reason or "declined", MAX_REASON_LENGTH),
                order_id=order_id,
                correlation_id=order_id,
                causation_id=causation_id,
            )

    def cancel(self, gateway: PaymentGateway, causation_id: UUID | None = None) -> bool:
        """Refund a capture, void anything not yet captured; False when nothing is left to do."""
        order_id = self.order_id
        if self.status == "captured":
            assert self.reference is not None
            refund_reference = check_text(
                "refund reference",
                gateway.refund(self.reference, self.amount),
                MAX_REFERENCE_LENGTH,
            )
            self._refunded(
                amount=self.amount,
                reference=refund_reference,
                order_id=order_id,
                correlation_id=order_id,
                causation_id=causation_id,
            )
            return True
        if self.status in ("new", "pending"):
            self._voided(order_id=order_id, correlation_id=order_id, causation_id=causation_id)
            return True
        return False

    @event("Captured")
    def _captured(
        self,
        order_id: UUID,
        amount: int,
        currency: str,
        method: str,
        reference: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status, self.amount, self.currency = "captured", amount, currency
        self.method, self.reference = method, reference

    @event("Pending")
    def _pending(
        self,
        order_id: UUID,
        amount: int,
        currency: str,
        method: str,
        reference: str | None,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status, self.amount, self.currency = "pending", amount, currency
        self.method, self.reference = method, reference

    @event("Declined")
    def _declined(
        self, order_id: UUID, reason: str, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status, self.reason = "declined", reason

    @event("Refunded")
    def _refunded(
        self,
        order_id: UUID,
        amount: int,
        reference: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status, self.refund_reference = "refunded", reference

    @event("Voided")
    def _voided(
        self, order_id: UUID, correlation_id: UUID | None, causation_id: UUID | None
    ) -> None:
        self.status = "voided"


class Payments(Application[UUID]):
    """Command entry point for the payments context (tables `payments_events`)."""

    name = "Payments"

    def charge_order(
        self, intent: PaymentIntent, gateway: PaymentGateway, caused_by: UUID | None = None
    ) -> Payment:
        """Charges the intent once: a payment already attempted, or voided (the order was
        cancelled first), is returned untouched."""
        payment = self.find_payment(intent.order_id) or Payment(order_id=intent.order_id)
        if not payment.may_charge:
            return payment
        check_amount(intent.amount)
        result = gateway.charge(
            intent.order_id, intent.amount, intent.currency, intent.method, intent.token
        )
        payment.record_charge(
            result, intent.amount, intent.currency, intent.method, causation_id=caused_by
        )
        self._save(payment)
        return payment

    def cancel_payment(
        self, order_id: UUID, gateway: PaymentGateway, caused_by: UUID | None = None
    ) -> Payment:
        """On `order.cancelled`: refund once if captured, else void so no later charge happens."""
        payment = self.find_payment(order_id) or Payment(order_id=order_id)
        if payment.cancel(gateway, causation_id=caused_by):
            self._save(payment)
        return payment

    def get_payment(self, order_id: UUID) -> Payment:
        payment = self.find_payment(order_id)
        if payment is None:
            raise PaymentNotFound(str(order_id))
        return payment

    def find_payment(self, order_id: UUID) -> Payment | None:
        try:
            payment: object = self.repository.get(Payment.create_id(order_id))
        except AggregateNotFoundError:
            return None
        return payment if isinstance(payment, Payment) else None

    def _save(self, payment: Payment) -> None:
        try:
            self.save(payment)
        except IntegrityError as error:
            raise ConcurrentUpdate(f"payment for {payment.order_id} changed; retry") from error
