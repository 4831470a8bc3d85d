"""The users read model: what `GET /v1/users/me` answers from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from uuid import UUID

import psycopg

from eventmart.contracts import Envelope, Event
from projections.tracking import Handler

GROUP = "users-projection"
TOPICS = ["users.events"]

DDL = """
CREATE TABLE IF NOT EXISTS users_view (
    user_id uuid PRIMARY KEY,
    email text NOT NULL,
    display_name text NOT NULL,
    role text NOT NULL,
    created_at timestamptz NOT NULL,
    version bigint NOT NULL,
    disabled boolean NOT NULL DEFAULT false
);
ALTER TABLE users_view ADD COLUMN IF NOT EXISTS disabled boolean NOT NULL DEFAULT false;
ALTER TABLE users_view ADD COLUMN IF NOT EXISTS erased_at timestamptz;
ALTER TABLE users_view ALTER COLUMN email DROP NOT NULL;
ALTER TABLE users_view ALTER COLUMN display_name DROP NOT NULL;
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


def _later_change(cursor: psycopg.Cursor[Any], event: Envelope, column: str, value: Any) -> None:
    """Set one column, unless the row already shows a later event of the user."""
    cursor.execute(
        f"UPDATE users_view SET {column} = %s, version = %s WHERE user_id = %s AND version < %s",
        (value, event.aggregate_version, event.payload["user_id"], event.aggregate_version),
    )


def user_role_changed(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    _later_change(cursor, event, "role", event.payload["role"])


def user_disabled(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    _later_change(cursor, event, "disabled", True)


def user_enabled(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    _later_change(cursor, event, "disabled", False)


def user_erased(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """The row stays (the user's id, role and dates: their orders and reviews point at it)
    without their e-mail and name."""
    cursor.execute(
        "UPDATE users_view SET email = NULL, display_name = NULL, disabled = true, "
        "erased_at = %s, version = %s WHERE user_id = %s AND version < %s",
        (
            event.occurred_at,
            event.aggregate_version,
            event.payload["user_id"],
            event.aggregate_version,
        ),
    )


HANDLERS: dict[str, Handler] = {
    "user.registered": user_registered,
    "user.role_changed": user_role_changed,
    "user.disabled": user_disabled,
    "user.enabled": user_enabled,
    "user.erased": user_erased,
}


class Fold:
    """The handlers above as an in-memory fold, for bulk loads (projections.bulk): the same
    first-registration-wins insert, the same version guard on changes."""

    columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "users_view": (
            "user_id",
            "email",
            "display_name",
            "role",
            "created_at",
            "version",
            "disabled",
            "erased_at",
        )
    }

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}

    def add(self, event: Event) -> None:
        payload = event.payload
        row = self.users.get(payload["user_id"])
        if event.type == "user.registered":
            if row is None:  # ON CONFLICT (user_id) DO NOTHING
                self.users[payload["user_id"]] = {
                    "user_id": payload["user_id"],
                    "email": payload["email"],
                    "display_name": payload["display_name"],
                    "role": payload["role"],
                    "created_at": event.occurred_at,
                    "version": event.aggregate_version,
                    "disabled": False,
                    "erased_at": None,
                }
            return
        if row is None or row["version"] >= event.aggregate_version:
            return
        if event.type == "user.role_changed":
            row["role"] = payload["role"]
        elif event.type == "user.erased":
            row.update(email=None, display_name=None, disabled=True, erased_at=event.occurred_at)
        else:
            row["disabled"] = event.type == "user.disabled"
        row["version"] = event.aggregate_version

    def appended(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        return iter(())

    def folded(self) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        columns = self.columns["users_view"]
        yield "users_view", (tuple(row[c] for c in columns) for row in self.users.values())


def find_user(conn: psycopg.Connection[Any], user_id: str) -> dict[str, Any] | None:
    """The user's profile; None for an unknown or an erased user."""
    row = conn.execute(
        "SELECT user_id, email, display_name, role, created_at FROM users_view "
        "WHERE user_id = %s AND erased_at IS NULL",
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("user_id", "email", "display_name", "role", "created_at"), row, strict=True))


NEWER_EVENTS = (
    "SELECT originator_version, topic, state FROM users_events "
    "WHERE originator_id = %s AND originator_version > %s ORDER BY originator_version"
)


async def newer_user_events(
    conn: psycopg.AsyncConnection[Any], user_id: UUID, after: int
) -> list[tuple[int, str, bytes]]:
    """The user's stored events past version `after`, oldest first, from the Users event
    store itself (not users_view, which lags it by a trip through Kafka): what the API's
    user directory folds to know a token's subject now."""
    cursor = await conn.execute(NEWER_EVENTS, (user_id, after))
    return await cursor.fetchall()
