"""Before a command refuses on what a consumer group has not read yet, let it catch up.

The reviews context decides "verified buyer" from its own record of deliveries, which its
`purchases` group builds from `orders.events`. A client that sees its order `delivered`
in the orders read model and reviews at once may be a few milliseconds ahead of that
group: refusing then would be the platform's lag, not the client's fault. So a refusal
first asks the broker where the topic ends now and waits (briefly, bounded) until the
group's recorded positions reach it; then the group's record is the truth. A caller who
never bought the product is refused at once when the group is already caught up, which it
nearly always is.

The group's positions are the ones it commits with its effects (projections.tracking:
`consumer_positions`, one transaction with the rows), so "reached the end" means "its
effects up to there are visible".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("eventmart.api.caught_up")

POLL_SECONDS = 0.02


class CaughtUp:
    def __init__(self, bootstrap: str, wait_seconds: float) -> None:
        self.bootstrap = bootstrap
        self.wait_seconds = wait_seconds
        self._consumer: AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()

    async def ends(self, topic: str) -> dict[int, int]:
        """Where each partition of `topic` ends now (the next offset to be written)."""
        consumer = await self._started()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in sorted(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}

    async def _started(self) -> AIOKafkaConsumer:
        async with self._starting:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    enable_auto_commit=False,
                    request_timeout_ms=5000,
                )
                try:
                    await consumer.start()
                except BaseException:
                    await consumer.stop()
                    raise
                self._consumer = consumer
            return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    def wait(
        self,
        conn: psycopg.Connection[Any],
        group: str,
        topic: str,
        ends: dict[int, int],
        found: Callable[[], bool],
    ) -> bool:
        """`found()` once `group` has read `topic` up to `ends` (or `wait_seconds` passed);
        blocking: call it from a request's thread."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            rows = conn.execute(
                "SELECT partition, next_offset FROM consumer_positions "
                "WHERE consumer_group = %s AND topic = %s",
                (group, topic),
            ).fetchall()
            reached = {int(partition): int(offset) for partition, offset in rows}
            behind = {p: end for p, end in ends.items() if end > reached.get(p, 0)}
            if not behind or time.monotonic() >= deadline:
                if behind:
                    log.warning(
                        "%s still behind on %s after %.1fs", group, topic, self.wait_seconds
                    )
                return found()
            time.sleep(POLL_SECONDS)


def found_or_caught_up(
    caught_up: CaughtUp | None,
    conn: psycopg.Connection[Any],
    group: str,
    topic: str,
    found: Callable[[], bool],
) -> bool:
    """`found()`, asked again once the group caught up if it said no; from a request's
    thread (FastAPI's: the broker is asked on the event loop). Kafka away: `found()` as the
    group has it."""
    if found():
        return True
    if caught_up is None or caught_up.wait_seconds <= 0:
        return False
    from anyio.from_thread import run

    try:
        ends = run(caught_up.ends, topic)
    except (KafkaError, OSError) as error:
        log.warning(
            "where %s ends is unknown (%s): answering from %s as it is", topic, error, group
        )
        return False
    return caught_up.wait(conn, group, topic, ends, found)
