"""One application's outbox as the relay works through it: where it has got to, which
events it parked, and which aggregates wait behind them.

An event the relay cannot encode or publish after `relay_max_tries` attempts is parked
in `relay_dead_letters` and the relay moves past it. Consumers must never see version
n+1 of an aggregate without version n (a saga participant that has applied n+1 treats
n as a copy and drops it), so every later event of that aggregate is parked too, held
behind it, until an operator redrives the parked one (after a fix) or skips it; then
the held ones follow in order. Other aggregates, and other applications, keep flowing.

Parked rows and the position past them are written in one transaction, after the
broker acknowledged everything sent before them: a relay killed at any point parks
and sends again from the last saved position, and nothing is parked twice.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from eventmart.contracts import envelope_from_domain
from eventmart.wiring import events_table

DEAD_LETTERS_DDL = """
CREATE TABLE IF NOT EXISTS relay_dead_letters (
    application text NOT NULL,
    notification_id bigint NOT NULL,
    aggregate_id uuid NOT NULL,
    aggregate_version bigint NOT NULL,
    topic text NOT NULL,
    event_type text NOT NULL,
    event_at timestamptz NOT NULL,
    held_behind bigint,
    error_type text,
    error_message text,
    error_trace text,
    tries integer NOT NULL,
    status text NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'redriven', 'skipped')),
    requested text CHECK (requested IN ('redrive', 'skip')),
    parked_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (application, notification_id)
);
CREATE INDEX IF NOT EXISTS relay_dead_letters_parked
    ON relay_dead_letters (application, notification_id) WHERE status = 'parked';
"""

PARK = """
INSERT INTO relay_dead_letters (application, notification_id, aggregate_id, aggregate_version,
    topic, event_type, event_at, held_behind, error_type, error_message, error_trace, tries)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (application, notification_id) DO NOTHING
"""
SAVE_POSITION = """
INSERT INTO relay_positions (application, notification_id) VALUES (%s, %s)
ON CONFLICT (application) DO UPDATE SET notification_id = EXCLUDED.notification_id,
    updated_at = now() WHERE relay_positions.notification_id < EXCLUDED.notification_id
"""


@dataclass(frozen=True)
class Encoded:
    """A stored event as the relay sends it: key and value, or None for a private event
    (such as a uniqueness claim) that never leaves its context; or why it could not be."""

    notification_id: int
    aggregate_id: UUID
    aggregate_version: int
    event_type: str
    occurred_at: datetime | None = None
    key: bytes | None = None
    value: bytes | None = None
    error: Exception | None = None
    traceparent: str | None = None  # the stored cause: the publish span's parent
    event_id: str | None = None


def encode(application: Application[Any], notification: Notification) -> Encoded:
    """The envelope of a stored event; any failure (its state unreadable, a payload that
    breaks its contract, a number JSON cannot carry) is the event's, recorded, not raised."""
    identity: dict[str, Any] = {
        "notification_id": notification.id,
        "aggregate_id": UUID(str(notification.originator_id)),
        "aggregate_version": notification.originator_version,
        "event_type": notification.topic,
    }
    occurred_at = None
    try:
        domain_event = application.mapper.to_domain_event(notification)
        occurred_at = domain_event.timestamp  # type: ignore[attr-defined]
        envelope = envelope_from_domain(domain_event)
        if envelope is None:
            return Encoded(**identity, occurred_at=occurred_at)
        return Encoded(
            **identity,
            occurred_at=occurred_at,
            key=envelope.key(),
            value=envelope.to_bytes(),
            traceparent=envelope.traceparent,
            event_id=str(envelope.event_id),
        )
    except Exception as error:  # noqa: BLE001 - the event's fault: tried again, then parked
        return Encoded(**identity, occurred_at=occurred_at, error=error)


@dataclass(frozen=True)
class Parked:
    """A dead letter about to be written: failed itself, or held behind one that did."""

    event: Encoded
    tries: int
    error: Exception | None = None
    held_behind: int | None = None

    def row(self, application: str, topic: str) -> tuple[Any, ...]:
        event, error = self.event, self.error
        return (
            application,
            event.notification_id,
            event.aggregate_id,
            event.aggregate_version,
            topic,
            event.event_type,
            event.occurred_at or datetime.now(UTC),
            self.held_behind,
            type(error).__name__ if error else "HeldBehind",
            str(error)[:2000] if error else f"waits behind notification {self.held_behind}",
            "".join(traceback.format_exception(error))[-4000:] if error else None,
            self.tries,
        )


@dataclass
class Plan:
    """What to do with one batch: send these in order, park those, and (if an event failed
    with tries left) stop before it and try it again later."""

    sends: list[Encoded] = field(default_factory=list)
    parks: list[Parked] = field(default_factory=list)
    retry: Encoded | None = None
    retry_tries: int = 0


def plan(
    batch: Iterable[Encoded],
    blocked: dict[UUID, int],
    tries: dict[int, int],
    publish_errors: dict[int, Exception],
    max_tries: int,
) -> Plan:
    """Decide a batch (a pure function: the relay's ordering rules in one place).

    `blocked`: aggregate -> the parked notification its later events wait behind;
    `tries`: failed attempts so far per notification; `publish_errors`: the broker's last
    refusal of a notification, if it refused one."""
    blocked = dict(blocked)
    decided = Plan()
    for event in batch:
        if event.aggregate_id in blocked:
            held = Parked(event, tries=0, held_behind=blocked[event.aggregate_id])
            decided.parks.append(held)
            continue
        failed_before = tries.get(event.notification_id, 0)
        error = event.error
        if error is not None:
            attempts = failed_before + 1
            if attempts < max_tries:
                decided.retry, decided.retry_tries = event, attempts
                break
        elif event.notification_id in publish_errors and failed_before >= max_tries:
            error, attempts = publish_errors[event.notification_id], failed_before
        if error is not None:
            decided.parks.append(Parked(event, tries=attempts, error=error))
            blocked[event.aggregate_id] = event.notification_id
        elif event.value is not None:
            decided.sends.append(event)
    return decided


