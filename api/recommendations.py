"""Recommendations as the API serves them: the newest stored model in memory (switched
without a restart), and the business rules applied to whatever it proposes.

The model proposes candidates (eventmart.ml.serving: numpy, well under a millisecond);
the rules are checked against the read models, never against the model's training data:
- never a product the user bought: their orders in the orders read model (every order
  not rejected or cancelled, pending ones included), excluded before ranking;
- nothing out of stock, never a seller's own products: each candidate's row in the
  catalogue read model (`available`, `seller_id`, kept current from inventory.events
  within a projection's lag), checked after ranking; if too few pass, the model is asked
  for more.
Cold start: a visitor the model does not know gets popular products, those of the
categories they viewed (as this process saw their views) first. With no model at all,
popular means most sold in the sales read model (refreshed every half minute).

Both reads are kept in memory (`ReadModelMemory`, api.recommendation_memory): each
candidate's catalogue row and each buyer's bought products, dropped as the read models announce a change (api.notified_cache:
as fresh as the tables, give or take a notification's trip). A request whose reads are all
in memory is answered on the event loop (`memory_only=True` raises `NeedsDatabase` at the
first miss); the others go to a thread and fill the memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from api.recommendation_memory import (
    NeedsDatabase,
    Product,
    ReadModelMemory,
    RecentlyOrdered,
)
from api.recommendation_model import ModelHolder
from api.security import Principal
from eventmart.ml.interactions import Item
from eventmart.ml.serving import POPULAR, Recommendation, ServingModel
from projections.catalog import candidate_rows
from projections.orders import products_bought_by
from projections.sales import most_sold

ROUNDS = 3  # times the model is asked for more when the rules drop too many candidates
POPULAR_CACHE_SECONDS = 30.0
POPULAR_POOL = 500  # most-sold products kept for the no-model fallback


@dataclass(frozen=True)
class Shown:
    product: Product
    score: float
    reason: str


@dataclass(frozen=True)
class Answer:
    model: ServingModel | None
    items: list[Shown]


Propose = Callable[[int, Collection[str]], list[Recommendation]]


class Recommendations:
    """The three answers, synchronous: off the event loop, or on it with `memory_only=True`
    (no query then: `NeedsDatabase` at the first read memory does not hold)."""

    def __init__(
        self,
        models: ModelHolder,
        catalog: ConnectionPool,
        orders: ConnectionPool,
        sales: ConnectionPool,
        memory: ReadModelMemory | None = None,
        recently_ordered: RecentlyOrdered | None = None,
    ) -> None:
        self.models = models
        self.memory = memory
        self.recently_ordered = recently_ordered or RecentlyOrdered()
        self.catalog = catalog  # products_view (stock, seller, name, price)
        self.orders = orders  # orders_view (what a user bought)
        self.sales = sales  # sale_lines (most sold, when there is no model)
        self._popular: tuple[float, list[tuple[str, float]]] = (0.0, [])
        self._popular_lock = threading.Lock()

    def for_user(
        self,
        user_id: UUID,
        role: str,
        limit: int,
        categories: Iterable[str],
        *,
        memory_only: bool = False,
    ) -> Answer:
        model = self.models.current
        bought = self.bought(user_id, memory_only=memory_only)
        wanted = list(categories)
        seller = seller_of(user_id, role)
        if model is not None and model.knows_user(str(user_id)):
            items = self._apply_rules(
                lambda n, exclude: model.recommend(str(user_id), n, exclude=exclude),
                limit,
                bought,
                seller,
                memory_only,
            )
        else:
            items = self._popular_items(model, limit, bought, wanted, seller, memory_only)
        return Answer(model, items)

    def similar(
        self, product: Product, limit: int, caller: Principal | None, *, memory_only: bool = False
    ) -> Answer:
        model = self.models.current
        user_id, role = (caller.user_id, caller.role) if caller else (None, None)
        bought = self.bought(user_id, memory_only=memory_only)
        excluded = {*bought, product.product_id}
        seller = seller_of(user_id, role)
        if model is None:
            categories = [product.category] if product.category else []
            return Answer(
                None, self._popular_items(None, limit, excluded, categories, seller, memory_only)
            )
        item = Item(
            product.product_id,
            product.name,
            product.description,
            product.category,
            float(product.price_amount),
            product.seller_id,
        )
        items = self._apply_rules(
            lambda n, exclude: model.similar_to_new(item, n, exclude=exclude),
            limit,
            excluded,
            seller,
            memory_only,
        )
        return Answer(model, items)

    def popular(
        self,
        limit: int,
        category: str | None,
        caller: Principal | None,
        *,
        memory_only: bool = False,
    ) -> Answer:
        model = self.models.current
        user_id, role = (caller.user_id, caller.role) if caller else (None, None)
        bought = self.bought(user_id, memory_only=memory_only)
        categories = [category] if category else []
        items = self._popular_items(
            model, limit, bought, categories, seller_of(user_id, role), memory_only
        )
        if category:
            items = [shown for shown in items if shown.product.category == category]
        return Answer(model, items)

    def _popular_items(
        self,
        model: ServingModel | None,
        limit: int,
        exclude: set[str],
        categories: list[str],
        seller: UUID | None,
        memory_only: bool,
    ) -> list[Shown]:
        if model is not None:
            shown = self._apply_rules(
                lambda n, skip: model.popular(n, exclude=skip, categories=categories),
                limit,
                exclude,
                seller,
                memory_only,
            )
            if not categories or any(item.product.category in categories for item in shown):
                return shown
            # The model predates every product of these categories that sells (it was
            # trained before their sales): the sales read model knows them, and API.md
            # wants the visitor's categories first.
            known = exclude | {item.product.product_id for item in shown}
            ours = [
                item
                for item in self._sold(known, seller, memory_only)
                if item.product.category in categories
            ]
            return [*ours, *shown][:limit]
        shown = self._sold(exclude, seller, memory_only)
        if categories:  # the visitor's categories first, each part in sales order
            shown.sort(key=lambda item: item.product.category not in categories)
        return shown[:limit]

    def _sold(self, exclude: set[str], seller: UUID | None, memory_only: bool) -> list[Shown]:
        """The most sold products that pass the rules, most sold first."""
        sold = [
            Recommendation(product_id, units, POPULAR)
            for product_id, units in self._most_sold(memory_only)
            if product_id not in exclude
        ]
        return self._passing(sold, seller, memory_only)

    def _apply_rules(
        self,
        propose: Propose,
        limit: int,
        exclude: set[str],
        seller: UUID | None,
        memory_only: bool,
    ) -> list[Shown]:
        """The model's best `limit` that pass the rules, asking it for more while too many
        fail (a few rounds, each four times wider)."""
        skipped = set(exclude)
        shown: list[Shown] = []
        want = limit * 2 + 10
        for _ in range(ROUNDS):
            proposed = propose(want, skipped)
            shown.extend(self._passing(proposed, seller, memory_only))
            if len(shown) >= limit or len(proposed) < want:
                break
            skipped.update(candidate.item_id for candidate in proposed)
            want *= 4
        return shown[:limit]

    def _passing(
        self, proposed: list[Recommendation], seller: UUID | None, memory_only: bool
    ) -> list[Shown]:
        """The proposals, in their order, whose product exists, is in stock and is not the
        seller's own."""
        products = self.products(
            [candidate.item_id for candidate in proposed], memory_only=memory_only
        )
        passing = []
        for candidate in proposed:
            product = products.get(candidate.item_id)
            if product is None or product.available <= 0:
                continue
            if seller is not None and product.seller_id == str(seller):
                continue
            passing.append(Shown(product, candidate.score, candidate.reason))
        return passing

    def products(self, product_ids: list[str], *, memory_only: bool = False) -> dict[str, Product]:
        """The read model's rows of these products (the ones it has), from memory first."""
        found: dict[str, Product] = {}
        missing = []
        memory = self.memory.products if self.memory else None
        for product_id in product_ids:
            remembered = memory.get(product_id) if memory else None
            if remembered is None:
                missing.append(product_id)
            elif remembered[0] is not None:
                found[product_id] = remembered[0]
        if not missing:
            return found
        if memory_only:
            raise NeedsDatabase
        ticket = memory.ticket() if memory else 0
        with self.catalog.connection() as conn:
            rows = candidate_rows(conn, missing)
        read = {row[0]: Product(*row) for row in rows}
        found.update(read)
        if memory:
            for product_id in missing:
                if _is_uuid_text(product_id):
                    memory.put(product_id, (read.get(product_id),), ticket)
        return found

    def product(self, product_id: UUID, *, memory_only: bool = False) -> Product | None:
        key = str(product_id)
        return self.products([key], memory_only=memory_only).get(key)

    def bought(self, user_id: UUID | None, *, memory_only: bool = False) -> set[str]:
        """Every product on the user's orders that were not rejected or cancelled, and
        those they ordered through this process a moment ago (`RecentlyOrdered`)."""
        if user_id is None:
            return set()
        return self._bought(user_id, memory_only) | self.recently_ordered.of(user_id)

    def _bought(self, user_id: UUID, memory_only: bool) -> set[str]:
        key = str(user_id)
        memory = self.memory.bought if self.memory else None
        remembered = memory.get(key) if memory else None
        if remembered is not None:
            return set(remembered)
        if memory_only:
            raise NeedsDatabase
        ticket = memory.ticket() if memory else 0
        with self.orders.connection() as conn:
            bought = products_bought_by(conn, user_id)
        if memory:
            memory.put(key, frozenset(bought), ticket)
        return bought

    def _most_sold(self, memory_only: bool = False) -> list[tuple[str, float]]:
        """Most distinct orders first, from the sales read model; cached briefly."""
        at, cached = self._popular
        if time.monotonic() - at < POPULAR_CACHE_SECONDS:
            return cached
        if memory_only:
            raise NeedsDatabase
        with self._popular_lock:
            at, cached = self._popular
            if time.monotonic() - at < POPULAR_CACHE_SECONDS:
                return cached
            with self.sales.connection() as conn:
                ranked = most_sold(conn, POPULAR_POOL)
            self._popular = (time.monotonic(), ranked)
            return ranked


def _is_uuid_text(text: str) -> bool:
    """A key the read model's announcements use (uuid text, lower case)."""
    try:
        return str(UUID(text)) == text
    except ValueError:
        return False


def seller_of(user_id: UUID | None, role: str | None) -> UUID | None:
    """Whose own products a caller must not be shown: a seller's."""
    return user_id if role == "seller" else None


def as_json(answer: Answer) -> dict[str, Any]:
    model = answer.model
    return {
        "model": None
        if model is None
        else {"version": model.version, "trained_at": model.trained_at},
        "items": [
            {
                "product_id": shown.product.product_id,
                "name": shown.product.name,
                "price": {"amount": shown.product.price_amount, "currency": shown.product.currency},
                "score": shown.score,
                "reason": shown.reason,
            }
            for shown in answer.items
        ],
    }
