"""Payment scenarios: the sandbox gateway, charge at most once, refund exactly once."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import InvalidInput
from domain.payments import (
    ChargeResult,
    MemoryPaymentIntents,
    Payment,
    PaymentIntent,
    PaymentNotFound,
    Payments,
    SandboxGateway,
)

AMOUNT = 9800


def charge(payments: Payments, gateway: SandboxGateway, token: str, order_id=None):
    order_id = order_id or uuid4()
    return payments.charge_order(
        PaymentIntent.open(order_id, AMOUNT, "CNY", "card", token), gateway
    )


def event_names(payments: Payments, payment: Payment) -> list[str]:
    return [type(e).__name__ for e in payments.repository.event_store.get(payment.id)]


def test_sandbox_gateway_is_driven_by_the_token() -> None:
    gateway, order_id = SandboxGateway(), uuid4()
    approved = gateway.charge(order_id, AMOUNT, "CNY", "card", "tok_ok")
    assert approved.status == "approved" and approved.reference
    assert gateway.charge(order_id, AMOUNT, "CNY", "card", "tok_ok") == approved
    assert gateway.charge(order_id, AMOUNT, "CNY", "card", "tok_declined") == ChargeResult(
        "declined", reason="card_declined"
    )
    assert gateway.charge(order_id, AMOUNT, "CNY", "card", "tok_timeout").status == "pending"
    assert gateway.charge(order_id, AMOUNT, "CNY", "card", "tok_what").reason == "invalid_token"
    assert gateway.refund("ref", 10) == gateway.refund("ref", 10)


def test_approved_charge_is_captured_and_never_charged_twice() -> None:
    payments, gateway, order_id = Payments(), SandboxGateway(), uuid4()
    payment = charge(payments, gateway, "tok_ok", order_id)
    again = charge(payments, gateway, "tok_ok", order_id)
    assert (again.status, again.amount, again.reference) == ("captured", AMOUNT, payment.reference)
    assert len(gateway.charges) == 1
    assert event_names(payments, payment) == ["Opened", "Captured"]


def test_declined_charge_is_recorded_and_not_retried() -> None:
    payments, gateway, order_id = Payments(), SandboxGateway(), uuid4()
    payment = charge(payments, gateway, "tok_declined", order_id)
    assert (payment.status, payment.reason) == ("declined", "card_declined")
    charge(payments, gateway, "tok_ok", order_id)
    assert len(gateway.charges) == 1
    assert payments.cancel_payment(order_id, gateway).status == "declined"
    assert event_names(payments, payment) == ["Opened", "Declined"]


def test_timeout_stays_pending_and_cancel_voids_it() -> None:
    payments, gateway, order_id = Payments(), SandboxGateway(), uuid4()
    assert charge(payments, gateway, "tok_timeout", order_id).status == "pending"
    charge(payments, gateway, "tok_timeout", order_id)
    assert len(gateway.charges) == 1
    voided = payments.cancel_payment(order_id, gateway)
    assert voided.status == "voided" and gateway.refunds == []


def test_cancel_before_charge_voids_so_a_late_charge_is_skipped() -> None:
    payments, gateway, order_id = Payments(), SandboxGateway(), uuid4()
    cause = uuid4()
    voided = payments.cancel_payment(order_id, gateway, caused_by=cause)
    assert voided.status == "voided"
    assert charge(payments, gateway, "tok_ok", order_id).status == "voided"
    assert gateway.charges == []
    [_, void] = payments.repository.event_store.get(voided.id)
    assert (void.correlation_id, void.causation_id) == (order_id, cause)


def test_captured_payment_is_refunded_exactly_once() -> None:
    payments, gateway, order_id = Payments(), SandboxGateway(), uuid4()
    captured = charge(payments, gateway, "tok_ok", order_id)
    refunded = payments.cancel_payment(order_id, gateway)
    payments.cancel_payment(order_id, gateway)
    assert refunded.status == "refunded" and refunded.refund_reference
    assert gateway.refunds == [(captured.reference, AMOUNT)]
    assert event_names(payments, refunded) == ["Opened", "Captured", "Refunded"]
    assert charge(payments, gateway, "tok_ok", order_id).status == "refunded"
    assert len(gateway.charges) == 1


def test_amount_must_be_positive_and_unknown_payment_is_not_found() -> None:
    payments, gateway = Payments(), SandboxGateway()
    with pytest.raises(InvalidInput):
        payments.charge_order(PaymentIntent(uuid4(), uuid4(), 0, "CNY", "card", "tok_ok"), gateway)
    assert gateway.charges == []
    with pytest.raises(PaymentNotFound):
        payments.get_payment(uuid4())


def test_gateway_failure_stores_nothing_so_the_charge_can_be_retried() -> None:
    class Broken(SandboxGateway):
        def charge(self, *args: object) -> ChargeResult:
            raise ConnectionError("gateway down")

    payments, order_id = Payments(), uuid4()
    with pytest.raises(ConnectionError):
        payments.charge_order(
            PaymentIntent.open(order_id, AMOUNT, "CNY", "card", "tok_ok"), Broken()
        )
    assert payments.find_payment(order_id) is None
    assert charge(payments, SandboxGateway(), "tok_ok", order_id).status == "captured"


@pytest.mark.parametrize(
    ("amount", "method", "token"),
    [
        (0, "card", "tok_ok"),
        (True, "card", "tok_ok"),
        (AMOUNT, "cash", "tok_ok"),
        (AMOUNT, "card", " "),
    ],
)
def test_an_intent_needs_an_amount_a_method_and_a_token(amount, method, token) -> None:
    with pytest.raises(InvalidInput):
        PaymentIntent.open(uuid4(), amount, "CNY", method, token)


def test_an_intent_never_shows_its_token_and_the_first_one_per_order_stands() -> None:
    order_id, intents = uuid4(), MemoryPaymentIntents()
    first = intents.open(PaymentIntent.open(order_id, AMOUNT, "CNY", "card", "tok_ok"))
    again = intents.open(PaymentIntent.open(order_id, AMOUNT, "CNY", "alipay", "tok_declined"))
    assert again == first and intents.find(order_id) == first
    assert "tok_" not in repr(first) and "tok_" not in str(first.reference)
    assert first.reference == {"method": "card", "intent_id": str(first.intent_id)}
