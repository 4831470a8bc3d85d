"""What a consumer group has applied, stored in the same transaction as its effects.

Two records, both written with the effects: the offset reached per partition
(for lag and for resuming), and the identity of every event applied, so a
redelivered or re-published copy (same aggregate id and version, any offset)
changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from eventmart.contracts import Envelope

TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS consumer_positions (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
CREATE TABLE IF NOT EXISTS applied_events (
    consumer_group text NOT NULL,
    aggregate_id uuid NOT NULL,
    aggregate_version bigint NOT NULL,
    PRIMARY KEY (consumer_group, aggregate_id, aggregate_version)
);
"""

Handler = Callable[[psycopg.Cursor[Any], Envelope], None]
# What a read model keeps of the deliveries themselves (record timestamps, traceparents),
# written in the batch's transaction (projections.order_trace).
Recorder = Callable[[psycopg.Cursor[Any], "list[Delivery]"], None]


@dataclass(frozen=True)
class Delivery:
    """One consumed Kafka message, decoded; `redriven` if an operator put it back from a
    dead-letter topic."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope
    redriven: bool = False
    # The record's timestamp (ms): when the relay published it.
    timestamp: int | None = None
    # What the events this delivery causes carry as their cause (eventmart.tracing): the
    # group's span handling it, or (tracing off) the record's traceparent.
    cause: str | None = None
    # The group's CONSUMER span while it is handled (tracing on), for its outcome.
    span: Any = field(default=None, compare=False)

    def mark(self, outcome: str) -> None:
        """Say on its span how the group dealt with it (applied unless told otherwise)."""
        if self.span is not None:
            self.span.set_attribute("eventmart.outcome", outcome)


def claim(
    cursor: psycopg.Cursor[Any], group: str, envelopes: list[Envelope]
) -> set[tuple[UUID, int]]:
    """The identities (aggregate id, version) of the events this group sees for the first
    time, in one statement; every copy after the first is left out."""
    if not envelopes:
        return set()
    cursor.execute(
        "INSERT INTO applied_events (consumer_group, aggregate_id, aggregate_version) "
        "SELECT %s, * FROM unnest(%s::uuid[], %s::bigint[]) ON CONFLICT DO NOTHING "
        "RETURNING aggregate_id, aggregate_version",
        (group, [e.aggregate_id for e in envelopes], [e.aggregate_version for e in envelopes]),
    )
    return {(aggregate_id, version) for aggregate_id, version in cursor.fetchall()}


def advance(cursor: psycopg.Cursor[Any], group: str, deliveries: list[Delivery]) -> None:
    reached: dict[tuple[str, int], int] = {}
    for delivery in deliveries:
        key = (delivery.topic, delivery.partition)
        reached[key] = max(reached.get(key, -1), delivery.offset + 1)
    save_positions(cursor, group, reached)


def save_positions(
    cursor: psycopg.Cursor[Any], group: str, reached: dict[tuple[str, int], int]
) -> None:
    """The next offset per (topic, partition); a position never moves back."""
    if not reached:
        return
    keys = sorted(reached)
    cursor.execute(
        "INSERT INTO consumer_positions (consumer_group, topic, partition, next_offset) "
        "SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::bigint[]) "
        "ON CONFLICT (consumer_group, topic, partition) DO UPDATE "
        "SET next_offset = GREATEST(consumer_positions.next_offset, EXCLUDED.next_offset), "
        "updated_at = now()",
        (
            group,
            [topic for topic, _ in keys],
            [partition for _, partition in keys],
            [reached[key] for key in keys],
        ),
    )


def apply_deliveries(
    conn: psycopg.Connection[Any],
    group: str,
    handlers: Mapping[str, Handler],
    deliveries: list[Delivery],
    recorder: Recorder | None = None,
) -> int:
    """Apply a batch in one transaction: effects, event identities, offsets. Returns how
    many events were new.

    The batch's identities are claimed in one statement; the handlers' statements then go
    in a pipeline (handlers only write), so a batch costs a few round trips, not three per
    event."""
    relevant = [d for d in deliveries if d.envelope.type in handlers]
    if len(relevant) < len(deliveries):
        for delivery in deliveries:
            if delivery.envelope.type not in handlers:
                delivery.mark("ignored")
    applied = 0
    with conn.transaction(), conn.cursor() as cursor:
        new = claim(cursor, group, [d.envelope for d in relevant])
        with conn.pipeline():
            for delivery in relevant:
                envelope = delivery.envelope
                identity = (envelope.aggregate_id, envelope.aggregate_version)
                if identity in new:
                    new.discard(identity)  # a second copy in this batch is not new
                    handlers[envelope.type](cursor, envelope)
                    applied += 1
                else:
                    delivery.mark("duplicate")
            if recorder is not None:
                recorder(cursor, relevant)
            advance(cursor, group, deliveries)
    return applied
