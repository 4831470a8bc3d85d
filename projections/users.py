"""The users read model: what `GET /v1/users/me` answers from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import psycopg

from eventmart.contracts import Envelope, Event

GROUP = "users-projection"
TOPICS = ["users.events"]

DDL = """
CREATE TABLE IF NOT EXISTS users_view (
    user_id uuid PRIMARY KEY,
    email text NOT NULL,
    display_name text NOT NULL,
    role text NOT NULL,
    created_at timestamptz NOT NULL,
    version bigint NOT NULL
);
"""


def user_registered(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    payload = event.payload
    cursor.execute(
        "INSERT INTO users_view (user_id, email, display_name, role, created_at, version) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (user_id) DO NOTHING",
        (
            payload["user_id"],
            payload["email"],
            payload["display_name"],
            payload["role"],
            event.occurred_at,
            event.aggregate_version,
        ),
    )


HANDLERS = {
    "user.registered": user_registered,
}


class Fold:
    """The handler above as an in-memory fold, for bulk loads (projections.bulk): a user's
    row never changes once inserted, so rows go out as they come."""

    columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "users_view": ("user_id", "email", "display_name", "role", "created_at", "version")
    }

    def __init__(self) -> None:
        self.user_ids: set[str] = set()
        self.rows: list[tuple[Any, ...]] = []

    def add(self, event: Event) -> None:
        payload = event.payload
        if payload["user_id"] not in self.user_ids:  # ON CONFLICT (user_id) DO NOTHING
            self.user_ids.add(payload["user_id"])
            self.rows.append(
                (
                    payload["user_id"],
                    payload["email"],
                    payload["display_name"],
                    payload["role"],
                    event.occurred_at,
                    event.aggregate_version,
                )
            )

    def appended(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        rows, self.rows = self.rows, []
        yield "users_view", rows

    def folded(self) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        return iter(())


def find_user(conn: psycopg.Connection[Any], user_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT user_id, email, display_name, role, created_at FROM users_view WHERE user_id = %s",
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("user_id", "email", "display_name", "role", "created_at"), row, strict=True))
