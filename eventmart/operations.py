"""What operators ask of the broker: how far behind each consumer group is, what it parked
on its dead-letter topic, and putting parked messages back where they came from.

Redrive position: PostgreSQL table `dlq_redrives` holds, per group and DLQ partition, the
first DLQ offset not yet redriven. A redrive locks that row (FOR UPDATE), so concurrent
redrives from several API replicas or CLIs queue instead of publishing the same message
twice, then publishes and moves the row in the same transaction. Not Kafka transactions
with a committed offset: their commit markers occupy offsets on the original topics,
so Faust groups (committing last record + 1) would report a lag of 1 forever. A crash
between publishing and committing the row redrives those messages again on the next run
(at least once); every consumer already ignores an event id it has handled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

log = logging.getLogger("eventmart.operations")

REDRIVEN_FROM = "x-redriven-from"
COORDINATOR_PATIENCE_SECONDS = 10.0


def dead_letter_topic(group: str) -> str:
    return f"{group}.dlq"


class UnknownGroup(LookupError):
    """The consumer group is not in the topic catalogue."""


@asynccontextmanager
async def _clients(bootstrap: str) -> AsyncIterator[tuple[AIOKafkaAdminClient, AIOKafkaConsumer]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    try:
        await consumer.start()
        try:
            yield admin, consumer
        finally:
            await consumer.stop()
    finally:
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    def known() -> list[TopicPartition]:
        return [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or [])
        ]

    found = known()
    if len(found) == 0 or {tp.topic for tp in found} != set(topics):
        await consumer._client.force_metadata_update()
        found = known()
    return found


async def _retrying(call: Callable[[], Awaitable[Any]]) -> Any:
    """Retry retriable broker errors briefly: a new group's coordinator (or a fresh broker's
    offsets topic) takes a moment to appear."""
    deadline = time.monotonic() + COORDINATOR_PATIENCE_SECONDS
    while True:
        try:
            return await call()
        except KafkaError as error:
            if not error.retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _committed(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The group's committed offset per partition; -1 where it has committed nothing."""
    if not partitions:
        return {}
    offsets = await _retrying(
        lambda: admin.list_consumer_group_offsets(group, partitions=partitions)
    )
    return {tp: offsets[tp].offset if tp in offsets else -1 for tp in partitions}


async def _members(admin: AIOKafkaAdminClient, groups: list[str]) -> dict[str, int]:
    """Live members per group, one DescribeGroups request each: aiokafka 0.14 misdecodes a
    response describing several groups."""
    counts = dict.fromkeys(groups, 0)
    for group in groups:
        for response in await _retrying(partial(admin.describe_consumer_groups, [group])):
            counts[group] = sum(len(description[5]) for description in response.groups)
    return counts


async def consumer_group_members(
    bootstrap: str, groups: list[str]
) -> dict[str, list[dict[str, str]]]:
    """Each group's live members: the member id, and the client id and host of the process
    hosting it (one DescribeGroups request per group, as _members says why)."""
    found: dict[str, list[dict[str, str]]] = {group: [] for group in groups}
    async with _clients(bootstrap) as (admin, _):
        for group in groups:
            for response in await _retrying(partial(admin.describe_consumer_groups, [group])):
                for description in response.groups:
                    found[group] += [
                        {"member_id": member[0], "client_id": member[1], "host": member[2]}
                        for member in description[5]
                    ]
    return found


