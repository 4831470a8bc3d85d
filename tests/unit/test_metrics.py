"""The metrics text Prometheus scrapes, rendered without the broker or the database."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from eventmart.metrics import Metrics, start_worker_metrics_server
from eventmart.operations import describe_dead_letter


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_request_latency_is_a_histogram_by_method_route_and_status():
    metrics = Metrics(CollectorRegistry())
    metrics.http_request_duration.labels("GET", "/v1/orders/{order_id}", "200").observe(0.03)

    text = metrics.render().decode()
    assert "# TYPE eventmart_http_request_duration_seconds histogram" in text
    assert (
        'eventmart_http_request_duration_seconds_bucket{le="0.05",method="GET",'
        'route="/v1/orders/{order_id}",status="200"} 1.0'
    ) in text
    assert (
        samples(metrics)[
            (
                "eventmart_http_request_duration_seconds_count",
                frozenset(
                    {"method": "GET", "route": "/v1/orders/{order_id}", "status": "200"}.items()
                ),
            )
        ]
        == 1
    )


def test_event_counters_are_per_group():
    metrics = Metrics(CollectorRegistry())
    metrics.events_processed.labels("inventory-saga").inc(3)
    metrics.events_failed.labels("inventory-saga").inc()
    metrics.events_parked.labels("shipping-saga").inc()

    found = samples(metrics)
    assert (
        found[("eventmart_events_processed_total", frozenset({("group", "inventory-saga")}))] == 3
    )
    assert found[("eventmart_events_failed_total", frozenset({("group", "inventory-saga")}))] == 1
    assert found[("eventmart_events_parked_total", frozenset({("group", "shipping-saga")}))] == 1


def test_lag_gauges_are_replaced_on_each_refresh():
    metrics = Metrics(CollectorRegistry())
    row = {
        "group": "orders-saga",
        "topic": "payments.events",
        "partition": 2,
        "committed": 5,
        "end": 9,
        "lag": 4,
        "members": 2,
    }
    metrics.record_lag([row, {**row, "partition": 3, "lag": 0}])
    metrics.record_lag([{**row, "lag": 1}])

    found = samples(metrics)
    labels = {"group": "orders-saga", "topic": "payments.events"}
    assert found[("eventmart_consumer_lag", frozenset({**labels, "partition": "2"}.items()))] == 1
    assert ("eventmart_consumer_lag", frozenset({**labels, "partition": "3"}.items())) not in found
    assert found[("eventmart_consumer_group_members", frozenset({("group", "orders-saga")}))] == 2


def test_dead_letters_and_saga_outcomes():
    metrics = Metrics(CollectorRegistry())
    metrics.record_dead_letters(
        [{"group": "inventory-saga", "parked": 3, "redriven": 1, "pending": 2}]
    )
    metrics.record_saga_outcomes({"completed": 7, "rejected": 1})

    found = samples(metrics)
    assert found[("eventmart_dlq_messages", frozenset({("group", "inventory-saga")}))] == 3
    assert found[("eventmart_dlq_pending", frozenset({("group", "inventory-saga")}))] == 2
    assert found[("eventmart_saga_outcomes", frozenset({("status", "completed")}))] == 7
    assert found[("eventmart_saga_outcomes", frozenset({("status", "cancelled")}))] == 0


def test_a_parked_record_reads_from_its_headers():
    record = SimpleNamespace(
        offset=4,
        partition=0,
        key=b"order-1",
        value=b"\x00junk",
        headers=[
            ("x-error-type", b"MalformedEvent"),
            ("x-error-message", b"not json"),
            ("x-tries", b"1"),
            ("x-original-topic", b"orders.events"),
            ("x-original-partition", b"3"),
            ("x-original-offset", b"17"),
            ("x-parked-at", b"2025-01-01T00:00:00+00:00"),
            ("x-error-trace", b"Traceback ..."),
        ],
    )

    brief = describe_dead_letter(record, redriven_below=5)
    assert brief == {
        "offset": 4,
        "partition": 0,
        "key": "order-1",
        "original_topic": "orders.events",
        "original_partition": 3,
        "original_offset": 17,
        "error_type": "MalformedEvent",
        "error_message": "not json",
        "tries": 1,
        "parked_at": "2025-01-01T00:00:00+00:00",
        "redriven": True,
    }
    assert (
        describe_dead_letter(record, redriven_below=4, full=True)["error_trace"] == "Traceback ..."
    )


def test_workers_serve_metrics_only_when_a_port_is_configured():
    assert start_worker_metrics_server({}) is None
