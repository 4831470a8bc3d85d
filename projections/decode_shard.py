"""Decoding a share of a big log in a process of its own, for a rebuild's bulk load.

Validating envelopes is most of a bulk load's CPU, and one Python process uses one core.
The rebuild (projections.rebuild) starts one of these per extra core, each reading some
of the partitions from a given offset up to a target; each sends back, on its stdout,
frames of what `contracts.Decoder` made of its records. The rebuild folds them in the
order each partition gave them, exactly as if it had decoded them itself: deduplication,
the fold and every write stay in the rebuild's process.

    python -m projections.decode_shard '<json: bootstrap, types, [[topic, partition, start, target], ...]>'

A frame is a 4-byte little-endian length, then a pickle of
`(reached, read, malformed, events)`: the next offset reached per (topic, partition), how
many records and how many malformed ones since the last frame, and the decoded events
(`contracts.Event`, types the model ignores left out). The last frame has `events` None.
"""

from __future__ import annotations

import asyncio
import gc
import json
import pickle
import struct
import sys
from typing import Any, BinaryIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from eventmart.contracts import Decoder, Event, MalformedEvent

FETCH_RECORDS = 10_000
HEADER = struct.Struct("<I")

Frame = tuple[dict[tuple[str, int], int], int, int, list[Event] | None]


def log_reader(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer outside any group, with large fetches, for reading a log through."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )


def write_frame(out: BinaryIO, frame: Frame) -> None:
    body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(body)) + body)
    out.flush()


async def decode_share(
    bootstrap: str, types: list[str], share: list[list[Any]], out: BinaryIO
) -> None:
    decode = Decoder(types)
    targets = {TopicPartition(topic, partition): target for topic, partition, _, target in share}
    consumer = log_reader(bootstrap)
    await consumer.start()
    try:
        consumer.assign(list(targets))
        for topic, partition, start, _ in share:
            consumer.seek(TopicPartition(topic, partition), start)
        behind = {tp for tp, target in targets.items() if await consumer.position(tp) < target}
        while behind:
            batches = await consumer.getmany(*behind, timeout_ms=1000, max_records=FETCH_RECORDS)
            reached: dict[tuple[str, int], int] = {}
            events: list[Event] = []
            read = malformed = 0
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= targets[tp]:
                        break  # past the target: later records are the live catch-up's
                    read += 1
                    reached[(tp.topic, tp.partition)] = record.offset + 1
                    try:
                        event = decode(record.value)
                    except MalformedEvent:
                        malformed += 1
                        continue
                    if event is not None:
                        events.append(event)
                if await consumer.position(tp) >= targets[tp]:
                    behind.discard(tp)
            if read:
                write_frame(out, (reached, read, malformed, events))
        write_frame(out, ({}, 0, 0, None))
    finally:
        await consumer.stop()


def main() -> None:
    job = json.loads(sys.argv[1])
    gc.disable()  # no reference cycles here; see projections.rebuild.paused_garbage_collector
    asyncio.run(decode_share(job["bootstrap"], job["types"], job["share"], sys.stdout.buffer))


if __name__ == "__main__":
    main()
