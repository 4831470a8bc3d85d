"""One trace per order (docs/tracing.md): a client's traceparent continues through every
event the order causes, in every context; the spans reach a real OTLP receiver; the
trace is rebuilt from the log by GET /v1/ops/orders/{id}/trace; a poison's span says parked;
and the buyer's event stream (GET /v1/orders/{id}/events) resumes without duplicate or gap."""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from tests.otlp import OtlpReceiver
from tests.shop import Customer, Seller
from tests.support import publish, read_envelopes, wait_until

SAGA_TOPICS = ["orders.events", "inventory.events", "payments.events", "shipping.events"]
SAGA_GROUPS = {"inventory-saga", "payments-saga", "orders-saga", "shipping-saga"}


@pytest.fixture(scope="module")
def shop(api: TestClient, saga_workers, orders_projection) -> TestClient:
    return api


@pytest.fixture(scope="module")
def admin(shop: TestClient) -> dict[str, str]:
    services = shop.app.state.services
    email, password = f"admin-{uuid.uuid4().hex[:12]}@example.com", "operator password"
    services.applications.users.register_user(
        email, services.hasher.hash(password), "Admin", "admin"
    )

    def login() -> Any:
        answer = shop.post("/v1/auth/token", json={"email": email, "password": password})
        return answer.status_code == 200 and answer.json()["access_token"]

    token = wait_until(login, timeout=30, message="the admin to be able to log in")
    return {"Authorization": f"Bearer {token}"}


def client_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}"
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def order_envelopes(settings: Settings, order_id: str) -> list[Any]:
    return [
        envelope
        for topic in SAGA_TOPICS
        for envelope in read_envelopes(settings.bootstrap_servers, topic)
        if envelope.payload.get("order_id") == order_id
    ]


def test_an_order_is_one_trace_from_the_client_through_every_group(
    shop: TestClient, admin: dict[str, str], settings: Settings, otlp: OtlpReceiver
) -> None:
    product = Seller(shop).product(stock=3)
    customer = Customer(shop)
    traceparent, trace_id, client_span = client_traceparent()
    placed = customer.post(
        "/v1/orders", customer.order_body([(product, 1)]), traceparent=traceparent
    )
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]
    customer.wait_for(order_id, "completed", timeout=90)

    # In the log: every event the order caused, in every context, carries the client's trace.
    envelopes = order_envelopes(settings, order_id)
    types = {envelope.type for envelope in envelopes}
    assert {"order.placed", "reservation.confirmed", "payment.captured"} <= types
    assert {"order.confirmed", "shipment.created", "order.completed"} <= types
    assert all(e.traceparent and e.traceparent.split("-")[1] == trace_id for e in envelopes), [
        (e.type, e.traceparent) for e in envelopes
    ]

    # Rebuilt from the log, without asking any trace backend.
    answer = shop.get(f"/v1/ops/orders/{order_id}/trace", headers=admin)
    assert answer.status_code == 200, answer.text
    rebuilt = answer.json()
    assert rebuilt["trace_id"] == trace_id
    spans = rebuilt["spans"]
    ids = {span["span_id"] for span in spans}
    assert len(ids) == len(spans)
    roots = [s for s in spans if s["parent_span_id"] not in ids]
    assert [(s["parent_span_id"], s["service"]) for s in roots] == [(None, "api")], roots
    assert roots[0]["name"] == "POST /v1/orders"
    services = {span["service"] for span in spans}
    assert {"api", "relay", "orders-projection"} | SAGA_GROUPS <= services, services
    assert all(s["started_at"] <= s["ended_at"] for s in spans)

    # Exported over OTLP by the API, the relay and every group, all of one trace.
    def exported() -> Any:
        received = otlp.spans(trace_id)
        names = {span.service for span in received}
        wanted = {"eventmart-api", "eventmart-relay", "eventmart-orders-projection"} | {
            f"eventmart-{group}" for group in SAGA_GROUPS
        }
        span_ids = {span.span_id for span in received}
        missing = {s.parent_span_id for s in received} - span_ids - {None, client_span}
        return wanted <= names and not missing and received

    received = wait_until(exported, timeout=60, interval=0.5, message="every span over OTLP")
    api_spans = [s for s in received if s.service == "eventmart-api"]
    assert any(s.name == "POST /v1/orders" and s.parent_span_id == client_span for s in api_spans)
    publishes = [s for s in received if s.name.endswith(" publish")]
    assert publishes and all(s.kind == 4 for s in publishes)  # PRODUCER
    assert all(s.attributes["messaging.system"] == "kafka" for s in publishes)
    processed = [s for s in received if s.name.endswith(" process")]
    assert processed and all(s.kind == 5 for s in processed)  # CONSUMER
    groups = {s.attributes["messaging.consumer.group.name"] for s in processed}
    assert SAGA_GROUPS | {"orders-projection"} <= groups
    outcomes = {s.attributes["eventmart.outcome"] for s in processed}
    assert "applied" in outcomes and outcomes <= {"applied", "duplicate", "ignored", "retried"}
    assert all(
        {"messaging.destination.name", "messaging.kafka.offset"} <= s.attributes.keys()
        for s in processed
    )


