"""Product detail, the hottest read, answered from memory without going through FastAPI.

`ProductCache` keeps each product's serialised answer as the read model last showed it.
The catalogue read model announces every change of a row on a PostgreSQL channel
(`projections.catalog.CHANGES_CHANNEL`, a trigger, delivered when the writing transaction
commits), and a rebuild announces "*" when it swaps its tables in; the cache drops what
changed as it hears it. So an answer is as fresh as the read model, give or take the
notification's trip (about a millisecond), and never older than `max_age` whatever happens.

Two races are closed:
- a miss reads the row, and a change of that row commits and is heard before the answer
  is stored: every fill carries a ticket taken before its query, and a fill older than
  the last change heard for its product is not kept;
- the listening connection drops (notifications may be lost): everything is dropped and
  nothing is kept until it listens again.

`ProductDetailFastPath` is the ASGI middleware in front of the routes: a `GET
/v1/products/{id}` whose product is cached (or found in the read model) is answered here;
anything else (an invalid id, an unknown or not yet visible product) goes on to FastAPI,
which owns the errors. The request still counts in the latency metrics under the
route's template.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
import psycopg
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from eventmart.outages import DATABASE_AWAY
from projections import ratings
from projections.catalog import CHANGES_CHANNEL, get_product

log = logging.getLogger("eventmart.api.product_cache")

DETAIL_PATH = re.compile(r"/v1/products/([^/]+)")
RECONNECT_SECONDS = 1.0


class ProductCache:
    def __init__(self, dsn: str, *, max_entries: int = 100_000, max_age: float = 30.0) -> None:
        self.dsn = dsn
        self.max_entries = max_entries
        self.max_age = max_age
        self._answers: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._changes = 0  # notifications heard, the clock tickets are taken from
        self._changed_at: dict[str, int] = {}  # product -> self._changes when it last changed
        self._forgotten_before = 0  # fills begun before this may have missed a change
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._listen(), name="product-cache-listener")
        try:
            await asyncio.wait_for(self.listening.wait(), timeout)
        except TimeoutError:
            log.warning("product cache: not listening yet; answering from the read model")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def get(self, product_id: str) -> bytes | None:
        entry = self._answers.get(product_id)
        if entry is None:
            return None
        stored_at, body = entry
        if time.monotonic() - stored_at > self.max_age:
            del self._answers[product_id]
            return None
        return body

    def ticket(self) -> int:
        """Take before reading the read model; hand back to `put` with what was read."""
        return self._changes

    def put(self, product_id: str, body: bytes, ticket: int) -> None:
        if not self.listening.is_set() or ticket < self._forgotten_before:
            return
        if self._changed_at.get(product_id, -1) > ticket:
            return  # changed after the read began: what was read may be older
        self._answers[product_id] = (time.monotonic(), body)
        if len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)

    def changed(self, payload: str) -> None:
        self._changes += 1
        if payload == "*":
            self._forget_all()
            return
        self._answers.pop(payload, None)
        self._changed_at[payload] = self._changes
        if len(self._changed_at) > self.max_entries:
            self._forget_all()

    def _forget_all(self) -> None:
        self._answers.clear()
        self._changed_at.clear()
        self._forgotten_before = self._changes = self._changes + 1

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {ratings.CHANGES_CHANNEL}")  # a product's rating
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    self._forget_all()  # changes made while nobody listened
                    self.listening.set()
                    async for notify in conn.notifies():
                        self.changed(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any loss means: stop trusting, retry
                log.warning("product cache: listener lost (%s); retrying", error)
            self.listening.clear()
            self._forget_all()
            await asyncio.sleep(RECONNECT_SECONDS)


class ProductDetailFastPath:
    """Answers `GET /v1/products/{id}` from `app.state.product_cache` (filled from
    `app.state.catalog_reads`); the route's handler stays the contract and the fallback."""

    def __init__(self, app: ASGIApp, route: BaseRoute, state: Any) -> None:
        self.app = app
        self.route = route
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = DETAIL_PATH.fullmatch(scope["path"])
            if match is not None:
                body = await self._answer(match.group(1))
                if body is not None:
                    scope["route"] = self.route  # the latency metric's label
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/json"),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _answer(self, raw_id: str) -> bytes | None:
        cache: ProductCache | None = getattr(self.state, "product_cache", None)
        if cache is None:
            return None
        body = cache.get(raw_id)
        if body is not None:
            return body
        try:
            product_id = str(UUID(raw_id))
        except ValueError:
            return None  # FastAPI answers 422
        ticket = cache.ticket()
        try:
            async with self.state.catalog_reads.connection() as conn:
                found = await get_product(conn, product_id)
        except DATABASE_AWAY:
            return None  # the route answers, or says 503 service_unavailable
        if found is None:
            return None  # FastAPI answers 404 or 503
        body = encode(found)
        if raw_id == product_id:
            cache.put(product_id, body, ticket)
        return body


def encode(view: dict[str, Any]) -> bytes:
    """A read model's dict as the route's response model would serialise it (same fields,
    same order, UTC times ending in Z), without validating what the read model wrote."""
    return orjson.dumps(view, option=orjson.OPT_UTC_Z)


def route_named(routes: Sequence[BaseRoute], name: str) -> BaseRoute:
    return next(route for route in routes if getattr(route, "name", None) == name)
