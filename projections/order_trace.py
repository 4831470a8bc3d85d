"""An order's journey rebuilt from the log: its trace without a trace backend, and its
timeline as a stream for the buyer.

The orders read model's group sees every event of an order, on every topic of the saga.
Besides the timeline (projections.orders) it keeps, per event, what only the delivery
knows: the Kafka record's topic, partition, offset and timestamp (the relay's publish:
the producer sets the record's time when it sends), the event's cause (`causation_id`),
its stored `traceparent`, and when the group applied it. These `order_hops` rows are
written in the same transaction as the timeline, keyed by event id (a copy adds nothing),
and are not part of the model's rebuild: a rebuild swaps the timeline, the hops stay.

From them, `order_trace` builds one trace: a span per stored event (service: `api` for a
command, else the saga group of the context that stored it), per relay publish (from the
stored time to the record's timestamp), per saga group's handling (from the cause's
record timestamp to the last event it stored for it) and per orders-projection handling
(record timestamp to applied); parents by causation. The trace id is the stored one, or
for events stored before events carried one, derived from the order id.

An order whose events were projected before the hops existed still has its timeline: its
spans are the stored events alone, all children of the first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import psycopg

from eventmart.tracing import derived_trace_id, span_id_of, trace_id_of
from projections.orders import TERMINAL
from projections.tracking import Delivery

ANNOUNCE_CHANNEL = "order_events"

DDL = """
CREATE TABLE IF NOT EXISTS order_hops (
    event_id uuid PRIMARY KEY,
    order_id uuid NOT NULL,
    seq bigserial NOT NULL,
    type text NOT NULL,
    causation_id uuid,
    traceparent text,
    topic text NOT NULL,
    partition int NOT NULL,
    record_offset bigint NOT NULL,
    published_at timestamptz,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS order_hops_order ON order_hops (order_id, seq);
-- One notification per batch, its payload the batch's order ids separated by spaces (at
-- most 200 to a notification, under PostgreSQL's 8000-byte payload limit): a notification
-- per row cost the orders projection's batch insert 4 ms for 70 rows.
CREATE OR REPLACE FUNCTION public.order_hops_announce() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_events', ids)
    FROM (
        SELECT string_agg(order_id::text, ' ') AS ids
        FROM (SELECT order_id, (row_number() OVER ()) / 200 AS chunk
              FROM (SELECT DISTINCT order_id FROM announced) AS distinct_orders) AS numbered
        GROUP BY chunk
    ) AS chunks;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER order_hops_announce AFTER INSERT ON order_hops
    REFERENCING NEW TABLE AS announced
    FOR EACH STATEMENT EXECUTE FUNCTION public.order_hops_announce();
"""

INSERT = """
INSERT INTO order_hops (event_id, order_id, type, causation_id, traceparent, topic, partition,
    record_offset, published_at)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::uuid[], %s::text[], %s::text[],
    %s::int[], %s::bigint[], %s::timestamptz[])
ORDER BY 9, 1
ON CONFLICT (event_id) DO NOTHING
"""


def record_hops(cursor: psycopg.Cursor[Any], deliveries: list[Delivery]) -> None:
    """The orders projection's recorder: one hop per delivery of an order's event."""
    hops = [d for d in deliveries if isinstance(d.envelope.payload.get("order_id"), str)]
    if not hops:
        return
    cursor.execute(
        INSERT,
        (
            [d.envelope.event_id for d in hops],
            [d.envelope.payload["order_id"] for d in hops],
            [d.envelope.type for d in hops],
            [d.envelope.causation_id for d in hops],
            [d.envelope.traceparent for d in hops],
            [d.topic for d in hops],
            [d.partition for d in hops],
            [d.offset for d in hops],
            [
                None if d.timestamp is None else datetime.fromtimestamp(d.timestamp / 1000, UTC)
                for d in hops
            ],
        ),
    )


# The stream: timeline rows in the order the model got them (hops' seq; rows projected
# before hops existed first, by time).
TIMELINE = """
SELECT v.status, t.event_id, t.type, t.at, t.detail
FROM orders_view v
LEFT JOIN order_timeline t ON t.order_id = v.order_id
LEFT JOIN order_hops h ON h.event_id = t.event_id
WHERE v.order_id = %s AND v.status IS NOT NULL
ORDER BY h.seq NULLS FIRST, t.at, t.type, t.event_id
"""
STATUS = "SELECT buyer_id, status FROM orders_view WHERE order_id = %s AND status IS NOT NULL"


def order_owner(conn: psycopg.Connection[Any], order_id: str) -> tuple[Any, str] | None:
    """The buyer and status of an order, or None until order.placed is projected."""
    row = conn.execute(STATUS, (order_id,)).fetchone()
    return None if row is None else (row[0], row[1])


def order_timeline(
    conn: psycopg.Connection[Any], order_id: str
) -> tuple[str | None, list[dict[str, Any]]]:
    """The order's status and its timeline in the order the model got it (rows projected
    before hops existed first, by time), in one statement: one snapshot, so a terminal
    status never comes without the events before it."""
    rows = conn.execute(TIMELINE, (order_id,)).fetchall()
    events = [
        {"event_id": str(event_id), "type": type_, "at": at, "detail": detail}
        for _, event_id, type_, at, detail in rows
        if event_id is not None
    ]
    return (rows[0][0] if rows else None), events


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL


# The trace.

TRACE = """
SELECT t.event_id, t.type, t.at, h.causation_id, h.traceparent, h.topic, h.partition,
    h.record_offset, h.published_at, h.applied_at
