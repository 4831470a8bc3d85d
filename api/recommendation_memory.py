"""What the recommendation rules read of the read models, and the memory they are read
through: each candidate's catalogue row and each buyer's bought products, dropped as the
read models announce a change (api.notified_cache), and what a buyer ordered through this
process a moment ago, before the orders read model shows it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from api.notified_cache import NotifiedCache
from projections.catalog import CHANGES_CHANNEL as catalog_channel
from projections.orders import CHANGES_CHANNEL as orders_channel


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    description: str
    category: str | None
    price_amount: int
    currency: str
    seller_id: str | None
    available: int


class RecentlyOrdered:
    """The products each user ordered through this API process in the last `seconds`. The
    orders read model shows an order a moment after its 202, and recommendations asked for
    in between must not offer what was just bought; after `seconds` the read model alone
    decides (it also knows an order that was rejected or cancelled since). Bounded; called
    from the request threads."""

    def __init__(self, seconds: float = 60.0, max_users: int = 100_000) -> None:
        self.seconds = seconds
        self.max_users = max_users
        self._orders: OrderedDict[UUID, list[tuple[float, frozenset[str]]]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, user_id: UUID, product_ids: Iterable[object]) -> None:
        entry = (time.monotonic(), frozenset(str(product_id) for product_id in product_ids))
        with self._lock:
            recent = [*self._fresh(user_id), entry]
            self._orders[user_id] = recent
            self._orders.move_to_end(user_id)
            if len(self._orders) > self.max_users:
                self._orders.popitem(last=False)

    def of(self, user_id: UUID) -> set[str]:
        if user_id not in self._orders:  # the usual case, without the lock
            return set()
        with self._lock:
            recent = self._fresh(user_id)
            if recent:
                self._orders[user_id] = recent
            else:
                self._orders.pop(user_id, None)
        return {product_id for _, products in recent for product_id in products}

    def _fresh(self, user_id: UUID) -> list[tuple[float, frozenset[str]]]:
        """Under the lock."""
        oldest = time.monotonic() - self.seconds
        return [entry for entry in self._orders.get(user_id, ()) if entry[0] >= oldest]


class NeedsDatabase(Exception):
    """A `memory_only` call needed a read that memory did not hold."""


class ReadModelMemory:
    """Catalogue rows by product (`products_view`'s announcements) and bought products by
    buyer (`orders_view`'s); a row the read model does not have is remembered as absent."""

    def __init__(self, catalog_dsn: str, orders_dsn: str) -> None:
        self.products: NotifiedCache[tuple[Product | None]] = NotifiedCache(
            catalog_dsn, (catalog_channel,), name="candidate rows"
        )
        self.bought: NotifiedCache[frozenset[str]] = NotifiedCache(
            orders_dsn, (orders_channel,), name="bought products"
        )

    async def start(self) -> None:
        await asyncio.gather(self.products.start(), self.bought.start())

    async def stop(self) -> None:
        await asyncio.gather(self.products.stop(), self.bought.stop())
