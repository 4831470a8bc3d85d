"""A refusal waits for the consumer group to catch up (api.caught_up): where a topic ends
comes from the real broker, and the group's positions from its real table; a group that is
behind is waited for, a group that is caught up is not, and the wait is bounded."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from api.behavior import behavior_envelope
from api.caught_up import CaughtUp
from entrypoints.stack import Infrastructure
from eventmart.settings import Settings
from projections import tracking
from tests.support import wait_until

TOPIC = "behavior.events"


def test_where_a_topic_ends_is_the_broker_s(infrastructure: Infrastructure, settings: Settings):
    caught_up = CaughtUp(settings.bootstrap_servers, wait_seconds=1)

    async def publish_one_between() -> tuple[dict[int, int], dict[int, int]]:
        before = await caught_up.ends(TOPIC)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        await producer.start()
        try:
            view = behavior_envelope(
                "behavior.viewed",
                {"product_id": uuid.uuid4(), "source": "direct"},
                user_id=None,
                session_id="caught-up",
            )
            await producer.send_and_wait(TOPIC, view.to_bytes(), key=view.key(), partition=0)
        finally:
            await producer.stop()
        after = await caught_up.ends(TOPIC)
        await caught_up.stop()
        return before, after

    before, after = asyncio.run(publish_one_between())
    assert set(before) == set(after) and 0 in before
    assert after[0] == before[0] + 1
    assert all(after[p] == before[p] for p in before if p != 0)


def positions(db: psycopg.Connection, group: str, offsets: dict[int, int]) -> None:
    with db.cursor() as cursor:
        tracking.save_positions(cursor, group, {(TOPIC, p): o for p, o in offsets.items()})


def test_a_group_behind_is_waited_for_and_its_record_then_decides(
    settings: Settings, db: psycopg.Connection
):
    db.execute(tracking.TRACKING_DDL)
    group = f"caught-up-{uuid.uuid4().hex[:8]}"
    positions(db, group, {0: 5, 1: 2})
    recorded = threading.Event()  # what the group's effects would show
    caught_up = CaughtUp(settings.bootstrap_servers, wait_seconds=60)
    answer: list[bool] = []
    with psycopg.connect(settings.dsn, autocommit=True) as waiter:

        def wait() -> None:
            answer.append(caught_up.wait(waiter, group, TOPIC, {0: 7, 1: 2}, recorded.is_set))

        thread = threading.Thread(target=wait)
        thread.start()
        polling = "SELECT query FROM pg_stat_activity WHERE pid = %s"
        wait_until(
            lambda: (
                "consumer_positions"
                in (db.execute(polling, (waiter.info.backend_pid,)).fetchone() or [""])[0]
            ),
            timeout=10,
            message="the waiter to read the group's positions",
        )
        recorded.set()  # the effect is visible, but the group has not recorded reaching 7
        assert thread.is_alive(), "it waits for the positions, not for the effect"
        positions(db, group, {0: 7})
        thread.join(timeout=10)
    assert answer == [True]


def test_a_caught_up_group_is_not_waited_for_and_a_wait_is_bounded(
    settings: Settings, db: psycopg.Connection
):
    db.execute(tracking.TRACKING_DDL)
    group = f"caught-up-{uuid.uuid4().hex[:8]}"
    positions(db, group, {0: 3})
    never: Any = lambda: False  # the buyer never bought it
    patient = CaughtUp(settings.bootstrap_servers, wait_seconds=600)
    # Caught up (a partition that never had a message needs no position): answered at once;
    # a wait of ten minutes would fail the run's own timeout.
    assert patient.wait(db, group, TOPIC, {0: 3, 1: 0}, never) is False
    hasty = CaughtUp(settings.bootstrap_servers, wait_seconds=0.2)
    assert hasty.wait(db, group, TOPIC, {0: 4}, never) is False  # behind, gave up