@dataclass
class Outbox:
    """One application's notification log and the relay's state in it."""

    application: Application[Any]
    topic: str
    position: int = 0
    blocked: dict[UUID, int] = field(default_factory=dict)
    tries: dict[int, int] = field(default_factory=dict)
    publish_errors: dict[int, Exception] = field(default_factory=dict)
    encoder: Callable[[Application[Any], Notification], Encoded] = encode
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    requests_pending: bool = True  # operators' redrive/skip requests to look at
    progress_at: float = 0.0  # time.monotonic() of the last pass that ended without error

    @property
    def name(self) -> str:
        return self.application.name

    @property
    def table(self) -> str:
        """Its events table, as the wake-up trigger names it."""
        return events_table(self.application)

    def load(self, conn: psycopg.Connection[Any]) -> None:
        """Position and parked aggregates as stored (at start, and after an outage)."""
        row = conn.execute(
            "SELECT notification_id FROM relay_positions WHERE application = %s", (self.name,)
        ).fetchone()
        self.position = row[0] if row else 0
        self.reload_blocked(conn)
        self.tries.clear()
        self.publish_errors.clear()
        self.requests_pending = True

    def pending(self, limit: int) -> list[Encoded]:
        """The next events past the position, encoded."""
        notifications = self.application.recorder.select_notifications(
            start=self.position + 1, limit=limit
        )
        return [self.encoder(self.application, notification) for notification in notifications]

    def one(self, notification_id: int) -> Encoded | None:
        """One stored event, encoded again (a redrive after a fix)."""
        found = self.application.recorder.select_notifications(
            start=notification_id, limit=1, stop=notification_id
        )
        return self.encoder(self.application, found[0]) if found else None

    def commit(self, conn: psycopg.Connection[Any], parks: list[Parked], position: int) -> None:
        """Park these and move past them, in one transaction; then remember what they block."""
        with conn.transaction():
            if parks:
                with conn.cursor() as cursor:
                    cursor.executemany(PARK, [park.row(self.name, self.topic) for park in parks])
            if position > self.position:
                conn.execute(SAVE_POSITION, (self.name, position))
        for park in parks:
            if park.held_behind is None:
                self.blocked[park.event.aggregate_id] = park.event.notification_id
        self.position = max(self.position, position)
        for notification_id in [n for n in self.tries if n <= self.position]:
            self.tries.pop(notification_id, None)
            self.publish_errors.pop(notification_id, None)

    # Operators' requests (eventmart.relay_operations sets them; the relay acts on them).

    def parked_chains(self, conn: psycopg.Connection[Any]) -> list[list[ParkedRow]]:
        """Parked events per aggregate, oldest first: each list is one aggregate's queue."""
        rows = conn.execute(
            "SELECT notification_id, aggregate_id, held_behind, requested, tries "
            "FROM relay_dead_letters WHERE application = %s AND status = 'parked' "
            "ORDER BY notification_id",
            (self.name,),
        ).fetchall()
        chains: dict[UUID, list[ParkedRow]] = {}
        for row in rows:
            chains.setdefault(row[1], []).append(ParkedRow(*row))
        return list(chains.values())

    def resolve(self, conn: psycopg.Connection[Any], notification_id: int, status: str) -> None:
        conn.execute(
            "UPDATE relay_dead_letters SET status = %s, requested = NULL, resolved_at = now() "
            "WHERE application = %s AND notification_id = %s",
            (status, self.name, notification_id),
        )

    def failed_again(
        self, conn: psycopg.Connection[Any], notification_id: int, error: Exception
    ) -> None:
        """A redrive that failed: the event stays parked, now as the head of its queue."""
        conn.execute(
            "UPDATE relay_dead_letters SET tries = tries + 1, held_behind = NULL, requested = "
            "NULL, error_type = %s, error_message = %s, error_trace = %s "
            "WHERE application = %s AND notification_id = %s",
            (
                type(error).__name__,
                str(error)[:2000],
                "".join(traceback.format_exception(error))[-4000:],
                self.name,
                notification_id,
            ),
        )

    def forget_requests(self, conn: psycopg.Connection[Any], notification_ids: list[int]) -> None:
        """Redrive requests on events still waiting behind an unresolved one: they follow
        it by themselves once it is resolved."""
        if notification_ids:
            conn.execute(
                "UPDATE relay_dead_letters SET requested = NULL WHERE application = %s "
                "AND notification_id = ANY(%s) AND requested = 'redrive'",
                (self.name, notification_ids),
            )

    def reload_blocked(self, conn: psycopg.Connection[Any]) -> None:
        self.blocked = dict(
            conn.execute(
                "SELECT aggregate_id, min(notification_id) FROM relay_dead_letters "
                "WHERE application = %s AND status = 'parked' GROUP BY aggregate_id",
                (self.name,),
            ).fetchall()
        )


@dataclass(frozen=True)
class ParkedRow:
    notification_id: int
    aggregate_id: UUID
    held_behind: int | None
    requested: str | None
    tries: int

    @property
    def due(self) -> bool:
        """Whether the relay sends it when it is first in its aggregate's queue: asked
        for, or held behind one that is resolved now (then it follows by itself)."""
        return self.requested == "redrive" or self.held_behind is not None
