"""What a consumer group brings to the worker host that runs it, and what the host shares with
its groups. Its own module so that the builders of the groups (workers/groups.py, the modules
it names) and the host (workers/host.py) import it without importing each other."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from psycopg_pool import ConnectionPool

from eventmart.database import make_pool
from eventmart.settings import Settings
from workers.consumer import BatchProcessor

Timer = Callable[[], int]


@dataclass(frozen=True)
class HostedGroup:
    """What a group brings to its host: how it applies a batch, and timers run beside it."""

    process: BatchProcessor
    # Event types the group acts on; the others on its topics are passed over undecoded.
    wanted: frozenset[str] | None = None
    gather_ms: int = 0  # see GroupConsumer: a projection lets its fetches gather
    timers: Mapping[str, Timer] = field(default_factory=dict)
    timer_interval: float = 1.0


class SharedResources:
    """What the groups of one process share: a connection pool per database. (No group
    reads another context's event store: what it needs of others, it keeps from the bus.)"""

    pool_size = 8  # a batch thread and a timer thread per group hold one at most, briefly

    def __init__(self) -> None:
        self._pools: dict[str, ConnectionPool] = {}
        self._lock = threading.Lock()

    def pool(self, dsn: str) -> ConnectionPool:
        with self._lock:
            if dsn not in self._pools:
                self._pools[dsn] = make_pool(dsn, max_size=self.pool_size)
            return self._pools[dsn]


Build = Callable[[Settings, SharedResources], HostedGroup]


@dataclass(frozen=True)
class HostableGroup:
    """A consumer group as a host takes it: its id, the topics it reads, how to build it."""

    name: str
    topics: tuple[str, ...]
    build: Build
