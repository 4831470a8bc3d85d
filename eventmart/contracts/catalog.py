"""Public events of the catalogue context, on `catalog.events` (key: product id)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from domain.catalog import Product
from eventmart.contracts.bounds import (
    Category,
    CurrencyCode,
    Description,
    MoneyAmount,
    ProductName,
    Sku,
)
from eventmart.contracts.envelope import EventContract, Payload, register

TOPIC = "catalog.events"
PRODUCT_ID = "3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b"
SELLER_ID = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"


class ProductCreated(Payload):
    product_id: UUID
    seller_id: UUID
    sku: Sku
    name: ProductName
    description: Description
    category: Category
    price_amount: MoneyAmount
    currency: CurrencyCode


class ProductUpdated(Payload):
    product_id: UUID
    # Each value within its field's bounds; a description is the longest of them.
    changes: dict[Literal["name", "description", "category"], Description]


class ProductPriceChanged(Payload):
    product_id: UUID
    old_amount: MoneyAmount
    new_amount: MoneyAmount


register(
    EventContract(
        type="product.created",
        topic=TOPIC,
        schema_version=1,
        payload=ProductCreated,
        domain_event=Product.Created,
        to_payload=lambda e: {
            "product_id": e.originator_id,
            "seller_id": e.seller_id,
            "sku": e.sku,
            "name": e.name,
            "description": e.description,
            "category": e.category,
            "price_amount": e.price_amount,
            "currency": e.currency,
        },
        example={
            "event_id": "a1c3e5f7-1b2d-5e4f-8a6b-0c1d2e3f4a51",
            "type": "product.created",
            "schema_version": 1,
            "aggregate_id": PRODUCT_ID,
            "aggregate_version": 1,
            "occurred_at": "2026-11-25T10:00:00+00:00",
            "correlation_id": "a1c3e5f7-1b2d-5e4f-8a6b-0c1d2e3f4a51",
            "causation_id": None,
            "payload": {
                "product_id": PRODUCT_ID,
                "seller_id": SELLER_ID,
                "sku": "MUG-001",
                "name": "Blue mug",
                "description": "Stoneware, 350 ml",
                "category": "kitchen",
                "price_amount": 4900,
                "currency": "CNY",
            },
        },
    )
)

register(
    EventContract(
        type="product.updated",
        topic=TOPIC,
        schema_version=1,
        payload=ProductUpdated,
        domain_event=Product.Updated,
        to_payload=lambda e: {"product_id": e.originator_id, "changes": e.changes},
        example={
            "event_id": "a1c3e5f7-1b2d-5e4f-8a6b-0c1d2e3f4a52",
            "type": "product.updated",
            "schema_version": 1,
            "aggregate_id": PRODUCT_ID,
            "aggregate_version": 2,
            "occurred_at": "2026-11-25T10:05:00+00:00",
            "correlation_id": "a1c3e5f7-1b2d-5e4f-8a6b-0c1d2e3f4a52",
            "causation_id": None,
            "payload": {"product_id": PRODUCT_ID, "changes": {"name": "Big blue mug"}},
        },
    )
)

register(
    EventContract(
        type="product.price_changed",
        topic=TOPIC,
        schema_version=1,
        payload=ProductPriceChanged,
        domain_event=Product.PriceChanged,
        to_payload=lambda e: {
            "product_id": e.originator_id,
            "old_amount": e.old_amount,
            "new_amount": e.new_amount,
        },
        example={
            "event_id": "a1c3e5f7-1b2d-5e4f-8a6b-0c1d2e3f4a53",
            "type": "product.price_changed",
            "schema_version": 1,
            "aggregate_id": PRODUCT_ID,
            "aggregate_version": 3,
            "occurred_at": "2026-11-25T10:10:00+00:00",
            "correlation_id": "a1c3e5f7-1b2d-5e4f-8a6b-0c1d2e3f4a53",
            "causation_id": None,
            "payload": {"product_id": PRODUCT_ID, "old_amount": 4900, "new_amount": 3900},
        },
    )
)
