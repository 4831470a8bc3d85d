"""Operators on the real stack: consumer lag, dead letters parked and redriven exactly
once, /metrics, the `eventmart ops` commands and supervised worker replicas."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from entrypoints.cli import app as cli_app
from eventmart.broker import consumer_groups
from eventmart.operations import REDRIVEN_FROM
from eventmart.settings import Settings, get_settings
from eventmart.wiring import SAGA_PARTICIPANTS
from tests.shop import TERMINAL, Customer, Seller
from tests.support import (
    WorkerProcess,
    child_env,
    free_port,
    metric_value,
    publish,
    read_topic,
    scrape,
    wait_for_groups_to_catch_up,
    wait_until,
)


@pytest.fixture(scope="module")
def shop(api: TestClient, saga_workers, catalog_projection, orders_projection) -> TestClient:
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


@pytest.fixture()
def cli(settings: Settings) -> Iterator[Any]:
    """Runs `eventmart ...` in-process against the test broker and database."""
    runner = CliRunner()
    env = {"DATABASE_URL": settings.dsn, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers}

    def run(*args: str) -> Any:
        get_settings.cache_clear()
        result = runner.invoke(cli_app, list(args), env=env)
        get_settings.cache_clear()
        assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
        return result

    yield run


def saga_groups() -> dict[str, list[str]]:
    return {
        group: topics for group, topics in consumer_groups().items() if group in SAGA_PARTICIPANTS
    }


def positions(shop: TestClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    answer = shop.get("/v1/ops/consumer-groups", headers=admin)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_lag_lists_every_saga_group_and_reaches_zero_once_caught_up(shop, admin, settings):
    def every_saga_group_has_members() -> list[dict[str, Any]] | None:
        answer = shop.get("/v1/ops/consumer-groups", headers=admin)
        if answer.status_code == 503:  # the broker is still electing group coordinators
            return None
        rows = answer.json()
        saga_rows = [row for row in rows if row["group"] in SAGA_PARTICIPANTS]
        return rows if saga_rows and all(row["members"] >= 1 for row in saga_rows) else None

    wait_until(
        every_saga_group_has_members,
        timeout=60,
        interval=0.5,
        message="every saga group to report members",
    )
    seller, customer = Seller(shop), Customer(shop)
    # Any terminal outcome will do: the order is here to put traffic on the saga's topics.
    customer.wait_for(customer.place([(seller.product(), 1)]), *TERMINAL)
    rows = positions(shop, admin)
    for group, topics in saga_groups().items():
        mine = [row for row in rows if row["group"] == group]
        assert {row["topic"] for row in mine} == set(topics)
        assert len(mine) == 6 * len(topics)  # every partition of every topic
        for row in mine:
            assert set(row) == {"group", "topic", "partition", "committed", "end", "lag", "members"}
            assert row["lag"] >= 0 and row["members"] >= 1 and row["end"] >= 0

    wait_for_groups_to_catch_up(settings.bootstrap_servers, saga_groups())
    assert all(
        row["lag"] == 0 for row in positions(shop, admin) if row["group"] in SAGA_PARTICIPANTS
    )


def test_operations_are_for_admins_only(shop):
    customer = Customer(shop)
    for method, path in [
        ("GET", "/v1/ops/consumer-groups"),
        ("GET", "/v1/ops/dlq"),
        ("POST", "/v1/ops/dlq/inventory-saga/redrive"),
    ]:
        assert shop.request(method, path, headers=customer.headers).status_code == 403
        assert shop.request(method, path).status_code == 401


def test_unknown_group_cannot_be_redriven(shop, admin):
    answer = shop.post("/v1/ops/dlq/no-such-group/redrive", headers=admin)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "unknown_consumer_group"


def inventory_dead_letters(shop: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    answer = shop.get(
        "/v1/ops/dlq", params={"group": "inventory-saga", "limit": 100}, headers=admin
    )
    assert answer.status_code == 200, answer.text
    [summary] = answer.json()["items"]
    return summary


def test_poison_is_listed_then_redriven_exactly_once(shop, admin, settings, cli):
    key = f"poison-{uuid.uuid4().hex}"
    garbage = b"\x00\xff not an envelope " + key.encode()
    publish(settings.bootstrap_servers, "orders.events", [(key.encode(), garbage)])

    def parked() -> dict[str, Any] | None:
        return next(
            (m for m in inventory_dead_letters(shop, admin)["messages"] if m["key"] == key), None
        )

    message = wait_until(
        parked, timeout=30, interval=0.3, message="the poison in inventory-saga's DLQ"
    )
    assert message["error_type"] == "MalformedEvent" and message["error_message"]
    assert message["original_topic"] == "orders.events" and message["original_offset"] >= 0
    assert message["tries"] == 1 and message["parked_at"] and message["redriven"] is False
    before = inventory_dead_letters(shop, admin)
    assert before["pending"] >= 1 and before["parked"] == before["redriven"] + before["pending"]

    shown = json.loads(cli("ops", "dlq", "show", "inventory-saga", str(message["offset"])).output)
    assert shown["key"] == key and "MalformedEvent" in shown["error_trace"]
    assert key in cli("ops", "dlq", "list", "inventory-saga", "--show").output

    first = shop.post("/v1/ops/dlq/inventory-saga/redrive", headers=admin)
    assert first.status_code == 202, first.text
    assert first.json()["group"] == "inventory-saga" and first.json()["redriven"] >= 1
    second = shop.post("/v1/ops/dlq/inventory-saga/redrive", headers=admin)
    assert second.status_code == 202, second.text
    cli("ops", "dlq", "redrive", "inventory-saga")

    source = f"inventory-saga.dlq:{message['partition']}:{message['offset']}".encode()
    copies = [
        record
        for record in read_topic(settings.bootstrap_servers, "orders.events")
        if record.value == garbage and dict(record.headers).get(REDRIVEN_FROM) == source
    ]
    assert len(copies) == 1
    assert copies[0].key == key.encode()
    after = next(
        m
        for m in inventory_dead_letters(shop, admin)["messages"]
        if m["offset"] == message["offset"]
    )
    assert after["redriven"] is True


def test_metrics_exposes_latency_lag_dead_letters_and_saga_outcomes(shop, admin):
    positions(shop, admin)  # one observed request on a templated route
    text = wait_until(
        lambda: (
            (answer := shop.get("/metrics", headers=admin)).status_code == 200
            and "eventmart_consumer_lag{" in answer.text
            and answer.text
        ),
        timeout=30,
        interval=0.5,
        message="/metrics with the lag gauge",
    )
    assert (
        'eventmart_http_request_duration_seconds_bucket{le="0.1",method="GET",'
        'route="/v1/ops/consumer-groups",status="200"}' in text
    )
    assert (
        'eventmart_consumer_lag{group="inventory-saga",partition="0",topic="orders.events"}' in text
    )
    assert metric_value(text, 'eventmart_dlq_messages{group="inventory-saga"}') >= 1
    assert (
        sum(
            metric_value(text, f'eventmart_saga_outcomes{{status="{status}"}}')
            for status in TERMINAL
        )
        >= 1
    )
    # Every answer a route served carries the route's template; only requests for paths no
    # route has (404s, which other tests in this process make) fall under "unmatched".
    unmatched = [line for line in text.splitlines() if 'route="unmatched"' in line]
    assert all('status="404"' in line for line in unmatched), unmatched


def test_metrics_answers_loopback_and_admins_only(shop, admin):
    """The test client's peer is "testclient", not a loopback address."""
    refused = shop.get("/metrics")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "not_authenticated"
    customer = Customer(shop)
    forbidden = shop.get("/metrics", headers=customer.headers)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert shop.get("/metrics", headers=admin).status_code == 200
    for peer in ("127.0.0.1", "::1"):
        local = TestClient(shop.app, client=(peer, 40000))
        assert local.get("/metrics").status_code == 200, peer
    outside = TestClient(shop.app, client=("203.0.113.7", 40000))
    assert outside.get("/metrics").status_code == 401
    # Behind a proxy the settings do not trust, X-Forwarded-For changes nothing.
    spoofed = outside.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert spoofed.status_code == 401


def test_ops_lag_command_prints_rows_and_a_table(shop, cli):
    rows = json.loads(cli("ops", "lag", "--json").output)
    assert {row["group"] for row in rows} == set(consumer_groups())
    assert "inventory-saga" in cli("ops", "lag").output


def test_replicas_run_as_children_serving_metrics_and_stop_together(shop, settings, worker_logs):
    port = free_port(count=3)
    env = {**child_env(settings), "EVENTMART_WORKER_METRICS_PORT": str(port)}
    supervisor = WorkerProcess(
        "catalog-projection-replicas",
        ["worker", "catalog-projection", "--replicas", "2"],
        env,
        worker_logs,
    ).start()
    try:
        for replica_port in (port, port + 1):  # replica i serves on port + i
            body = wait_until(
                lambda replica_port=replica_port: scrape(replica_port),
                timeout=60,
                interval=0.2,
                message=f"a replica's metrics on :{replica_port}",
            )
            assert b"eventmart_events_processed_total" in body
    finally:
        assert supervisor.stop(timeout=40), "the replicas' supervisor did not stop on SIGTERM"
    assert supervisor.process.returncode == 0, supervisor.log_tail()
    assert scrape(port) is None and scrape(port + 1) is None  # the children are gone too
