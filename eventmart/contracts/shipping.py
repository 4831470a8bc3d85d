"""Public events of the shipping context, on `shipping.events` (key: shipment id,
derived from the order id; every payload carries both ids)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain.shipping import Shipment
from eventmart.contracts.envelope import EventContract, Payload, event_id_for, register
from eventmart.contracts.orders import ShippingAddress
from eventmart.contracts.sealed import same_payload

TOPIC = "shipping.events"
ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
SHIPMENT_ID = str(Shipment.create_id(UUID(ORDER_ID)))
CAUSE_EVENT_ID = "7d8e9f0a-1b2c-5d3e-8f4a-5b6c7d8e9f0a"


def _example(type_: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(event_id_for(UUID(SHIPMENT_ID), version)),
        "type": type_,
        "schema_version": 1,
        "aggregate_id": SHIPMENT_ID,
        "aggregate_version": version,
        "occurred_at": "2026-11-25T11:00:00+00:00",
        "correlation_id": ORDER_ID,
        "causation_id": CAUSE_EVENT_ID,
        "payload": {"order_id": ORDER_ID, "shipment_id": SHIPMENT_ID, **payload},
    }


class ShipmentCreated(Payload):
    order_id: UUID
    shipment_id: UUID
    address: ShippingAddress
    created_at: datetime


class ShipmentTracked(Payload):
    """Every tracking step says only which shipment of which order moved."""

    order_id: UUID
    shipment_id: UUID


register(
    EventContract(
        type="shipment.created",
        topic=TOPIC,
        schema_version=2,
        upcasters={1: same_payload},
        payload=ShipmentCreated,
        domain_event=Shipment.Created,
        personal=("address",),
        to_payload=lambda e: {
            "order_id": e.order_id,
            "shipment_id": e.originator_id,
            "address": e.address,
            "created_at": e.created_at,
        },
        example=_example(
            "shipment.created",
            1,
            {
                "address": {
                    "name": "Ada",
                    "line1": "1 Analytical Way",
                    "city": "Shanghai",
                    "postal_code": "200000",
                    "country": "CN",
                },
                "created_at": "2026-11-25T11:00:00+00:00",
            },
        ),
    )
)

for _version, (_type, _event) in enumerate(
    [
        ("shipment.picked_up", Shipment.PickedUp),
        ("shipment.in_transit", Shipment.InTransit),
        ("shipment.out_for_delivery", Shipment.OutForDelivery),
        ("shipment.delivered", Shipment.Delivered),
    ],
    start=2,
):
    register(
        EventContract(
            type=_type,
            topic=TOPIC,
            schema_version=1,
            payload=ShipmentTracked,
            domain_event=_event,
            to_payload=lambda e: {"order_id": e.order_id, "shipment_id": e.originator_id},
            example=_example(_type, _version, {}),
        )
    )