FROM orders_view v JOIN order_timeline t ON t.order_id = v.order_id
LEFT JOIN order_hops h ON h.event_id = t.event_id
WHERE v.order_id = %s AND v.status IS NOT NULL
ORDER BY t.at, t.type, t.event_id
"""
EXISTS = "SELECT 1 FROM orders_view WHERE order_id = %s AND status IS NOT NULL"
CONTEXT_OF_TYPE = {
    "order": "orders",
    "reservation": "inventory",
    "payment": "payments",
    "shipment": "shipping",
}
SPAN_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:span")


def _span_id(*parts: object) -> str:
    return uuid5(SPAN_NAMESPACE, ":".join(map(str, parts))).hex[:16]


def _context(event_type: str, topic: str | None) -> str:
    if topic:
        return topic.removesuffix(".events")
    return CONTEXT_OF_TYPE.get(event_type.split(".")[0], event_type.split(".")[0])


def order_trace(conn: psycopg.Connection[Any], order_id: str) -> dict[str, Any] | None:
    """The order's saga as one trace (see the module docstring); None for an unknown order."""
    rows = conn.execute(TRACE, (order_id,)).fetchall()
    if not rows:
        return (
            None if conn.execute(EXISTS, (order_id,)).fetchone() is None else _trace([], order_id)
        )
    events = [
        dict(
            zip(
                (
                    "event_id",
                    "type",
                    "at",
                    "causation_id",
                    "traceparent",
                    "topic",
                    "partition",
                    "offset",
                    "published_at",
                    "applied_at",
                ),
                row,
                strict=True,
            )
        )
        for row in rows
    ]
    return _trace(events, order_id)


def _trace(events: list[dict[str, Any]], order_id: str) -> dict[str, Any]:
    placed = [e for e in events if e["type"] == "order.placed" and e["traceparent"]]
    stamped = placed or [e for e in events if e["traceparent"]]
    trace_id = trace_id_of(stamped[0]["traceparent"]) if stamped else derived_trace_id(order_id)
    by_id = {e["event_id"]: e for e in events}
    caused: dict[tuple[UUID, str], list[dict[str, Any]]] = {}
    for event in events:
        cause = by_id.get(event["causation_id"])
        if cause is not None:
            group = f"{_context(event['type'], event['topic'])}-saga"
            caused.setdefault((cause["event_id"], group), []).append(event)
    spans: list[dict[str, Any]] = []
    root = events[0]["event_id"] if events else None

    def stored_span_id(event: dict[str, Any]) -> str:
        return _span_id("stored", event["event_id"])

    def after_stored(event: dict[str, Any]) -> str:
        """What its consumers' spans hang from: its publish, or the stored event itself."""
        if event["published_at"] is not None:
            return _span_id("publish", event["event_id"])
        return stored_span_id(event)

    for (cause_id, group), effects in caused.items():
        cause = by_id[cause_id]
        spans.append(
            _span(
                _span_id("process", cause_id, group),
                after_stored(cause),
                f"{cause['topic'] or _context(cause['type'], None) + '.events'} process",
                group,
                cause["published_at"] or cause["at"],
                max(effect["at"] for effect in effects),
                _event_attributes(cause) | {"eventmart.consumer_group": group},
            )
        )
    for event in events:
        cause = by_id.get(event["causation_id"])
        context = _context(event["type"], event["topic"])
        if cause is not None:
            parent: str | None = _span_id("process", cause["event_id"], f"{context}-saga")
            service = f"{context}-saga"
        elif event["event_id"] == root:
            # The command that placed it: the span its traceparent names (the API's span
            # with tracing on, else the client's), the trace's root here.
            command = span_id_of(event["traceparent"]) or _span_id("command", root)
            spans.append(
                _span(
                    command,
                    None,
                    "POST /v1/orders" if event["type"] == "order.placed" else "command",
                    "api",
                    event["at"],
                    event["at"],
                    {"eventmart.order_id": order_id},
                )
            )
            parent, service = command, "api"
        else:
            # A timer's change (payment timeout, automatic completion), or a cause outside
            # the order's timeline (a stock or coupon event): under the first event.
            parent, service = stored_span_id(by_id[root]), f"{context}-saga"
        spans.append(
            _span(
                stored_span_id(event),
                parent,
                f"{event['type']} stored",
                service,
                event["at"],
                event["at"],
                _event_attributes(event),
            )
        )
        if event["published_at"] is not None:
            spans.append(
                _span(
                    _span_id("publish", event["event_id"]),
                    stored_span_id(event),
                    f"{event['topic']} publish",
                    "relay",
                    event["at"],
                    max(event["at"], event["published_at"]),
                    _event_attributes(event)
                    | {
                        "messaging.system": "kafka",
                        "messaging.destination.name": event["topic"],
                        "messaging.destination.partition.id": str(event["partition"]),
                        "messaging.kafka.offset": event["offset"],
                    },
                )
            )
            spans.append(
                _span(
                    _span_id("process", event["event_id"], "orders-projection"),
                    after_stored(event),
                    f"{event['topic']} process",
                    "orders-projection",
                    event["published_at"],
                    max(event["published_at"], event["applied_at"]),
                    _event_attributes(event) | {"eventmart.consumer_group": "orders-projection"},
                )
            )
    spans.sort(key=lambda span: (span["started_at"], span["name"]))
    return {"trace_id": trace_id, "spans": spans}


def _event_attributes(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventmart.event_id": str(event["event_id"]),
        "eventmart.event_type": event["type"],
        **({"eventmart.causation_id": str(event["causation_id"])} if event["causation_id"] else {}),
    }


def _span(
    span_id: str,
    parent_span_id: str | None,
    name: str,
    service: str,
    started_at: datetime,
    ended_at: datetime,
    attributes: dict[str, Any],
) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "name": name,
        "service": service,
        "started_at": started_at,
        "ended_at": ended_at,
        "attributes": attributes,
    }
