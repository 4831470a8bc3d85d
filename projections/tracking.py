"""What a consumer group has applied, stored in the same transaction as its effects.

Two records, both written with the effects: the offset reached per partition
(for lag and for resuming), and the identity of every event applied, so a
redelivered or re-published copy (same aggregate id and version, any offset)
changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Delivery:
    """One consumed Kafka message, decoded."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope


def claim(cursor: psycopg.Cursor[Any], group: str, envelope: Envelope) -> bool:
    """True the first time this group sees the event; False for any copy after."""
    cursor.execute(
        "INSERT INTO applied_events (consumer_group, aggregate_id, aggregate_version) "
        "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (group, envelope.aggregate_id, envelope.aggregate_version),
    )
    return cursor.rowcount == 1


def advance(cursor: psycopg.Cursor[Any], group: str, deliveries: list[Delivery]) -> None:
    reached: dict[tuple[str, int], int] = {}
    for delivery in deliveries:
        key = (delivery.topic, delivery.partition)
        reached[key] = max(reached.get(key, -1), delivery.offset + 1)
    save_positions(cursor, group, reached)


def save_positions(cursor: psycopg.Cursor[Any], group: str, reached: dict[tuple[str, int], int]) -> None:
    """The next offset per (topic, partition); a position never moves back."""
    for (topic, partition), next_offset in sorted(reached.items()):
        cursor.execute(
            "INSERT INTO consumer_positions (consumer_group, topic, partition, next_offset) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (consumer_group, topic, partition) DO UPDATE "
            "SET next_offset = GREATEST(consumer_positions.next_offset, EXCLUDED.next_offset), "
            "updated_at = now()",
            (group, topic, partition, next_offset),
        )


def apply_deliveries(
    conn: psycopg.Connection[Any],
    group: str,
    handlers: Mapping[str, Handler],
    deliveries: list[Delivery],
) -> int:
    """Apply a batch in one transaction: effects, event identities, offsets. Returns how
    many events were new."""
    applied = 0
    with conn.transaction(), conn.cursor() as cursor:
        for delivery in deliveries:
            handler = handlers.get(delivery.envelope.type)
            if handler is None:
                continue  # an event type this read model does not care about
            if claim(cursor, group, delivery.envelope):
                handler(cursor, delivery.envelope)
                applied += 1
        advance(cursor, group, deliveries)
    return applied
