"""Test scaffolding: the real broker and database, worker processes, and waiting on
conditions with deadlines (never bare sleeps)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from eventmart.contracts import Envelope, MalformedEvent, parse
from eventmart.settings import PROJECT_ROOT, Settings

T = TypeVar("T")


def wait_until(condition: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {last!r})")


class WorkerProcess:
    """One `python -m eventmart ...` child, killable like a real deployment's process."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen([sys.executable, "-m", "eventmart", *self.args], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, as when a machine dies."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVENTMART_")}
    for name, value in settings.model_dump().items():
        if value is not None and name not in ("database_url", "kafka_bootstrap_servers"):
            env[f"EVENTMART_{name.upper()}"] = str(value)
    env.update({
        "DATABASE_URL": settings.dsn,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PYTHONUNBUFFERED": "1",
    })
    return env


async def _read_topic(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - first look at a topic
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batches.items():
                records.extend(messages)
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record on the topic now, from offset zero (no consumer group)."""
    return asyncio.run(_read_topic(bootstrap, topic))


def read_envelopes(bootstrap: str, topic: str) -> list[Envelope]:
    envelopes = []
    for record in read_topic(bootstrap, topic):
        try:
            envelopes.append(parse(record.value))
        except MalformedEvent:
            continue
    return envelopes


async def _publish(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


def publish(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    asyncio.run(_publish(bootstrap, topic, messages))
