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
        (payload["user_id"], payload["email"], payload["display_name"], payload["role"],
         event.occurred_at, event.aggregate_version),
    )


HANDLERS = {
    "user.registered": user_registered,
}


class Fold:
    """The handlers above as an in-memory fold, for bulk loads (projections.bulk)."""

    columns: ClassVar[dict[str, tuple[str, ...]]] = {"users_view": ("user_id", "email", "display_name", "role", "created_at", "version")}

    def __init__(self) -> None:
        self.users: dict[str, tuple[Any, ...]] = {}

    def add(self, event: Event) -> None:
        payload = event.payload
        self.users.setdefault(payload["user_id"], (
            payload["user_id"], payload["email"], payload["display_name"], payload["role"],
            event.occurred_at, event.aggregate_version))

    def appended(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        return iter(())

    def folded(self) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        yield "users_view", iter(self.users.values())


def find_user(conn: psycopg.Connection[Any], user_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT user_id, email, display_name, role, created_at FROM users_view WHERE user_id = %s",
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("user_id", "email", "display_name", "role", "created_at"), row, strict=True))
