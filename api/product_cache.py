"""Product detail, the hottest read, answered from memory without going through FastAPI.

`ProductCache` keeps each product's serialised answer as the read model last showed it.
The catalogue read model announces every change of a row on a PostgreSQL channel
(`projections.catalog.CHANGES_CHANNEL`, a trigger, delivered when the writing transaction
commits), and a rebuild announces "*" when it swaps its tables in; the cache drops what
changed as it hears it. So an answer is as fresh as the read model, give or take the
notification's trip (about a millisecond), and never older than `max_age` whatever happens.

How it stays honest (tickets against a read racing a change, forgetting everything when
the listener drops) is api.notified_cache's.

`ProductDetailFastPath` is the ASGI middleware in front of the routes: a `GET
/v1/products/{id}` whose product is cached (or found in the read model) is answered here;
anything else (an invalid id, an unknown or not yet visible product) goes on to FastAPI,
which owns the errors. The request still counts in the latency metrics under the
route's template.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api.boundary import send_json
from api.notified_cache import NotifiedCache
from eventmart.outages import DATABASE_AWAY
from projections import ratings
from projections.catalog import CHANGES_CHANNEL, get_product

log = logging.getLogger("eventmart.api.product_cache")

DETAIL_PATH = re.compile(r"/v1/products/([^/]+)")


class ProductCache(NotifiedCache[bytes]):
    """Each product's serialised answer, dropped when its row or its rating changes."""

    def __init__(self, dsn: str, *, max_entries: int = 100_000, max_age: float = 30.0) -> None:
        super().__init__(
            dsn,
            (ratings.CHANGES_CHANNEL, CHANGES_CHANNEL),  # a product's rating, then its row
            max_entries=max_entries,
            max_age=max_age,
            name="product cache",
        )


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
                    await send_json(send, 200, body)
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
