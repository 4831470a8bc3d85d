"""Scaffolding for tests that run consumer groups in this process against the real broker:
an event loop in a thread, throwaway topics, and batch processors that record or fail."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson
from mode import Service

from eventmart.broker import TopicSpec, create_topics
from eventmart.contracts import CONTRACTS
from eventmart.settings import Settings
from projections.tracking import Delivery
from tests.support import publish

T = TypeVar("T")
PARTITIONS = 2


class Recorder:
    """A batch processor that records (partition, offset) of what it applied, and the thread
    it ran on; the first batch can be held until the test lets it go."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.applied: list[tuple[int, int]] = []
        self.threads: set[str] = set()
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.lock = threading.Lock()

    def __call__(self, deliveries: list[Delivery]) -> None:
        self.entered.set()
        assert self.release.wait(timeout=60), "the test never released the batch"
        with self.lock:
            self.applied.extend((d.partition, d.offset) for d in deliveries)
            self.threads.add(threading.current_thread().name)


class Loop:
    """An event loop in its own thread, so the test can use the synchronous helpers; the
    services it started are stopped on close."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.services: list[Service] = []

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        for service in self.services:
            self.run(service.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def make_topics(settings: Settings, *names: str, partitions: int = PARTITIONS) -> None:
    asyncio.run(
        create_topics(
            settings.bootstrap_servers,
            [
                TopicSpec(
                    name=name,
                    partitions=partitions,
                    replication_factor=1,
                    retention_ms=3_600_000,
                    key="test",
                    schema_version=1,
                )
                for name in names
            ],
        )
    )


def make_topic(settings: Settings, prefix: str) -> str:
    """A new topic of PARTITIONS partitions, named `prefix.<random>`."""
    name = f"{prefix}.{uuid.uuid4().hex[:8]}"
    make_topics(settings, name)
    return name


def publish_events(settings: Settings, topic: str, count: int) -> None:
    example = CONTRACTS["user.registered"].example
    publish(
        settings.bootstrap_servers,
        topic,
        [(f"key-{n}".encode(), orjson.dumps(example)) for n in range(count)],
    )
