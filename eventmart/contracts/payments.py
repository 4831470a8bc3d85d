"""Public events of the payments context, on `payments.events` (key: payment id,
derived from the order id; every payload carries the order id)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from domain.payments import Payment
from eventmart.contracts.bounds import CurrencyCode, MoneyTotal, Reason, Reference
from eventmart.contracts.envelope import EventContract, Payload, event_id_for, register

TOPIC = "payments.events"
ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
PAYMENT_ID = str(Payment.create_id(UUID(ORDER_ID)))
CAUSE_EVENT_ID = "6c7d8e9f-0a1b-5c2d-9e3f-4a5b6c7d8e9f"


def _example(type_: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(event_id_for(UUID(PAYMENT_ID), version)),
        "type": type_,
        "schema_version": 1,
        "aggregate_id": PAYMENT_ID,
        "aggregate_version": version,
        "occurred_at": "2026-11-25T10:31:00+00:00",
        "correlation_id": ORDER_ID,
        "causation_id": CAUSE_EVENT_ID,
        "payload": {"order_id": ORDER_ID, **payload},
    }


class PaymentCaptured(Payload):
    order_id: UUID
    amount: MoneyTotal
    currency: CurrencyCode
    method: Literal["card", "alipay", "wechat"]
    reference: Reference


class PaymentDeclined(Payload):
    order_id: UUID
    reason: Reason


class PaymentPending(Payload):
    order_id: UUID


class PaymentRefunded(Payload):
    order_id: UUID
    amount: MoneyTotal
    reference: Reference


class PaymentVoided(Payload):
    order_id: UUID


register(
    EventContract(
        type="payment.captured",
        topic=TOPIC,
        schema_version=1,
        payload=PaymentCaptured,
        domain_event=Payment.Captured,
        to_payload=lambda e: {
            "order_id": e.order_id,
            "amount": e.amount,
            "currency": e.currency,
            "method": e.method,
            "reference": e.reference,
        },
        example=_example(
            "payment.captured",
            2,
            {
                "amount": 9800,
                "currency": "CNY",
                "method": "card",
                "reference": "sbx_ch_0123456789abcdef01234567",
            },
        ),
    )
)

register(
    EventContract(
        type="payment.declined",
        topic=TOPIC,
        schema_version=1,
        payload=PaymentDeclined,
        domain_event=Payment.Declined,
        to_payload=lambda e: {"order_id": e.order_id, "reason": e.reason},
        example=_example("payment.declined", 2, {"reason": "card_declined"}),
    )
)

register(
    EventContract(
        type="payment.pending",
        topic=TOPIC,
        schema_version=1,
        payload=PaymentPending,
        domain_event=Payment.Pending,
        to_payload=lambda e: {"order_id": e.order_id},
        example=_example("payment.pending", 2, {}),
    )
)

register(
    EventContract(
        type="payment.refunded",
        topic=TOPIC,
        schema_version=1,
        payload=PaymentRefunded,
        domain_event=Payment.Refunded,
        to_payload=lambda e: {"order_id": e.order_id, "amount": e.amount, "reference": e.reference},
        example=_example(
            "payment.refunded",
            3,
            {
                "amount": 9800,
                "reference": "sbx_re_89abcdef0123456789abcdef",
            },
        ),
    )
)

register(
    EventContract(
        type="payment.voided",
        topic=TOPIC,
        schema_version=1,
        payload=PaymentVoided,
        domain_event=Payment.Voided,
        to_payload=lambda e: {"order_id": e.order_id},
        example=_example("payment.voided", 3, {}),
    )
)
