"""Order updates pushed to buyers: `GET /v1/orders/{id}/events` as server-sent events.

One listening connection per API process hears the orders read model's announcements (a
trigger on `order_hops` notifies `order_events` with the order ids of each batch the model
commits, projections.order_trace) and wakes only the streams of those orders; a woken
stream reads what its order gained since the last event it sent. No stream polls: an idle
one costs a parked coroutine and a comment line every `KEEPALIVE_SECONDS`.

Each event is sent once, with its event id as the SSE `id`; a client reconnecting with
`Last-Event-ID` gets what followed it (in the order the read model got them). The stream
ends once the order is terminal and everything before that is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from projections.order_trace import ANNOUNCE_CHANNEL, is_terminal, order_timeline

log = logging.getLogger("eventmart.api.order_events")
KEEPALIVE_SECONDS = 15.0
RECONNECT_SECONDS = 1.0
# Streams one API process holds open at once; past it, 503 (they are not load-shed requests).
MAX_STREAMS = 5000


def is_stream(path: str) -> bool:
    """Whether a request path is an order's event stream (long-lived: not load-shed)."""
    return path.startswith("/v1/orders/") and path.endswith("/events")


class OrderAnnouncements:
    """Wakes the streams of an order when the read model announces it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.streams = 0

    @contextmanager
    def subscribe(self, order_id: str) -> Iterator[asyncio.Event]:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="order-announcements")
        woken = asyncio.Event()
        woken.set()  # read once at once
        self._waiting.setdefault(order_id, set()).add(woken)
        self.streams += 1
        try:
            yield woken
        finally:
            self.streams -= 1
            waiting = self._waiting.get(order_id)
            if waiting is not None:
                waiting.discard(woken)
                if not waiting:
                    del self._waiting[order_id]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _wake(self, order_ids: str | None) -> None:
        """Wake the streams of these orders (a notification's payload: ids separated by
        spaces, one notification per projected batch), or of every order."""
        groups = (
            self._waiting.values()
            if order_ids is None
            else [self._waiting.get(order_id, ()) for order_id in order_ids.split()]
        )
        for waiting in groups:
            for woken in waiting:
                woken.set()

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {ANNOUNCE_CHANNEL}")  # our own constant
                    self._wake(None)  # what was announced while nobody listened
                    async for notify in conn.notifies():
                        self._wake(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - reconnect; every stream rereads
                log.warning("order announcements lost (%s); retrying", error)
            await asyncio.sleep(RECONNECT_SECONDS)


def _read(pool: ConnectionPool, order_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    with pool.connection() as conn:
        return order_timeline(conn, order_id)


def already_sent(events: list[dict[str, Any]], last_event_id: str | None) -> list[str]:
    """The ids up to and including `last_event_id` (none if it is unknown): what a client
    resuming after it has."""
    ids = [event["event_id"] for event in events]
    return ids[: ids.index(last_event_id) + 1] if last_event_id in ids else []


def _message(event: dict[str, Any]) -> bytes:
    data = orjson.dumps(
        {
            "type": event["type"],
            "at": event["at"].isoformat() if isinstance(event["at"], datetime) else event["at"],
            "detail": event["detail"],
        }
    )
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event["event_id"].encode(),
        event["type"].encode(),
        data,
    )


async def order_stream(
    announcements: OrderAnnouncements,
    pool: ConnectionPool,
    order_id: str,
    last_event_id: str | None,
    disconnected: Any,
) -> AsyncIterator[bytes]:
    """The SSE body: the timeline after `last_event_id`, then each event as it is projected."""
    sent: set[str] | None = None  # known after the first read
    with announcements.subscribe(order_id) as woken:
        yield b"retry: 1000\n\n"
        while True:
            if woken.is_set():
                woken.clear()
                status, events = await run_in_threadpool(_read, pool, order_id)
                if sent is None:
                    sent = set(already_sent(events, last_event_id))
                for event in events:
                    if event["event_id"] not in sent:
                        sent.add(event["event_id"])
                        yield _message(event)
                if is_terminal(status):
                    return
            try:
                await asyncio.wait_for(woken.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                if await disconnected():
                    return
                yield b": keep-alive\n\n"
