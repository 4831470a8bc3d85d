"""Operator actions taken in the console (redrive, skip): who, what, when and what came of it,
in a table of their own in the shared database, shown on the dead-letters page."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

DDL = """
CREATE TABLE IF NOT EXISTS console_operator_actions (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    operator_id uuid NOT NULL,
    operator_email text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    outcome text NOT NULL
)
"""
MAX_TEXT = 500  # an outcome quotes an error message: kept to a line


def install(conn: psycopg.Connection[Any]) -> None:
    """Create the table once, whatever the number of API processes starting together."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('console_operator_actions'))")
        conn.execute(DDL)


class OperatorActions:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self._installed = False

    def _connection(self) -> Any:
        if not self._installed:
            with self.pool.connection() as conn:
                install(conn)
            self._installed = True
        return self.pool.connection()

    def record(
        self, operator_id: UUID, operator_email: str, action: str, target: str, outcome: str
    ) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO console_operator_actions "
                "(operator_id, operator_email, action, target, outcome) VALUES (%s, %s, %s, %s, %s)",
                (operator_id, operator_email, action, target[:MAX_TEXT], outcome[:MAX_TEXT]),
            )

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                "SELECT at, operator_email, action, target, outcome "
                "FROM console_operator_actions ORDER BY id DESC LIMIT %s",
                (limit,),
            )
            return list(cursor.fetchall())
