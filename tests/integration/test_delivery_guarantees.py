"""Nothing lost, nothing twice: the relay survives SIGKILL, consumers drop copies,
and a poison message is parked while the partition keeps flowing."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
from fastapi.testclient import TestClient

from eventmart.contracts import Envelope, event_id_for
from eventmart.settings import Settings
from eventmart.wiring import build_applications
from projections.tracking import Delivery, apply_deliveries
from tests.support import (
    WorkerProcess,
    dead_letter_marks,
    parked_since,
    publish,
    read_envelopes,
    read_topic,
    wait_until,
)
from workers.relay import NOTIFY_CHANNEL, Outbox


def projected_count(db: psycopg.Connection, user_ids: list[str]) -> int:
    return db.execute(
        "SELECT count(*) FROM users_view WHERE user_id = ANY(%s::uuid[])", (user_ids,)
    ).fetchone()[0]


def test_relay_killed_at_random_points_loses_nothing(
    api: TestClient, settings: Settings, relay: WorkerProcess, db: psycopg.Connection
):
    applications = build_applications(settings, pool_size=4)
    registered: list[str] = []
    done = threading.Event()
    kills = 0

    def chaos() -> None:
        nonlocal kills
        rng = random.Random(7)
        while not done.is_set():
            done.wait(rng.uniform(0.2, 1.2))  # let it start and relay part of a batch
            relay.kill()
            kills += 1
            relay.start()

    def register(n: int) -> str:
        return str(
            applications.users.register_user(
                f"relay-{n}-{uuid.uuid4().hex[:8]}@example.com", "not-a-real-hash", f"User {n}"
            )
        )

    killer = threading.Thread(target=chaos)
    killer.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            registered = list(pool.map(register, range(500)))
    finally:
        done.set()
        killer.join()
    if not relay.running:
        relay.start()
    assert kills >= 2, "the relay must actually have been killed during the registrations"

    wanted = set(registered)
    on_topic = wait_until(
        lambda: (
            (
                found := [
                    e
                    for e in read_envelopes(settings.bootstrap_servers, "users.events")
                    if str(e.aggregate_id) in wanted
                ]
            )
            and {str(e.aggregate_id) for e in found} == wanted
            and found
        ),
        timeout=90,
        interval=0.5,
        message="all 500 user.registered events on users.events",
    )
    # Every public event stored for these users is on the topic, byte-for-byte identity.
    stored = {
        (str(row[0]), row[1])
        for row in db.execute(
            "SELECT originator_id, originator_version FROM users_events "
            "WHERE originator_id = ANY(%s::uuid[])",
            (registered,),
        )
    }
    assert stored == {(str(e.aggregate_id), e.aggregate_version) for e in on_topic}
    assert all(e.event_id == event_id_for(e.aggregate_id, e.aggregate_version) for e in on_topic)

    wait_until(
        lambda: projected_count(db, registered) == 500,
        timeout=60,
        message="the read model to have all 500 users",
    )
    applied = db.execute(
        "SELECT count(*), count(DISTINCT aggregate_id) FROM applied_events "
        "WHERE consumer_group = 'users-projection' AND aggregate_id = ANY(%s::uuid[])",
        (registered,),
    ).fetchone()
    assert applied == (500, 500)
    for application in applications.all():
        application.close()


def user_registered(user_id: uuid.UUID, display_name: str) -> Envelope:
    event_id = event_id_for(user_id, 1)
    return Envelope(
        event_id=event_id,
        type="user.registered",
        schema_version=1,
        aggregate_id=user_id,
        aggregate_version=1,
        occurred_at=datetime.now(UTC),
        correlation_id=event_id,
        payload={
            "user_id": str(user_id),
            "email": f"{user_id.hex[:10]}@example.com",
            "display_name": display_name,
            "role": "customer",
        },
    )


def test_the_same_event_delivered_twice_changes_the_read_model_once(
    api: TestClient, settings: Settings, db: psycopg.Connection
):
    user_id = uuid.uuid4()
    original = user_registered(user_id, "First Copy")
    # The exact copy (a redelivery), and a copy with the same identity at a later offset
    # whose body differs: dedup is by (aggregate_id, aggregate_version), not by offset.
    impostor = user_registered(user_id, "Second Copy")
    publish(
        settings.bootstrap_servers,
        "users.events",
        [
            (original.key(), original.to_bytes()),
            (original.key(), original.to_bytes()),
            (impostor.key(), impostor.to_bytes()),
        ],
    )
    marker = user_registered(uuid.uuid4(), "Marker")  # same partition? no matter: wait for both
    publish(settings.bootstrap_servers, "users.events", [(marker.key(), marker.to_bytes())])
    wait_until(
        lambda: projected_count(db, [str(user_id), str(marker.aggregate_id)]) == 2,
        timeout=30,
        message="the projection to apply the events",
    )
    wait_until(
        lambda: (
            db.execute(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_positions WHERE consumer_group = "
                "'users-projection' AND topic = 'users.events'"
            ).fetchone()[0]
            >= _topic_size(settings)
        ),
        timeout=30,
        message="the projection to have consumed every copy",
    )
    rows = db.execute(
        "SELECT display_name FROM users_view WHERE user_id = %s", (user_id,)
    ).fetchall()
    assert rows == [("First Copy",)]
    assert (
        db.execute(
            "SELECT count(*) FROM applied_events WHERE consumer_group = 'users-projection' "
            "AND aggregate_id = %s",
            (user_id,),
        ).fetchone()[0]
        == 1
    )


def test_a_commit_wakes_the_relay_for_the_outbox_it_wrote(settings: Settings, relay: WorkerProcess):
    """The relay reads only the outboxes a wake-up names: the trigger's payload must be the
    outbox's table, or every event would wait for the relay's poll interval instead."""
    applications = build_applications(settings, pool_size=1)
    outboxes = {Outbox(application, "any").table for application in applications.all()}
    try:
        with psycopg.connect(settings.dsn, autocommit=True) as listener:
            listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            applications.users.register_user(
                f"wake-{uuid.uuid4().hex[:8]}@example.com", "x", "Wake"
            )
            wanted = Outbox(applications.users, "users.events").table
            # Other tests' workers share this database and may commit to their own outboxes
            # meanwhile: read wake-ups until ours arrives, then check every one names an outbox.
            named: set[str] = set()
            deadline = time.monotonic() + 10
            while wanted not in named and time.monotonic() < deadline:
                remaining = max(0.0, deadline - time.monotonic())
                named |= {
                    notify.payload for notify in listener.notifies(timeout=remaining, stop_after=1)
                }
    finally:
        for application in applications.all():
            application.close()
    assert wanted in named
    assert named <= outboxes


def test_a_batch_applies_each_event_once_whatever_copies_it_holds(db: psycopg.Connection):
    """The batch path claims every identity in one statement: a copy inside the same batch,
    or one already applied by an earlier batch, must not reach the handler again."""
    first, second = user_registered(uuid.uuid4(), "One"), user_registered(uuid.uuid4(), "Two")
    seen: list[str] = []

    def record(cursor: psycopg.Cursor, envelope: Envelope) -> None:
        seen.append(envelope.payload["display_name"])
        cursor.execute("SELECT 1")  # a statement in the batch's pipeline, as handlers write

    handlers = {"user.registered": record}
    group = f"batch-claims-{uuid.uuid4().hex[:8]}"
    batch = [
        Delivery("users.events", 0, offset, envelope)
        for offset, envelope in enumerate([first, first, second, first])
    ]
    assert apply_deliveries(db, group, handlers, batch) == 2
    assert seen == ["One", "Two"]
    again = [Delivery("users.events", 1, 0, second), Delivery("users.events", 0, 9, first)]
    assert apply_deliveries(db, group, handlers, again) == 0
    assert seen == ["One", "Two"]
    assert db.execute(
        "SELECT topic, partition, next_offset FROM consumer_positions "
        "WHERE consumer_group = %s ORDER BY partition",
        (group,),
    ).fetchall() == [("users.events", 0, 10), ("users.events", 1, 1)]


def _topic_size(settings: Settings) -> int:
    return len(read_topic(settings.bootstrap_servers, "users.events"))


def test_a_poison_message_is_parked_and_the_partition_keeps_flowing(
    api: TestClient, settings: Settings, db: psycopg.Connection
):
    marks = dead_letter_marks(settings.bootstrap_servers)
    key = uuid.uuid4()
    poison = b'{"type": "user.registered", "this is": "not an envelope"'
    later = user_registered(key, "After The Poison")  # same key, so the same partition
    publish(
        settings.bootstrap_servers,
        "users.events",
        [(str(key).encode(), poison), (later.key(), later.to_bytes())],
    )

    parked = wait_until(
        lambda: [
            r
            for r in read_topic(settings.bootstrap_servers, "users-projection.dlq")
            if r.value == poison
        ],
        timeout=30,
        message="the poison message on users-projection.dlq",
    )
    headers = dict(parked[0].headers)
    assert headers["x-error-type"] == b"MalformedEvent"
    assert headers["x-original-topic"] == b"users.events"
    assert headers["x-consumer-group"] == b"users-projection"
    assert int(headers["x-original-offset"]) >= 0
    wait_until(
        lambda: projected_count(db, [str(key)]) == 1,
        timeout=30,
        message="the event after the poison message to be projected",
    )
    # users.events has one consumer group: its dead letters are the poison, and nothing else.
    parked_now = parked_since(settings.bootstrap_servers, marks)
    assert [r.value for r in parked_now if r.topic == "users-projection.dlq"] == [poison]
