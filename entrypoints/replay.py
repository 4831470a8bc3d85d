"""Replay topics into a brand-new consumer group: the skeleton of a projection under
development, which must never move the offsets of the groups the stack runs.

The consumer is assigned every partition (no rebalance to wait for) and commits
offsets for its own group id only, after each batch; it resumes from that group's
committed offsets, or starts at offset zero (`from_beginning`) or at the end.
It stops once it has reached the end offsets seen at start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from eventmart.contracts import Envelope, MalformedEvent, parse
from eventmart.export import partitions_of


class LiveGroup(ValueError):
    """The group is one the stack runs; replaying into it would move its offsets."""


def live_groups() -> set[str]:
    from eventmart.wiring import worker_names

    return set(worker_names())


@dataclass
class ReplayResult:
    counts: Counter[str] = field(default_factory=Counter)
    read: int = 0
    malformed: int = 0
    committed: dict[TopicPartition, int] = field(default_factory=dict)


async def replay(
    bootstrap: str,
    group: str,
    topics: list[str],
    *,
    from_beginning: bool = False,
    handle: Callable[[Envelope], None] | None = None,
    on_progress: Callable[[int, int, Counter[str]], None] | None = None,
) -> ReplayResult:
    """Feed every event to `handle` (a new projection's code) and count them by type."""
    if group in live_groups() or group.endswith(".dlq"):
        raise LiveGroup(f"{group!r} is a live consumer group; replay into a new one")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    result = ReplayResult()
    try:
        partitions = await partitions_of(consumer, topics)
        consumer.assign(partitions)
        starts = await _start_offsets(consumer, partitions, from_beginning)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        total = sum(max(0, ends[tp] - starts[tp]) for tp in partitions)
        remaining = {tp for tp in partitions if starts[tp] < ends[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    result.read += 1
                    try:
                        envelope = parse(record.value)
                    except MalformedEvent:
                        result.malformed += 1
                        continue
                    result.counts[envelope.type] += 1
                    if handle is not None:
                        handle(envelope)
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if batches:
                await _commit(consumer, partitions, result)
            if on_progress is not None:
                on_progress(result.read, total, result.counts)
        await _commit(consumer, partitions, result)
    finally:
        await consumer.stop()
    return result


async def _start_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], from_beginning: bool
) -> dict[TopicPartition, int]:
    if from_beginning:
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        return starts
    ends = await consumer.end_offsets(partitions)
    starts = {}
    for tp in partitions:
        committed = await consumer.committed(tp)
        starts[tp] = committed if committed is not None else ends[tp]
    return starts


async def _commit(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], result: ReplayResult
) -> None:
    """Commit every partition's position (empty ones too) for this group only."""
    positions = {tp: await consumer.position(tp) for tp in partitions}
    await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in positions.items()})
    result.committed = positions
