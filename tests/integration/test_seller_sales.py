"""Seller sales over HTTP, on the real saga: a seller sees the confirmed orders of their
own products only, a sale cancelled after payment is reversed at the time of the
cancellation, `from`/`to` pick sales and refunds by their own moments, lines page with a
cursor, and only sellers may ask."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.deps import retry_concurrent
from eventmart.contracts import CONTRACTS, Envelope, event_id_for
from eventmart.settings import Settings
from eventmart.wiring import SAGA_PARTICIPANTS
from projections import sales as sales_model
from projections.sales import sales_summary
from projections.tracking import Delivery, apply_deliveries
from tests.shop import ADDRESS, TERMINAL, Customer, Seller
from tests.support import wait_for_groups_to_join, wait_until

SOLD = ("confirmed", "shipped", "delivered", "completed")


@pytest.fixture(scope="module")
def shop(
    api: TestClient,
    settings: Settings,
    saga_workers: object,
    catalog_projection: object,
    orders_projection: object,
    sales_projection: object,
) -> TestClient:
    """The saga and the projections running, each group joined (else the first orders may
    outlive their payment deadline while the workers start)."""
    wait_for_groups_to_join(
        settings.bootstrap_servers,
        [*SAGA_PARTICIPANTS, "catalog-projection", "orders-projection", "sales-projection"],
    )
    return api


def sales(seller: Seller, **params: Any) -> dict[str, Any]:
    answer = seller.get("/v1/sellers/me/sales", **params)
    assert answer.status_code == 200, answer.text
    summary: dict[str, Any] = answer.json()
    return summary


def money(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "CNY"}


def figures(
    orders: int,
    units: int,
    gross: int,
    refunded_orders: int = 0,
    refunded_units: int = 0,
    refunds: int = 0,
) -> dict[str, Any]:
    return {
        "orders": orders,
        "units": units,
        "gross": money(gross),
        "gross_before_discounts": money(gross),  # nothing discounted here
        "discounts": money(0),
        "refunded_orders": refunded_orders,
        "refunded_units": refunded_units,
        "refunds": money(refunds),
        "net": money(gross - refunds),
    }


@pytest.fixture(scope="module")
def trade(shop: TestClient) -> dict[str, Any]:
    """Two sellers; orders confirmed, declined, and confirmed then cancelled, with the
    moments between them that the range tests cut at."""
    seller, other = Seller(shop), Seller(shop)
    mug, plate = (
        seller.product(price=1250, stock=20),
        seller.product(price=800, stock=20, name="Plate"),
    )
    cup = other.product(price=500, stock=20, name="Cup")
    alice, bob = Customer(shop), Customer(shop)

    first = alice.place([(mug, 2), (cup, 1)])  # both sellers on one order
    declined = bob.place([(plate, 3)], token="tok_declined")
    alice.wait_for(first, *SOLD)
    assert bob.wait_for(declined, *TERMINAL)["status"] == "cancelled"
    after_first = datetime.now(UTC)

    second = alice.place([(mug, 1)])
    alice.wait_for(second, *SOLD)
    # Paid, then cancelled by the buyer: the capture is driven here (the payment token never
    # answers) so that the cancellation surely comes before the carrier picks the parcel up.
    reversed_ = bob.place([(mug, 4), (plate, 1)], token="tok_timeout")
    bob.wait_for(reversed_, "reserved")
    orders = shop.app.state.services.applications.orders  # type: ignore[attr-defined]
    retry_concurrent(
        lambda: orders.mark_paid_and_confirm(UUID(reversed_), 4 * 1250 + 800), attempts=10
    )
    before_cancel = datetime.now(UTC)
    cancelled = bob.post(f"/v1/orders/{reversed_}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled", (
        cancelled.text
    )
    return {
        "seller": seller,
        "other": other,
        "mug": mug,
        "plate": plate,
        "cup": cup,
        "first": first,
        "second": second,
        "reversed": reversed_,
        "after_first": after_first,
        "before_cancel": before_cancel,
    }


def settled(seller: Seller, orders: int, refunded_orders: int) -> dict[str, Any]:
    return wait_until(
        lambda: (
            (s := sales(seller))["totals"]["orders"] == orders
            and s["totals"]["refunded_orders"] == refunded_orders
            and s
        ),
        timeout=60,
        interval=0.2,
        message="the sales read model to settle",
    )


def test_a_seller_sees_confirmed_sales_of_their_own_products_and_reversals(
    trade: dict[str, Any],
) -> None:
    seller, other = trade["seller"], trade["other"]
    summary = settled(seller, orders=3, refunded_orders=1)
    assert summary["seller_id"] == seller.user_id and summary["currency"] == "CNY"
    assert summary["from"] is None and summary["to"] is None
    # Sold: 2 + 1 + 4 mugs and 1 plate; the last order (4 mugs, 1 plate) reversed.
    assert summary["totals"] == figures(
        3,
        8,
        2 * 1250 + 1250 + 4 * 1250 + 800,
        refunded_orders=1,
        refunded_units=5,
        refunds=4 * 1250 + 800,
    )
    by_product = {p["product_id"]: p for p in summary["products"]}
    assert set(by_product) == {trade["mug"], trade["plate"]}  # not the other seller's cup
    assert by_product[trade["mug"]] == {
        "product_id": trade["mug"],
        "name": "Enamel mug",
        **figures(3, 7, 7 * 1250, 1, 4, 4 * 1250),
    }
    assert by_product[trade["plate"]] == {
        "product_id": trade["plate"],
        "name": "Plate",
        **figures(1, 1, 800, 1, 1, 800),
    }
    assert [p["product_id"] for p in summary["products"]] == [trade["mug"], trade["plate"]]

    theirs = settled(other, orders=1, refunded_orders=0)
    assert theirs["totals"] == figures(1, 1, 500)
    assert [p["product_id"] for p in theirs["products"]] == [trade["cup"]]


def test_from_and_to_count_sales_and_refunds_when_they_happened(trade: dict[str, Any]) -> None:
    seller = trade["seller"]
    settled(seller, orders=3, refunded_orders=1)
    after_first, before_cancel = (
        trade["after_first"].isoformat(),
        trade["before_cancel"].isoformat(),
    )
    assert sales(seller, to=after_first)["totals"] == figures(1, 2, 2500)
    later = sales(seller, **{"from": after_first})
    assert later["totals"] == figures(2, 6, 1250 + 5800, 1, 5, 5800)
    assert later["from"] is not None and later["to"] is None
    assert sales(seller, **{"from": after_first, "to": before_cancel})["totals"] == figures(
        2, 6, 7050
    )
    # The cancellation's own moment: no sale, only the refund, so the net is negative.
    assert sales(seller, **{"from": before_cancel})["totals"] == figures(0, 0, 0, 1, 5, 5800)
    # A zone-less time is UTC.
    naive = trade["after_first"].replace(tzinfo=None).isoformat()
    assert sales(seller, to=naive)["totals"] == figures(1, 2, 2500)
    backwards = seller.get("/v1/sellers/me/sales", **{"from": before_cancel, "to": after_first})
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "invalid_range"


def test_sale_lines_page_newest_first_with_their_refunds(trade: dict[str, Any]) -> None:
    seller = trade["seller"]
    settled(seller, orders=3, refunded_orders=1)
    first = seller.get("/v1/sellers/me/sales/lines", limit=3).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = seller.get("/v1/sellers/me/sales/lines", limit=3, cursor=first["next_cursor"]).json()
    assert second["next_cursor"] is None
    lines = first["items"] + second["items"]
    assert [(line["order_id"], line["product_id"]) for line in lines] == [
        *sorted(
            [(trade["reversed"], trade["mug"]), (trade["reversed"], trade["plate"])], reverse=True
        ),
        (trade["second"], trade["mug"]),
        (trade["first"], trade["mug"]),
    ]
    assert [line["status"] for line in lines] == ["refunded", "refunded", "sold", "sold"]
    assert all(line["refunded_at"] for line in lines[:2]) and lines[2]["refunded_at"] is None
    mugs = next(line for line in lines if line["order_id"] == trade["first"])
    assert mugs["quantity"] == 2 and mugs["name"] == "Enamel mug"
    assert mugs["unit_price"] == money(1250) and mugs["line_total"] == money(2500)
    sold_at = [datetime.fromisoformat(line["sold_at"]) for line in lines]
    assert sold_at == sorted(sold_at, reverse=True)

    since = seller.get(
        "/v1/sellers/me/sales/lines", **{"from": trade["after_first"].isoformat()}
    ).json()
    assert {line["order_id"] for line in since["items"]} == {trade["second"], trade["reversed"]}
    other = trade["other"].get("/v1/sellers/me/sales/lines").json()["items"]
    assert [(line["order_id"], line["product_id"]) for line in other] == [
        (trade["first"], trade["cup"])
    ]
    bad = seller.get("/v1/sellers/me/sales/lines", cursor="not-a-cursor")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"


def test_only_sellers_may_ask(shop: TestClient) -> None:
    customer = Customer(shop)
    for path in ("/v1/sellers/me/sales", "/v1/sellers/me/sales/lines"):
        refused = customer.get(path)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert shop.get(path).status_code == 401
    fresh = Seller(shop)
    assert sales(fresh)["totals"] == figures(0, 0, 0) and sales(fresh)["products"] == []


def test_order_events_before_the_product_event_still_count(db: psycopg.Connection[Any]) -> None:
    """The seller of a product is learnt from catalog.events, which may be consumed after
    the order's events (or by another replica at the same moment): the sale shows up once
    both are in, and copies change nothing. Applied in a rolled-back transaction, so no
    saga worker ever sees these hand-made events."""
    seller_id, product_id, order_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = datetime.now(UTC)

    def delivery(
        topic: str, type_: str, aggregate_id: UUID, version: int, **payload: Any
    ) -> Delivery:
        return Delivery(
            topic,
            0,
            version,
            Envelope(
                event_id=event_id_for(aggregate_id, version),
                type=type_,
                schema_version=CONTRACTS[type_].schema_version,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                occurred_at=at,
                correlation_id=aggregate_id,
                payload=payload,
            ),
        )

    placed = delivery(
        "orders.events",
        "order.placed",
        order_id,
        1,
        order_id=str(order_id),
        buyer_id=str(uuid.uuid4()),
        currency="CNY",
        total=2100,
        lines=[{"product_id": str(product_id), "quantity": 3, "unit_price": 700}],
        shipping_address=ADDRESS,
        payment={"method": "card", "intent_id": str(uuid.uuid4())},
        payment_deadline=at.isoformat(),
    )
    confirmed = delivery(
        "orders.events", "order.confirmed", order_id, 2, order_id=str(order_id), total=2100
    )
    created = delivery(
        "catalog.events",
        "product.created",
        product_id,
        1,
        product_id=str(product_id),
        seller_id=str(seller_id),
        sku="SKU-TEAPOT",
        name="Teapot",
        description="",
        category="kitchen",
        price_amount=700,
        currency="CNY",
    )
    renamed = delivery(
        "catalog.events",
        "product.updated",
        product_id,
        2,
        product_id=str(product_id),
        changes={"name": "Blue teapot"},
    )
    with db.transaction(force_rollback=True):
        apply_deliveries(db, sales_model.GROUP, sales_model.HANDLERS, [placed, confirmed])
        assert sales_summary(db, str(seller_id))["totals"]["orders"] == 0
        # Then the product, its rename, and copies of the order's events.
        apply_deliveries(
            db, sales_model.GROUP, sales_model.HANDLERS, [created, renamed, placed, confirmed]
        )
        summary = sales_summary(db, str(seller_id))
        assert summary["totals"] == {
            "orders": 1,
            "units": 3,
            "gross": 2100,
            "gross_before_discounts": 2100,  # a line stored without pricing: undiscounted
            "discounts": 0,
            "refunded_orders": 0,
            "refunded_units": 0,
            "refunds": 0,
            "net": 2100,
        }
        assert [product["name"] for product in summary["products"]] == ["Blue teapot"]
