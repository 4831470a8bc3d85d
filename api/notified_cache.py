"""A cache in an API process that PostgreSQL keeps honest: what it holds is dropped as soon
as the database announces that it changed.

Triggers announce every change of a row on a channel (`pg_notify`, delivered when the
writing transaction commits); a rebuild announces "*" when it swaps its tables in. The
cache listens on its channels and drops what changed as it hears it, so an answer is as
fresh as the table, give or take the notification's trip (about a millisecond), and never
older than `max_age` whatever happens.

Two races are closed:
- a miss reads the row, and a change of that row commits and is heard before the answer
  is stored: every fill carries a ticket taken before its query, and a fill older than
  the last change heard for its key is not kept;
- the listening connection drops (notifications may be lost): everything is dropped and
  nothing is kept until it listens again.

Used for product details (api.product_cache), for who a token's user is now
(api.auth.UserDirectory) and for aggregates read without changing them (api.quiet_reads).
`get`, `ticket` and `put` may be called from the thread pool's threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, TypeVar

import psycopg

log = logging.getLogger("eventmart.api.notified_cache")

RECONNECT_SECONDS = 1.0
V = TypeVar("V")


class NotifiedCache(Generic[V]):
    def __init__(
        self,
        dsn: str,
        channels: Sequence[str],
        *,
        max_entries: int = 100_000,
        max_age: float = 30.0,
        name: str = "cache",
    ) -> None:
        self.dsn = dsn
        self.channels = tuple(channels)
        self.max_entries = max_entries
        self.max_age = max_age
        self.name = name
        self._answers: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._changes = 0  # notifications heard, the clock tickets are taken from
        self._changed_at: dict[str, int] = {}  # key -> self._changes when it last changed
        self._forgotten_before = 0  # fills begun before this may have missed a change
        self._lock = threading.Lock()  # put's check-then-store against changed()
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._listen(), name=f"{self.name}-listener")
        try:
            await asyncio.wait_for(self.listening.wait(), timeout)
        except TimeoutError:
            log.warning("%s: not listening yet; answering from the database", self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def get(self, key: str) -> V | None:
        entry = self._answers.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        if time.monotonic() - stored_at > self.max_age:
            self._answers.pop(key, None)
            return None
        return value

    def ticket(self) -> int:
        """Take before reading the database; hand back to `put` with what was read."""
        return self._changes

    def put(self, key: str, value: V, ticket: int) -> None:
        with self._lock:
            if not self.listening.is_set() or ticket < self._forgotten_before:
                return
            if self._changed_at.get(key, -1) > ticket:
                return  # changed after the read began: what was read may be older
            self._answers[key] = (time.monotonic(), value)
            if len(self._answers) > self.max_entries:
                self._answers.popitem(last=False)

    def changed(self, payload: str) -> None:
        with self._lock:
            self._changes += 1
            if payload == "*":
                self._forget_all()
                return
            self._answers.pop(payload, None)
            self._changed_at[payload] = self._changes
            if len(self._changed_at) > self.max_entries:
                self._forget_all()

    def _forget_all(self) -> None:
        """Under the lock."""
        self._answers.clear()
        self._changed_at.clear()
        self._forgotten_before = self._changes = self._changes + 1

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    for channel in self.channels:
                        await conn.execute(f"LISTEN {channel}")  # our own constants
                    with self._lock:
                        self._forget_all()  # changes made while nobody listened
                    self.listening.set()
                    async for notify in conn.notifies():
                        self.changed(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any loss means: stop trusting, retry
                log.warning("%s: listener lost (%s); retrying", self.name, error)
            self.listening.clear()
            with self._lock:
                self._forget_all()
            await asyncio.sleep(RECONNECT_SECONDS)
