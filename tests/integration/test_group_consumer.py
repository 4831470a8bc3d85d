"""The consumer-group runner's offset rule, on the real broker: an offset is committed
only after its batch is applied, and a batch in flight when partitions move or the
worker stops is finished and committed first, so no event is skipped and none is
handed to the next owner again."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from concurrent.futures import Future
from typing import Any

from eventmart.settings import Settings
from tests.integration.consumer_support import Loop, Recorder, publish_events
from tests.support import group_lag, wait_until
from workers.consumer import GroupConsumer, build_app


def begin_consumer(
    loop: Loop, settings: Settings, group: str, topic: str, recorder: Recorder
) -> Future[GroupConsumer]:
    """Starting a member returns once it has joined the group, which may need the other
    members to hand over first: the caller waits on the future when it can."""

    async def start() -> GroupConsumer:
        consumer = GroupConsumer(
            build_app(group, settings),
            group,
            [topic],
            recorder,
            bootstrap=settings.bootstrap_servers,
        )
        loop.services.append(consumer)
        await consumer.start()
        return consumer

    return asyncio.run_coroutine_threadsafe(start(), loop.loop)


def start_consumer(
    loop: Loop, settings: Settings, group: str, topic: str, recorder: Recorder
) -> GroupConsumer:
    return begin_consumer(loop, settings, group, topic, recorder).result(timeout=60)


def holding_member(
    loop: Loop, settings: Settings, topic: str, events: int
) -> tuple[str, Recorder, GroupConsumer]:
    """A new group's first member, holding its first batch of `events` published events."""
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    publish_events(settings, topic, events)
    recorder = Recorder(hold_first=True)
    consumer = start_consumer(loop, settings, group, topic, recorder)
    assert recorder.entered.wait(timeout=60), "the member never received a batch"
    return group, recorder, consumer


def test_a_worker_stopped_mid_batch_finishes_it_and_commits_exactly_past_it(
    settings: Settings, loop: Loop, topic: str
) -> None:
    group, recorder, consumer = holding_member(loop, settings, topic, 10)

    stopping = asyncio.run_coroutine_threadsafe(consumer.stop(), loop.loop)
    recorder.release.set()
    stopping.result(timeout=60)

    # Whatever was applied is committed and nothing else: the lag is what was not applied.
    applied = Counter(recorder.applied)
    assert applied and max(applied.values()) == 1
    assert group_lag(settings.bootstrap_servers, group, [topic]) == 10 - len(applied)

    # A successor starts exactly there: it applies the rest, and nothing a second time.
    successor = Recorder()
    start_consumer(loop, settings, group, topic, successor)
    wait_until(
        lambda: len(recorder.applied) + len(successor.applied) >= 10,
        timeout=60,
        message="the successor to apply the rest",
    )
    assert sorted(recorder.applied + successor.applied) == sorted(
        {(p, o) for p, o in recorder.applied + successor.applied}
    )
    wait_until(
        lambda: group_lag(settings.bootstrap_servers, group, [topic]) == 0,
        timeout=30,
        message="the successor to commit",
    )


def test_partitions_move_only_after_the_batch_in_flight_is_applied_and_committed(
    settings: Settings, loop: Loop, topic: str
) -> None:
    group, first, first_consumer = holding_member(loop, settings, topic, 20)

    # A second member joins while the first holds a batch: the rebalance has to wait for it.
    handing_over = threading.Event()
    hand_over = first_consumer._hand_over

    async def observed_hand_over(revoked: set[Any]) -> None:
        handing_over.set()
        await hand_over(revoked)

    first_consumer._hand_over = observed_hand_over  # type: ignore[method-assign]
    second = Recorder()
    joining = begin_consumer(loop, settings, group, topic, second)
    assert handing_over.wait(timeout=60), "the first member was never asked to hand over"
    first.release.set()
    joining.result(timeout=60)

    publish_events(settings, topic, 20)
    wait_until(
        lambda: len(first.applied) + len(second.applied) >= 40,
        timeout=90,
        message="both members to apply all 40 events",
    )
    wait_until(
        lambda: group_lag(settings.bootstrap_servers, group, [topic]) == 0,
        timeout=30,
        message="the group to commit everything",
    )
    every = first.applied + second.applied
    duplicates = [key for key, count in Counter(every).items() if count > 1]
    assert not duplicates, f"applied twice across the hand-over: {duplicates}"
    assert len(every) == 40
