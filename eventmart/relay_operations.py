"""What operators and readiness ask of the relay: the events it parked (the `relay` group
of `eventmart ops dlq` and GET /v1/ops/dlq), redriving or skipping them, and how far
behind the outboxes are (/readyz, /metrics, `eventmart ops relay`).

Operators never publish a parked event themselves: they mark it (`requested`) and
notify the relay, which acts on it in its aggregate's order (workers.relay_send). So a
redrive cannot overtake the events held behind it, nor race the relay's own sending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import psycopg
from eventsourcing.application import Application

from eventmart.settings import Settings

RELAY_GROUP = "relay"
NOTIFY_CHANNEL = "eventmart_events"  # the relay listens here for commits and for requests
REQUESTS_PREFIX = "relay_dead_letters:"  # + application: operators changed its dead letters

DEAD_LETTER_COLUMNS = (
    "application, notification_id, aggregate_id, aggregate_version, topic, event_type, "
    "event_at, held_behind, error_type, error_message, tries, status, requested, parked_at, "
    "resolved_at, error_trace"
)


def describe(row: tuple[Any, ...], *, full: bool = False) -> dict[str, Any]:
    """A relay dead letter in the shape of a consumer group's (offset = the notification id
    in its application's outbox), with the relay's own fields beside."""
    (
        application,
        notification_id,
        aggregate_id,
        aggregate_version,
        topic,
        event_type,
        event_at,
        held_behind,
        error_type,
        error_message,
        tries,
        status,
        requested,
        parked_at,
        resolved_at,
        error_trace,
    ) = row
    described: dict[str, Any] = {
        "offset": notification_id,
        "partition": 0,
        "key": str(aggregate_id),
        "original_topic": topic,
        "original_partition": None,
        "original_offset": None,
        "error_type": error_type,
        "error_message": error_message,
        "tries": tries,
        "parked_at": parked_at.isoformat(),
        "redriven": status != "parked",
        "application": application,
        "notification_id": notification_id,
        "aggregate_id": str(aggregate_id),
        "aggregate_version": aggregate_version,
        "event_type": event_type,
        "event_at": event_at.isoformat(),
        "held_behind": held_behind,
        "status": status,
        "requested": requested,
        "resolved_at": resolved_at.isoformat() if resolved_at else None,
    }
    if full:
        described["error_trace"] = error_trace
    return described


def dead_letter_summary(conn: psycopg.Connection[Any], *, messages: int = 0) -> dict[str, Any]:
    """Counts, and the newest `messages` dead letters (still parked ones first)."""
    counts = dict(
        conn.execute("SELECT status, count(*) FROM relay_dead_letters GROUP BY status").fetchall()
    )
    rows = conn.execute(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM relay_dead_letters "
        "ORDER BY status = 'parked' DESC, parked_at DESC, notification_id DESC LIMIT %s",
        (messages,),
    ).fetchall()
    return {
        "group": RELAY_GROUP,
        "parked": sum(counts.values()),
        "redriven": counts.get("redriven", 0),
        "skipped": counts.get("skipped", 0),
        "pending": counts.get("parked", 0),
        "messages": [describe(row) for row in rows],
    }


def dead_letter(
    conn: psycopg.Connection[Any], application: str, notification_id: int
) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM relay_dead_letters "
        "WHERE application = %s AND notification_id = %s",
        (application, notification_id),
    ).fetchone()
    return None if row is None else describe(row, full=True)


def request_redrive(
    conn: psycopg.Connection[Any],
    application: str | None = None,
    notification_id: int | None = None,
) -> int:
    """Ask the relay to send parked events again (all, one application's, or one); the
    events held behind each follow it. Returns how many were asked for."""
    return _request(conn, "redrive", application, notification_id)


def request_skip(conn: psycopg.Connection[Any], application: str, notification_id: int) -> int:
    """Ask the relay to give up on one parked event: it is never published, and the events
    of its aggregate held behind it are released. 0 if no such event is parked."""
    return _request(conn, "skip", application, notification_id)


def _request(
    conn: psycopg.Connection[Any], kind: str, application: str | None, notification_id: int | None
) -> int:
    with conn.transaction():
        rows = conn.execute(
            "UPDATE relay_dead_letters SET requested = %s WHERE status = 'parked' "
            "AND (%s::text IS NULL OR application = %s) "
            "AND (%s::bigint IS NULL OR notification_id = %s) RETURNING application",
            (kind, application, application, notification_id, notification_id),
        ).fetchall()
        for name in {row[0] for row in rows}:  # delivered when this commits
            conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, REQUESTS_PREFIX + name))
    return len(rows)


def requests_outstanding(conn: psycopg.Connection[Any]) -> int:
    """Requests the relay has not acted on yet."""
    row = conn.execute(
        "SELECT count(*) FROM relay_dead_letters WHERE status = 'parked' AND requested IS NOT NULL"
    ).fetchone()
    return int(row[0]) if row else 0


def relay_health(
    conn: psycopg.Connection[Any], applications: Iterable[Application[Any]], settings: Settings
) -> dict[str, Any]:
    """Is the relay alive (it beats every poll interval; silent for five of them, or five
    seconds, it is not), and how old is the oldest event not on the bus yet, waiting in an
    outbox or parked? Ready only if alive and that age is within relay_max_lag_seconds."""
    max_lag_seconds = settings.relay_max_lag_seconds
    alive_within_seconds = max(5.0, 5 * settings.relay_poll_seconds)
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    heartbeat = conn.execute(
        "SELECT alive_at, progress_at FROM relay_heartbeat WHERE relay = 'active'"
    ).fetchone()
    positions = {
        name: (position, updated_at)
        for name, position, updated_at in conn.execute(
            "SELECT application, notification_id, updated_at FROM relay_positions"
        ).fetchall()
    }
    parked = {
        name: (count, oldest)
        for name, count, oldest in conn.execute(
            "SELECT application, count(*), min(event_at) FROM relay_dead_letters "
            "WHERE status = 'parked' GROUP BY application"
        ).fetchall()
    }
    outboxes = [
        _outbox_health(conn, application, now, positions, parked) for application in applications
    ]
    ages = [o["oldest_age_seconds"] for o in outboxes if o["oldest_age_seconds"] is not None]
    oldest = max(ages, default=None)
    heartbeat_age = None if heartbeat is None else _seconds(now - heartbeat[0])
    alive = heartbeat_age is not None and heartbeat_age <= alive_within_seconds
    problem = None
    if not alive:
        problem = "the relay is not running" if heartbeat is None else "the relay stopped beating"
    elif oldest is not None and oldest > max_lag_seconds:
        problem = f"an event waits {oldest:.0f}s to be published (limit {max_lag_seconds:.0f}s)"
    return {
        "ready": problem is None,
        "problem": problem,
        "alive": alive,
        "heartbeat_age_seconds": heartbeat_age,
        "progress_age_seconds": None if heartbeat is None else _seconds(now - heartbeat[1]),
        "unpublished": sum(o["unpublished"] for o in outboxes),
        "parked": sum(o["parked"] for o in outboxes),
        "oldest_unpublished_age_seconds": oldest,
        "max_lag_seconds": max_lag_seconds,
        "outboxes": outboxes,
    }


def _outbox_health(
    conn: psycopg.Connection[Any],
    application: Application[Any],
    now: datetime,
    positions: Mapping[str, tuple[int, datetime]],
    parked: Mapping[str, tuple[int, datetime]],
) -> dict[str, Any]:
    # Through the application's own recorder: its outbox may be in its context's database,
    # while the relay's positions and dead letters are in the shared one (`conn`).
    newest = application.recorder.max_notification_id() or 0
    position, moved_at = positions.get(application.name, (0, None))
    unpublished = max(0, newest - position)
    parked_count, parked_oldest = parked.get(application.name, (0, None))
    waiting_since = [parked_oldest] if parked_oldest else []
    if unpublished:
        waiting_since.append(_first_unpublished_at(application, position) or moved_at or now)
    return {
        "application": application.name,
        "position": position,
        "unpublished": unpublished,
        "parked": parked_count,
        "oldest_age_seconds": _seconds(now - min(waiting_since)) if waiting_since else None,
    }


def _first_unpublished_at(application: Application[Any], position: int) -> datetime | None:
    """When the first event past the relay's position happened; None if it cannot be read
    (the relay will park it; until then the time its position last moved stands in)."""
    found = application.recorder.select_notifications(start=position + 1, limit=1)
    if not found:
        return None
    try:
        event = application.mapper.to_domain_event(found[0])
        timestamp: datetime = event.timestamp  # type: ignore[attr-defined]
        return timestamp
    except Exception:  # noqa: BLE001 - an unreadable event is the relay's to park
        return None


def _seconds(delta: Any) -> float:
    seconds: float = delta.total_seconds()
    return round(max(0.0, seconds), 3)
