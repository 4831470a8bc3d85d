"""Export the event log to Parquet or JSON Lines, so analysts query files, not the broker.

Reads each topic from offset zero to the end offsets seen at start (no consumer
group, so no live offset moves), keeps the events that pass the type and
occurred_at filters, and writes one file per topic: envelope fields as columns,
the payload as a JSON string column, plus the record's topic, partition and offset.

Personal data (the fields each event contract names as `personal`: e-mails, names,
addresses) is redacted unless asked otherwise; an address keeps its country. Payment
tokens are never on the bus (order.placed v1 carried one: it is dropped on upcast).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, TopicPartition

from eventmart.contracts import CONTRACTS, Envelope, MalformedEvent, parse
from eventmart.personal_data import FieldCipher, is_sealed
from eventmart.sealing import open_envelope

FORMATS = ("parquet", "jsonl")
SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("schema_version", pa.int32()),
        ("aggregate_id", pa.string()),
        ("aggregate_version", pa.int64()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("correlation_id", pa.string()),
        ("causation_id", pa.string()),
        ("payload", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
ROWS_PER_GROUP = 10_000
REDACTED = "[redacted]"
KEPT_OF_AN_ADDRESS = frozenset({"country"})  # says little of whom, much for analysis


def parse_time(text: str | None) -> datetime | None:
    """ISO 8601; a time without a zone is taken as UTC."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EventFilter:
    """Which events to keep: any of `types` (all if empty), since <= occurred_at < until."""

    types: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    def accepts(self, envelope: Envelope) -> bool:
        if self.types and envelope.type not in self.types:
            return False
        if self.since is not None and envelope.occurred_at < self.since:
            return False
        return self.until is None or envelope.occurred_at < self.until


def _redacted(value: Any) -> Any:
    if isinstance(value, dict) and not is_sealed(value):
        return {k: v if k in KEPT_OF_AN_ADDRESS else REDACTED for k, v in value.items()}
    return None if value is None else REDACTED


def redact_personal(envelope: Envelope) -> Envelope:
    """The envelope with its contract's personal fields redacted."""
    personal = CONTRACTS[envelope.type].personal
    if not personal:
        return envelope
    payload = {
        name: _redacted(value) if name in personal else value
        for name, value in envelope.payload.items()
    }
    return envelope.model_copy(update={"payload": payload})


def row_of(topic: str, partition: int, offset: int, envelope: Envelope) -> dict[str, Any]:
    """One exported row: the envelope flattened, payload kept as JSON text."""
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "event_id": str(envelope.event_id),
        "type": envelope.type,
        "schema_version": envelope.schema_version,
        "aggregate_id": str(envelope.aggregate_id),
        "aggregate_version": envelope.aggregate_version,
        "occurred_at": envelope.occurred_at.astimezone(UTC),
        "correlation_id": str(envelope.correlation_id),
        "causation_id": str(envelope.causation_id) if envelope.causation_id else None,
        "payload": orjson.dumps(envelope.payload).decode(),
    }


def table_of(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def jsonl_of(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def partitions_of(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the topics, asking the broker for metadata if not yet known."""

    def known() -> list[TopicPartition]:
        return [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]

    if len(found := known()) == 0 or {tp.topic for tp in found} != set(topics):
        await consumer._client.force_metadata_update()  # first look at a topic
        found = known()
    missing = set(topics) - {tp.topic for tp in found}
    if missing:
        raise ValueError(f"no such topic: {', '.join(sorted(missing))}")
    return found


async def read_from_beginning(
    consumer: AIOKafkaConsumer, topics: list[str]
) -> tuple[list[TopicPartition], dict[TopicPartition, int]]:
    """Assign every partition at offset zero; return them and the end offsets now."""
    partitions = await partitions_of(consumer, topics)
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return partitions, await consumer.end_offsets(partitions)


class _Sink:
    """One output file per topic, written in row groups as rows arrive."""

    def __init__(self, out: Path, fmt: str) -> None:
        self.out, self.fmt = out, fmt
        self.buffers: dict[str, list[dict[str, Any]]] = {}
        self.writers: dict[str, Any] = {}
        self.paths: list[Path] = []

    def add(self, row: dict[str, Any]) -> None:
        buffer = self.buffers.setdefault(row["topic"], [])
        buffer.append(row)
        if len(buffer) >= ROWS_PER_GROUP:
            self.flush(row["topic"])

    def flush(self, topic: str) -> None:
        rows, self.buffers[topic] = self.buffers.get(topic, []), []
        if topic not in self.writers:
            path = self.out / f"{topic}.{self.fmt}"
            self.paths.append(path)
            self.writers[topic] = (
                pq.ParquetWriter(path, SCHEMA) if self.fmt == "parquet" else open(path, "wb")  # noqa: SIM115 - closed in close()
            )
        if rows:
            writer = self.writers[topic]
            if self.fmt == "parquet":
                writer.write_table(table_of(rows))
            else:
                writer.write(jsonl_of(rows))

    def close(self) -> None:
        for topic in list(self.buffers):
            self.flush(topic)
        for writer in self.writers.values():
            writer.close()


@dataclass
class ExportResult:
    paths: list[Path]
    read: int
    written: int
    malformed: int


async def export_events(
    bootstrap: str,
    topics: list[str],
    out: Path,
    *,
    event_filter: EventFilter = EventFilter(),
    fmt: str = "parquet",
    redact_pii: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    cipher: FieldCipher | None = None,
) -> ExportResult:
    """Export what is on `topics` now, personal data redacted unless `redact_pii` is False;
    on_progress(read, total) after every fetch. Not redacted, sealed fields are opened
    through `cipher` (`[erased]` once their subject's key is gone); without one they are
    exported sealed."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    sink = _Sink(out, fmt)
    read = written = malformed = 0
    try:
        partitions, ends = await read_from_beginning(consumer, topics)
        starts = await consumer.beginning_offsets(partitions)
        total = sum(ends[tp] - starts[tp] for tp in partitions)
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        for topic in topics:  # an empty result is still a file with the columns
            sink.flush(topic)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    read += 1
                    try:
                        envelope = parse(record.value)
                    except MalformedEvent:
                        malformed += 1
                        continue
                    if event_filter.accepts(envelope):
                        if redact_pii:
                            envelope = redact_personal(envelope)
                        elif cipher is not None:
                            envelope = open_envelope(envelope, cipher)
                        sink.add(row_of(tp.topic, tp.partition, record.offset, envelope))
                        written += 1
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if on_progress is not None:
                on_progress(read, total)
    finally:
        sink.close()
        await consumer.stop()
    return ExportResult(sink.paths, read, written, malformed)
