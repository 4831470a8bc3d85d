"""A saga participant's deadlines, kept in its own context's table and written in the
transaction of the events that set them, so its timers find what is due without reading
another context's store or read model.

Each participant names, for an aggregate it has just changed, the deadlines that aggregate
now has (`Deadline(timer, order_id, due_at)`; `due_at=None` clears one). The rows live in
`<context>_deadlines` beside the context's events table; a timer asks for the order ids whose
deadline has passed and lets the aggregates decide (a row is only a reminder: the aggregate
that set it has the last word, and clears it when it acts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.sql import SQL, Composed, Identifier


@dataclass(frozen=True)
class Deadline:
    """When `timer` is due for `order_id`; None: it no longer is."""

    timer: str
    order_id: UUID
    due_at: datetime | None


# What deadlines an aggregate has after a change (most aggregates have none).
DeadlinesOf = Callable[[Any], Iterable[Deadline]]


def no_deadlines(aggregate: Any) -> Iterable[Deadline]:
    return ()


def deadlines_table(events_table: str) -> str:
    """`inventory_events` -> `inventory_deadlines`: the context's own table."""
    return events_table.removesuffix("_events") + "_deadlines"


def create_statements(schema: str, table: str) -> list[Composed]:
    return [
        SQL(
            "CREATE TABLE IF NOT EXISTS {0}.{1} ("
            "timer text NOT NULL, order_id uuid NOT NULL, due_at timestamptz NOT NULL, "
            "PRIMARY KEY (timer, order_id))"
        ).format(Identifier(schema), Identifier(table)),
        SQL("CREATE INDEX IF NOT EXISTS {0} ON {1}.{2} (timer, due_at)").format(
            Identifier(f"{table}_due"), Identifier(schema), Identifier(table)
        ),
    ]


def write_statements(
    schema: str, table: str, deadlines: Sequence[Deadline]
) -> list[tuple[Composed, tuple[Any, ...]]]:
    """At most two statements for any number of deadlines: one upsert, one delete. The last
    word on an (timer, order) pair wins, as the aggregates changed in that order."""
    latest = {(d.timer, d.order_id): d.due_at for d in deadlines}
    due = [(timer, order_id, at) for (timer, order_id), at in latest.items() if at is not None]
    cleared = [(timer, order_id) for (timer, order_id), at in latest.items() if at is None]
    statements: list[tuple[Composed, tuple[Any, ...]]] = []
    if due:
        statements.append(
            (
                SQL(
                    "INSERT INTO {0}.{1} (timer, order_id, due_at) "
                    "SELECT * FROM unnest(%s::text[], %s::uuid[], %s::timestamptz[]) "
                    "ON CONFLICT (timer, order_id) DO UPDATE SET due_at = EXCLUDED.due_at"
                ).format(Identifier(schema), Identifier(table)),
                tuple(map(list, zip(*due, strict=True))),
            )
        )
    if cleared:
        statements.append(
            (
                SQL(
                    "DELETE FROM {0}.{1} WHERE (timer, order_id) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::uuid[]))"
                ).format(Identifier(schema), Identifier(table)),
                tuple(map(list, zip(*cleared, strict=True))),
            )
        )
    return statements


def due_statement(schema: str, table: str) -> Composed:
    """Order ids whose `timer` deadline has passed by the given moment, oldest first."""
    return SQL(
        "SELECT order_id FROM {0}.{1} WHERE timer = %s AND due_at <= %s "
        "AND NOT (order_id = ANY(%s::uuid[])) ORDER BY due_at LIMIT %s"
    ).format(Identifier(schema), Identifier(table))