def test_a_poison_message_is_traced_as_parked(settings: Settings, shop, otlp) -> None:
    traceparent, trace_id, span_id = client_traceparent()
    key = f"poison-{uuid.uuid4().hex}".encode()
    publish(
        settings.bootstrap_servers,
        "orders.events",
        [(key, b"\x00 not an envelope")],
        headers=[("traceparent", traceparent.encode())],
    )

    def parked() -> Any:
        return [
            s
            for s in otlp.spans(trace_id)
            if s.attributes.get("messaging.consumer.group.name") == "inventory-saga"
        ]

    spans = wait_until(parked, timeout=60, interval=0.5, message="the poison's span")
    assert spans[0].name == "orders.events process" and spans[0].parent_span_id == span_id
    assert spans[0].attributes["eventmart.outcome"] == "parked"
    assert spans[0].attributes["error.type"] == "MalformedEvent"


def test_the_trace_of_an_unknown_order_is_404_and_for_admins_only(shop, admin) -> None:
    assert shop.get(f"/v1/ops/orders/{uuid.uuid4()}/trace", headers=admin).status_code == 404
    customer = Customer(shop)
    assert (
        shop.get(f"/v1/ops/orders/{uuid.uuid4()}/trace", headers=customer.headers).status_code
        == 403
    )


def read_stream(
    client: httpx.Client, order_id: str, headers: dict[str, str], stop_after: int | None = None
) -> list[tuple[str, str]]:
    """(id, event type) of each event read, until the stream ends or `stop_after` events."""
    events: list[tuple[str, str]] = []
    with client.stream("GET", f"/v1/orders/{order_id}/events", headers=headers) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in answer.iter_lines():
            if line == "":
                if "id" in fields:
                    events.append((fields["id"], fields["event"]))
                    if stop_after is not None and len(events) >= stop_after:
                        return events
                fields = {}
            elif not line.startswith(":") and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
    return events


def test_the_buyer_streams_the_order_and_resumes_after_the_last_event(
    shop, api_server: str
) -> None:
    product = Seller(shop).product(stock=3)
    customer = Customer(shop)
    order_id = customer.place([(product, 1)])
    with httpx.Client(base_url=api_server, timeout=90) as client:
        first = read_stream(client, order_id, customer.headers, stop_after=3)
        rest = read_stream(client, order_id, {**customer.headers, "Last-Event-ID": first[-1][0]})
        whole = read_stream(client, order_id, customer.headers)
        other = Customer(shop)
        assert client.get(f"/v1/orders/{order_id}/events", headers=other.headers).status_code == 404
    assert len(first) == 3 and rest, (first, rest)
    assert whole[0][1] == "order.placed" and whole[-1][1] == "order.completed"
    # No duplicate and no gap: the two parts are the whole stream, in its order.
    assert first + rest == whole
    assert len({i for i, _ in whole}) == len(whole)
    timeline = customer.view(order_id)
    assert timeline is not None and {t for _, t in whole} == {
        e["type"] for e in timeline["timeline"]
    }
