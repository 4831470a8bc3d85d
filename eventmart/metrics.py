"""Prometheus metrics on one registry per process, so the API's /metrics and a worker's
metrics port render only EventMart's own series.

Workers are separate processes: their event counters are exported by the worker itself
on EVENTMART_WORKER_METRICS_PORT (unset: no HTTP server), not by the API.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger("eventmart.metrics")

SAGA_TERMINAL_STATUSES = ("completed", "cancelled", "rejected")
WORKER_METRICS_PORT_ENV = "EVENTMART_WORKER_METRICS_PORT"
__all__ = ["CONTENT_TYPE_LATEST", "METRICS", "Metrics", "start_worker_metrics_server"]


class Metrics:
    """EventMart's metric objects, bound to one registry (tests build their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.http_request_duration = Histogram(
            "eventmart_http_request_duration_seconds",
            "API request latency",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.events_processed = Counter(
            "eventmart_events_processed",
            "Events a consumer group handled",
            ["group"],
            registry=self.registry,
        )
        self.events_skipped = Counter(
            "eventmart_events_skipped",
            "Events a consumer group had applied already (redelivered, re-published or "
            "redriven copies), skipped",
            ["group"],
            registry=self.registry,
        )
        self.events_failed = Counter(
            "eventmart_events_failed",
            "Failed attempts at handling an event (retried or parked)",
            ["group"],
            registry=self.registry,
        )
        self.events_parked = Counter(
            "eventmart_events_parked",
            "Events a consumer group parked on its dead-letter topic",
            ["group"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "eventmart_consumer_lag",
            "Messages past the group's committed offset",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        self.consumer_group_members = Gauge(
            "eventmart_consumer_group_members",
            "Live members of the consumer group",
            ["group"],
            registry=self.registry,
        )
        self.dlq_messages = Gauge(
            "eventmart_dlq_messages",
            "Messages retained on the group's dead-letter topic",
            ["group"],
            registry=self.registry,
        )
        self.dlq_pending = Gauge(
            "eventmart_dlq_pending",
            "Dead letters not yet redriven",
            ["group"],
            registry=self.registry,
        )
        self.outbox_unpublished = Gauge(
            "eventmart_outbox_unpublished",
            "Stored events the relay has not published yet, per application (parked apart)",
            ["application"],
            registry=self.registry,
        )
        self.outbox_parked = Gauge(
            "eventmart_outbox_parked",
            "Events the relay parked (or holds behind a parked one), per application",
            ["application"],
            registry=self.registry,
        )
        self.outbox_oldest_unpublished = Gauge(
            "eventmart_outbox_oldest_unpublished_seconds",
            "Age of the oldest event not on the bus yet (waiting or parked); 0 if none",
            registry=self.registry,
        )
        self.relay_heartbeat_age = Gauge(
            "eventmart_relay_heartbeat_age_seconds",
            "Seconds since the active relay last said it was alive (-1: never)",
            registry=self.registry,
        )
        self.supervised_restarts = Gauge(
            "eventmart_supervised_restarts",
            "Times `eventmart up`'s supervisor restarted this process since the stack started",
            ["process"],
            registry=self.registry,
        )
        self.supervised_up = Gauge(
            "eventmart_supervised_up",
            "1 if the supervised process runs and answers, else 0",
            ["process"],
            registry=self.registry,
        )
        self.supervised_crash_looping = Gauge(
            "eventmart_supervised_crash_looping",
            "1 while the process is in a crash loop (3 restarts within a minute), else 0",
            ["process"],
            registry=self.registry,
        )
        self.saga_outcomes = Gauge(
            "eventmart_saga_outcomes",
            "Orders per terminal status (orders_view)",
            ["status"],
            registry=self.registry,
        )

    def record_lag(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace the lag gauges with these rows (partitions that vanished disappear)."""
        self.consumer_lag.clear()
        self.consumer_group_members.clear()
        for row in rows:
            self.consumer_lag.labels(row["group"], row["topic"], str(row["partition"])).set(
                row["lag"]
            )
            self.consumer_group_members.labels(row["group"]).set(row["members"])

    def record_dead_letters(self, summaries: Iterable[Mapping[str, Any]]) -> None:
        for summary in summaries:
            self.dlq_messages.labels(summary["group"]).set(summary["parked"])
            self.dlq_pending.labels(summary["group"]).set(summary["pending"])

    def record_relay(self, health: Mapping[str, Any]) -> None:
        """The outboxes as eventmart.relay_operations.relay_health saw them."""
        for outbox in health["outboxes"]:
            self.outbox_unpublished.labels(outbox["application"]).set(outbox["unpublished"])
            self.outbox_parked.labels(outbox["application"]).set(outbox["parked"])
        self.outbox_oldest_unpublished.set(health["oldest_unpublished_age_seconds"] or 0)
        heartbeat = health["heartbeat_age_seconds"]
        self.relay_heartbeat_age.set(-1 if heartbeat is None else heartbeat)

    def record_saga_outcomes(self, counts: Mapping[str, int]) -> None:
        for status in SAGA_TERMINAL_STATUSES:
            self.saga_outcomes.labels(status).set(counts.get(status, 0))

    def record_supervision(self, state: Mapping[str, Any] | None) -> None:
        """The supervisor's state file (eventmart.supervision); None: no supervised stack."""
        for gauge in (self.supervised_restarts, self.supervised_up, self.supervised_crash_looping):
            gauge.clear()
        for process in (state or {}).get("processes", []):
            name = process["name"]
            self.supervised_restarts.labels(name).set(process["restarts"])
            up = process["state"] == "running" and process["health"] == "up"
            self.supervised_up.labels(name).set(1 if up else 0)
            looping = process["state"] == "crash-looping"
            self.supervised_crash_looping.labels(name).set(1 if looping else 0)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


METRICS = Metrics()


def start_worker_metrics_server(environ: Mapping[str, str] = os.environ) -> int | None:
    """Serve this worker's metrics on EVENTMART_WORKER_METRICS_PORT, if it is set."""
    port = environ.get(WORKER_METRICS_PORT_ENV)
    if not port:
        return None
    from prometheus_client import start_http_server

    start_http_server(int(port), registry=METRICS.registry)
    log.info("worker metrics on :%s/metrics", port)
    return int(port)