async def consumer_group_lag(bootstrap: str, groups: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One row per group and partition: committed offset, end offset, lag and live members."""
    async with _clients(bootstrap) as (admin, consumer):
        topics = sorted({topic for group_topics in groups.values() for topic in group_topics})
        partitions = await _partitions(consumer, topics)
        ends = await consumer.end_offsets(partitions) if partitions else {}
        beginnings = await consumer.beginning_offsets(partitions) if partitions else {}
        members = await _members(admin, list(groups))
        rows = []
        for group, group_topics in groups.items():
            mine = [tp for tp in partitions if tp.topic in group_topics]
            committed = await _committed(admin, group, mine)
            for tp in mine:
                position = committed[tp] if committed[tp] >= 0 else beginnings[tp]
                rows.append(
                    {
                        "group": group,
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "committed": committed[tp],
                        "end": ends[tp],
                        "lag": max(0, ends[tp] - position),
                        "members": members[group],
                    }
                )
        return rows


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def describe_dead_letter(record: Any, redriven_below: int, *, full: bool = False) -> dict[str, Any]:
    """A parked record as operators read it: where it came from and why it failed."""
    headers = {name: value for name, value in (record.headers or [])}

    def header(name: str) -> str | None:
        return _text(headers.get(name))

    def number(name: str) -> int | None:
        value = header(name)
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    described: dict[str, Any] = {
        "offset": record.offset,
        "partition": record.partition,
        "key": _text(record.key),
        "original_topic": header("x-original-topic"),
        "original_partition": number("x-original-partition"),
        "original_offset": number("x-original-offset"),
        "error_type": header("x-error-type"),
        "error_message": header("x-error-message"),
        "tries": number("x-tries"),
        "parked_at": header("x-parked-at"),
        "redriven": record.offset < redriven_below,
    }
    if full:
        described["error_trace"] = header("x-error-trace")
        described["value"] = _text(record.value)
    return described


async def _read(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int) -> list[Any]:
    """The records of one partition in [start, end), read without a consumer group."""
    if start >= end:
        return []
    consumer.assign([tp])
    consumer.seek(tp, start)
    records: list[Any] = []
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
        records.extend(record for record in batch.get(tp, []) if record.offset < end)
    return records


REDRIVES_TABLE = """
CREATE TABLE IF NOT EXISTS dlq_redrives (
    consumer_group text NOT NULL,
    dlq_partition integer NOT NULL,
    next_offset bigint NOT NULL,
    redriven_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, dlq_partition)
)"""


async def _connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        await conn.execute(REDRIVES_TABLE)
    except psycopg.errors.UniqueViolation:
        pass  # another process created it at the same moment
    return conn


async def _redriven_to(conn: psycopg.AsyncConnection[Any], group: str) -> dict[int, int]:
    cursor = await conn.execute(
        "SELECT dlq_partition, next_offset FROM dlq_redrives WHERE consumer_group = %s", (group,)
    )
    return {partition: offset for partition, offset in await cursor.fetchall()}


async def _dlq_state(
    consumer: AIOKafkaConsumer, conn: psycopg.AsyncConnection[Any], group: str
) -> list[tuple[TopicPartition, int, int, int]]:
    """(partition, first retained, end, redriven up to) for each DLQ partition."""
    partitions = await _partitions(consumer, [dead_letter_topic(group)])
    if not partitions:
        return []
    beginnings = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    redriven = await _redriven_to(conn, group)
    return [
        (
            tp,
            beginnings[tp],
            ends[tp],
            min(ends[tp], max(redriven.get(tp.partition, 0), beginnings[tp])),
        )
        for tp in partitions
    ]


async def dead_letter_summaries(
    bootstrap: str, dsn: str, groups: list[str], *, messages: int = 0
) -> list[dict[str, Any]]:
    """Per group: parked (retained), redriven, pending, and the newest `messages` records."""
    summaries = []
    async with _clients(bootstrap) as (_, consumer), await _connect(dsn) as conn:
        for group in groups:
            summary: dict[str, Any] = {
                "group": group,
                "parked": 0,
                "redriven": 0,
                "pending": 0,
                "messages": [],
            }
            for tp, first, end, redriven_to in await _dlq_state(consumer, conn, group):
                summary["parked"] += end - first
                summary["redriven"] += redriven_to - first
                summary["pending"] += end - redriven_to
                if messages:
                    records = await _read(consumer, tp, max(first, end - messages), end)
                    summary["messages"] += [describe_dead_letter(r, redriven_to) for r in records]
            summaries.append(summary)
    return summaries


async def dead_letter(
    bootstrap: str, dsn: str, group: str, offset: int, partition: int = 0
) -> dict[str, Any] | None:
    """One parked record with its value and stack trace, or None if it is not retained."""
    async with _clients(bootstrap) as (_, consumer), await _connect(dsn) as conn:
        for tp, first, end, redriven_to in await _dlq_state(consumer, conn, group):
            if tp.partition == partition and first <= offset < end:
                records = await _read(consumer, tp, offset, offset + 1)
                if records:
                    return describe_dead_letter(records[0], redriven_to, full=True)
    return None


async def redrive_dead_letters(bootstrap: str, dsn: str, group: str) -> int:
    """Re-publish the group's not-yet-redriven parked records to their original topics."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        async with _clients(bootstrap) as (_, consumer), await _connect(dsn) as conn:
            redriven = 0
            for tp in await _partitions(consumer, [dead_letter_topic(group)]):
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO dlq_redrives (consumer_group, dlq_partition, next_offset) "
                        "VALUES (%s, %s, 0) ON CONFLICT DO NOTHING",
                        (group, tp.partition),
                    )
                    await conn.execute(
                        "SELECT 1 FROM dlq_redrives WHERE consumer_group = %s AND "
                        "dlq_partition = %s FOR UPDATE",
                        (group, tp.partition),
                    )
                    [(_, _, end, redriven_to)] = [
                        state for state in await _dlq_state(consumer, conn, group) if state[0] == tp
                    ]
                    redriven += await _republish(
                        producer, await _read(consumer, tp, redriven_to, end)
                    )
                    await conn.execute(
                        "UPDATE dlq_redrives SET next_offset = %s, redriven_at = now() "
                        "WHERE consumer_group = %s AND dlq_partition = %s",
                        (end, group, tp.partition),
                    )
            return redriven
    finally:
        await producer.stop()


async def _republish(producer: AIOKafkaProducer, records: list[Any]) -> int:
    """Send each record to its x-original-topic with its key and value; wait for every ack."""
    at = datetime.now(UTC).isoformat().encode()
    acks = []
    for record in records:
        origin = dict(record.headers or []).get("x-original-topic")
        if origin is None:
            log.warning(
                "%s[%d]@%d has no x-original-topic; left parked",
                record.topic,
                record.partition,
                record.offset,
            )
            continue
        source = f"{record.topic}:{record.partition}:{record.offset}".encode()
        acks.append(
            await producer.send(
                origin.decode(),
                key=record.key,
                value=record.value,
                headers=[(REDRIVEN_FROM, source), ("x-redriven-at", at)],
            )
        )
    for ack in acks:
        await ack
    return len(acks)
