"""The orders read model on the real broker: hand-made saga events published to their
topics become orders_view rows and timelines; copies change nothing; buyers see only
their own orders over HTTP.

The saga workers may run in the same session and react to the hand-made orders (a
reservation fails for their unknown products, ...): those real events carry other
aggregate ids, so assertions look at the events published here, by event id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.deps import retry_concurrent
from domain.shipping import Shipment
from eventmart.contracts import CONTRACTS, Envelope, event_id_for
from eventmart.settings import Settings
from projections.orders import get_order, stuck_sagas
from tests.support import publish, wait_until

ADDRESS = {
    "name": "Ada",
    "line1": "1 Analytical Way",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}


# Every test here reads what the orders projection wrote.
pytestmark = pytest.mark.usefixtures("orders_projection", "catalog_projection")


class Saga:
    """Builds one order's events as the producing contexts would, and publishes them."""

    def __init__(self, settings: Settings, t0: datetime | None = None) -> None:
        self.settings = settings
        self.order_id = uuid.uuid4()
        self.buyer_id = uuid.uuid4()
        # Not the ids the real contexts derive, so real events never collide with these.
        self.reservation_id = uuid.uuid4()
        self.payment_id = uuid.uuid4()
        # A minute ahead of now: later than anything a saga worker does meanwhile.
        self.t0 = t0 or datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
        self.published: set[UUID] = set()

    def event(
        self, type_: str, aggregate_id: UUID, version: int, minutes: float = 0, **payload: Any
    ) -> Envelope:
        return Envelope(
            event_id=event_id_for(aggregate_id, version),
            type=type_,
            schema_version=CONTRACTS[type_].schema_version,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            occurred_at=self.t0 + timedelta(minutes=minutes),
            correlation_id=self.order_id,
            payload={"order_id": str(self.order_id), **payload},
        )

    def order(self, type_: str, version: int, **payload: Any) -> Envelope:
        return self.event(type_, self.order_id, version, minutes=version, **payload)

    def placed(self, deadline: datetime | None = None) -> Envelope:
        return self.order(
            "order.placed",
            1,
            buyer_id=str(self.buyer_id),
            lines=[
                {
                    "product_id": str(uuid.uuid4()),
                    "quantity": 2,
                    "unit_price": 4900,
                    "list_price": 4900,
                    "discounts": [],
                    "line_total": 9800,
                }
            ],
            total=9800,
            currency="CNY",
            shipping_address=ADDRESS,
            payment={"method": "card", "intent_id": str(uuid.uuid4())},
            payment_deadline=(deadline or self.t0 + timedelta(minutes=15)).isoformat(),
            discount_total=0,
            coupon_code=None,
        )

    def publish(self, topic: str, *events: Envelope) -> None:
        self.publish_with_key(topic, None, *events)

    def publish_with_key(self, topic: str, key: bytes | None, *events: Envelope) -> None:
        """Same key, same partition: the later events are consumed after the earlier ones."""
        self.published.update(e.event_id for e in events)
        publish(
            self.settings.bootstrap_servers, topic, [(key or e.key(), e.to_bytes()) for e in events]
        )

    def mine(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        """The timeline entries of the events published here."""
        return [entry for entry in order["timeline"] if entry["event_id"] in self.published]


def row_when(db: psycopg.Connection, order_id: UUID, check: Any, message: str) -> dict[str, Any]:
    return wait_until(
        lambda: (o := get_order(db, str(order_id))) is not None and check(o) and o,
        timeout=30,
        message=message,
    )


def test_a_paid_order_is_projected_with_its_timeline(settings: Settings, db: psycopg.Connection):
    saga = Saga(settings)
    expires_at = saga.t0 + timedelta(minutes=30)
    saga.publish("orders.events", saga.placed())
    saga.publish(
        "inventory.events",
        saga.event(
            "reservation.confirmed",
            saga.reservation_id,
            2,
            minutes=1.5,
            expires_at=expires_at.isoformat(),
            lines=[{"product_id": str(uuid.uuid4()), "quantity": 2}],
        ),
    )
    saga.publish(
        "payments.events",
        saga.event(
            "payment.captured",
            saga.payment_id,
            2,
            minutes=2.5,
            amount=9800,
            currency="CNY",
            method="card",
            reference="sbx_ch_1",
        ),
    )
    reserved = saga.order("order.reserved", 2)
    saga.publish(
        "orders.events",
        reserved,
        saga.order("order.paid", 3, amount=9800),
        saga.order("order.confirmed", 4, total=9800),
    )

    order = row_when(
        db,
        saga.order_id,
        lambda o: o["status"] == "confirmed" and len(saga.mine(o)) == 6,
        "the confirmed order with six timeline entries",
    )
    assert order["buyer_id"] == saga.buyer_id
    assert order["total"] == 9800 and order["currency"] == "CNY"
    assert order["lines"] == [
        {**order["lines"][0], "quantity": 2, "unit_price": 4900, "line_total": 9800}
    ]
    assert order["reservation_expires_at"] == expires_at
    assert order["payment_deadline"] == saga.t0 + timedelta(minutes=15)
    assert order["saga_step"] == "order.confirmed"
    assert [entry["type"] for entry in saga.mine(order)] == [
        "order.placed",
        "reservation.confirmed",
        "order.reserved",
        "payment.captured",
        "order.paid",
        "order.confirmed",
    ]
    captured = saga.mine(order)[3]
    assert captured["detail"] == {"amount": 9800, "currency": "CNY", "method": "card"}
    assert "token" not in str(order["timeline"])

    # A re-published copy of an old event, then a new one behind it on the same partition.
    # The shipment id shipping derives: having seen this order placed and confirmed, the
    # live shipping-saga makes that very shipment, so the row's shipment id is one either way.
    shipment_id = str(Shipment.create_id(saga.order_id))
    saga.publish("orders.events", reserved, saga.order("order.shipped", 5, shipment_id=shipment_id))
    order = row_when(db, saga.order_id, lambda o: o["status"] == "shipped", "order.shipped")
    assert [entry["type"] for entry in saga.mine(order)].count("order.reserved") == 1
    assert len(saga.mine(order)) == 7
    assert str(order["shipment_id"]) == shipment_id


def test_a_cancelled_order_records_its_compensations_once(
    settings: Settings, db: psycopg.Connection
):
    saga = Saga(settings)
    released = saga.event(
        "reservation.released", saga.reservation_id, 3, minutes=5, reason="cancelled"
    )
    saga.publish(
        "orders.events",
        saga.placed(),
        saga.order("order.reserved", 2),
        saga.order("order.cancelled", 3, reason="payment_declined", refund_due=False),
    )
    saga.publish("inventory.events", released)
    saga.publish("payments.events", saga.event("payment.voided", saga.payment_id, 3, minutes=5))
    order = row_when(
        db,
        saga.order_id,
        lambda o: o["status"] == "cancelled" and len(saga.mine(o)) == 5,
        "the cancelled order with its compensations",
    )
    assert order["reason"] == "payment_declined"
    assert {"payment_voided", "stock_released"} <= set(order["compensations"])
    assert len(set(order["compensations"])) == len(order["compensations"])
    cancelled = next(e for e in saga.mine(order) if e["type"] == "order.cancelled")
    assert cancelled["detail"] == {"reason": "payment_declined", "refund_due": False}

    # The copy, then another order's event on the same partition to know it was consumed.
    other = Saga(settings)
    marker = other.event("reservation.released", other.reservation_id, 3, reason="expired")
    saga.publish_with_key("inventory.events", released.key(), released, marker)
    wait_until(
        lambda: db.execute(
            "SELECT 1 FROM order_timeline WHERE event_id = %s", (marker.event_id,)
        ).fetchone(),
        message="the marker event",
    )
    again = get_order(db, str(saga.order_id))
    assert again is not None
    assert {"payment_voided", "stock_released"} <= set(again["compensations"])
    assert len(set(again["compensations"])) == len(again["compensations"])
    assert saga.mine(again) == saga.mine(order)
    assert get_order(db, str(other.order_id)) is None  # no order.placed: a hidden placeholder


def test_saga_events_before_the_order_wait_in_a_hidden_row(
    settings: Settings, db: psycopg.Connection
):
    saga = Saga(settings)
    saga.publish(
        "payments.events",
        saga.event("payment.declined", saga.payment_id, 2, minutes=1.5, reason="card_declined"),
    )
    wait_until(
        lambda: db.execute(
            "SELECT status IS NULL FROM orders_view WHERE order_id = %s", (saga.order_id,)
        ).fetchone(),
        message="a placeholder row",
    )
    assert get_order(db, str(saga.order_id)) is None
    saga.publish("orders.events", saga.placed())
    order = row_when(db, saga.order_id, lambda o: o["status"] == "pending", "order.placed")
    assert [e["type"] for e in saga.mine(order)] == ["order.placed", "payment.declined"]
    assert order["saga_step"] == "payment.declined"


# ---- over HTTP -----------------------------------------------------------------------


def account(api: TestClient, role: str) -> tuple[dict[str, str], str]:
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    created = api.post(
        "/v1/users",
        json={
            "email": email,
            "password": "correct horse",
            "display_name": role.title(),
            "role": role,
        },
    )
    assert created.status_code == 201, created.text
    token = api.post("/v1/auth/token", json={"email": email, "password": "correct horse"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}, created.json()["user_id"]


def admin(api: TestClient) -> dict[str, str]:
    services = api.app.state.services  # type: ignore[attr-defined]
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    services.applications.users.register_user(
        email, services.hasher.hash("correct horse"), "Admin", "admin"
    )
    token = api.post("/v1/auth/token", json={"email": email, "password": "correct horse"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def order_body(product_id: str, quantity: int = 2) -> dict[str, Any]:
    return {
        "lines": [{"product_id": product_id, "quantity": quantity}],
        "shipping_address": ADDRESS,
        "payment": {"method": "card", "token": "tok_ok"},
    }


def test_buyers_see_only_their_own_orders(api: TestClient):
    seller, _ = account(api, "seller")
    product = api.post(
        "/v1/products",
        headers=seller,
        json={
            "sku": f"SKU-{uuid.uuid4().hex[:10]}",
            "name": "Mug",
            "description": "",
            "category": "kitchen",
            "price": {"amount": 4900, "currency": "CNY"},
        },
    ).json()["product_id"]
    alice, _ = account(api, "customer")
    bob, _ = account(api, "customer")

    assert api.post("/v1/orders", json=order_body(product), headers=seller).status_code == 403
    unknown = api.post("/v1/orders", json=order_body(str(uuid.uuid4())), headers=alice)
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_product"
    assert (
        api.post(
            "/v1/orders", json={**order_body(product), "coupon": "X"}, headers=alice
        ).status_code
        == 422
    )

    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    placed = api.post("/v1/orders", json=order_body(product), headers={**alice, **key})
    assert placed.status_code == 202, placed.text
    assert placed.json()["status"] == "pending"
    order_id = placed.json()["order_id"]
    replay = api.post("/v1/orders", json=order_body(product), headers={**alice, **key})
    assert replay.status_code == 202 and replay.json() == placed.json()
    reused = api.post("/v1/orders", json=order_body(product, 3), headers={**alice, **key})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"

    seen = wait_until(
        lambda: (r := api.get(f"/v1/orders/{order_id}", headers=alice)).status_code == 200 and r,
        timeout=30,
        message="the order in the read model",
    ).json()
    # Saga workers, if running, may already have rejected it (there is no stock).
    assert seen["status"] in ("pending", "rejected")
    assert seen["total"] == {"amount": 9800, "currency": "CNY"}
    assert seen["lines"][0] == {
        "product_id": product,
        "quantity": 2,
        "unit_price": {"amount": 4900, "currency": "CNY"},
        "line_total": {"amount": 9800, "currency": "CNY"},
        "list_price": {"amount": 4900, "currency": "CNY"},
        "discounts": [],
    }
    assert seen["timeline"][0]["type"] == "order.placed"
    assert api.get(f"/v1/orders/{order_id}", headers=bob).status_code == 404
    assert api.get(f"/v1/orders/{uuid.uuid4()}", headers=alice).status_code == 404
    assert api.get(f"/v1/orders/{order_id}", headers=admin(api)).status_code == 200
    mine = api.get("/v1/orders", headers=alice).json()
    assert [o["order_id"] for o in mine["items"]] == [order_id] and mine["next_cursor"] is None
    assert (
        api.get("/v1/orders", headers=alice, params={"status": "completed"}).json()["items"] == []
    )
    assert api.get("/v1/orders", headers=bob).json()["items"] == []

    assert api.post(f"/v1/orders/{order_id}/cancel", headers=bob).status_code == 404
    early = api.post(f"/v1/orders/{order_id}/confirm-receipt", headers=alice)
    assert early.status_code == 409 and early.json()["error"]["code"] == "order_not_delivered"
    cancelled = api.post(f"/v1/orders/{order_id}/cancel", headers=alice)
    assert cancelled.status_code == 202
    stored = cancelled.json()["status"]
    assert stored in ("cancelled", "rejected")  # a rejection that came first stands
    shown = wait_until(
        lambda: (
            (r := api.get(f"/v1/orders/{order_id}", headers=alice)).json()["status"] == stored
            and r.json()
        ),
        message="the final status in the read model",
    )
    assert shown["reason"] in ("cancelled_by_buyer", "insufficient_stock")


def test_list_pages_with_a_cursor(api: TestClient):
    seller, _ = account(api, "seller")
    product = api.post(
        "/v1/products",
        headers=seller,
        json={
            "sku": f"SKU-{uuid.uuid4().hex[:10]}",
            "name": "Cup",
            "description": "",
            "category": "kitchen",
            "price": {"amount": 700, "currency": "CNY"},
        },
    ).json()["product_id"]
    buyer, _ = account(api, "customer")
    placed = [
        api.post("/v1/orders", json=order_body(product, n), headers=buyer).json()["order_id"]
        for n in (1, 2, 3)
    ]
    wait_until(
        lambda: len(api.get("/v1/orders", headers=buyer).json()["items"]) == 3,
        message="three orders in the read model",
    )
    first = api.get("/v1/orders", headers=buyer, params={"limit": 2}).json()
    second = api.get(
        "/v1/orders", headers=buyer, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [o["order_id"] for o in first["items"] + second["items"]] == placed[::-1]
    assert second["next_cursor"] is None


def test_a_shipped_order_cannot_be_cancelled(api: TestClient):
    seller, _ = account(api, "seller")
    product = api.post(
        "/v1/products",
        headers=seller,
        json={
            "sku": f"SKU-{uuid.uuid4().hex[:10]}",
            "name": "Mug",
            "description": "",
            "category": "kitchen",
            "price": {"amount": 1500, "currency": "CNY"},
        },
    ).json()["product_id"]
    assert (
        api.post(f"/v1/products/{product}/stock", json={"quantity": 5}, headers=seller).status_code
        == 200
    )
    buyer, _ = account(api, "customer")
    body = {**order_body(product, 1), "payment": {"method": "card", "token": "tok_timeout"}}
    order_id = UUID(api.post("/v1/orders", json=body, headers=buyer).json()["order_id"])
    # Drive the order to shipped directly; saga workers, if running, may do steps first.
    orders = api.app.state.services.applications.orders  # type: ignore[attr-defined]
    retry_concurrent(lambda: orders.mark_paid_and_confirm(order_id, 1500), attempts=10)
    retry_concurrent(lambda: orders.mark_shipped(order_id, uuid.uuid4()), attempts=10)
    refused = api.post(f"/v1/orders/{order_id}/cancel", headers=buyer)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "order_not_cancellable"


def test_admins_see_stuck_sagas(api: TestClient, db: psycopg.Connection):
    """The endpoint over the read model. (The projection's part is tested above; an order
    published by hand would race the live saga, whose reservation.failed counts as progress.)
    The row is paid an hour ago with nothing since: no saga timer acts on paid orders."""
    order_ids, an_hour_ago = (
        [uuid.uuid4() for _ in range(3)],
        datetime.now(UTC) - timedelta(hours=1),
    )
    order_id = order_ids[0]
    for stuck in order_ids:
        db.execute(
            "INSERT INTO orders_view (order_id, buyer_id, status, total, currency, created_at, updated_at, "
            "payment_deadline, saga_step) VALUES (%s, %s, 'paid', 9800, 'CNY', %s, %s, %s, 'order.paid')",
            (stuck, uuid.uuid4(), an_hour_ago, an_hour_ago, an_hour_ago + timedelta(minutes=15)),
        )
    # A row whose order.placed is not projected (no buyer, no creation time) is not an order
    # yet: not listed, and not a 500 for the whole page.
    unplaced = uuid.uuid4()
    db.execute(
        "INSERT INTO orders_view (order_id, status, updated_at) VALUES (%s, 'paid', %s)",
        (unplaced, an_hour_ago),
    )
    order_ids.append(unplaced)
    try:
        admin_headers = admin(api)
        answer = api.get("/v1/ops/sagas", params={"state": "stuck"}, headers=admin_headers)
        assert answer.status_code == 200, answer.text
        found = [o for o in answer.json()["items"] if o["order_id"] == str(order_id)]
        assert len(found) == 1
        assert str(unplaced) not in {o["order_id"] for o in answer.json()["items"]}
        assert found[0]["stuck_because"] == "no_progress" and found[0]["status"] == "paid"
        # A list like every other (API.md): limit and cursor, each stuck order on one page.
        walked, params = [], {"limit": 2}
        while True:
            page = api.get("/v1/ops/sagas", params=params, headers=admin_headers).json()
            assert len(page["items"]) <= 2
            walked += [o["order_id"] for o in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": 2, "cursor": page["next_cursor"]}
        assert len(walked) == len(set(walked)) and {str(i) for i in order_ids[:3]} <= set(walked)
        tampered = api.get("/v1/ops/sagas", params={"cursor": "x.y"}, headers=admin_headers)
        assert tampered.status_code == 422
        customer, _ = account(api, "customer")
        assert api.get("/v1/ops/sagas", headers=customer).status_code == 403
        assert (
            api.get("/v1/ops/sagas", headers=admin_headers, params={"state": "any"}).status_code
            == 422
        )
    finally:  # not in the event log: a rebuild compared with live must not meet it
        db.execute("DELETE FROM orders_view WHERE order_id = ANY(%s)", (order_ids,))


def test_stuck_sagas_names_each_missed_deadline(db: psycopg.Connection):
    """Rows written and queried in one rolled-back transaction, so no timer ever sees them."""
    now = datetime.now(UTC)
    rows = {
        "payment_deadline_passed": ("reserved", now - timedelta(minutes=1), None, now),
        "auto_completion_overdue": ("delivered", None, now - timedelta(days=8), now),
        "no_progress": ("confirmed", None, None, now - timedelta(minutes=11)),
        None: ("shipped", None, None, now - timedelta(minutes=1)),
    }
    ids = {because: uuid.uuid4() for because in rows}
    with db.transaction(force_rollback=True):
        for because, (status, deadline, delivered_at, updated_at) in rows.items():
            db.execute(
                "INSERT INTO orders_view (order_id, buyer_id, status, total, currency, created_at, "
                "updated_at, payment_deadline, delivered_at) VALUES (%s, %s, %s, 100, 'CNY', %s, %s, %s, %s)",
                (
                    ids[because],
                    uuid.uuid4(),
                    status,
                    updated_at,
                    updated_at,
                    deadline,
                    delivered_at,
                ),
            )
        found = {o["order_id"]: o["stuck_because"] for o in stuck_sagas(db, now, limit=100_000)}
    for because, order_id in ids.items():
        assert found.get(order_id) == because
