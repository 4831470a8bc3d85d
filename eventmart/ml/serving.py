"""Recommendations from memory: a trained model's embeddings as numpy arrays, scored with
a dot product (a user's top N) or a cosine (similar items), in well under a millisecond.

Business rules stay with the caller, who knows what a user bought, what is in stock and
who sells what: every call takes `exclude`, a collection of item ids never to return.
Each result says why it is there (`reason`), naming the item it came from (`because_of`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eventmart.ml.features import ContentFeatures, feature_key
from eventmart.ml.history import VERBS
from eventmart.ml.interactions import Item

POPULAR = "popular"
FOR_YOU = "recommended for you"


class UnknownItem(KeyError):
    """The item is not in this model's catalogue."""


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    reason: str
    because_of: str | None = None


@dataclass(eq=False)
class ServingModel:
    """Everything serving needs, nothing more; `TrainedModel.to_serving()` makes one,
    `eventmart.ml.store` saves and loads it."""

    version: str
    trained_at: datetime
    seen: dict[str, int]
    details: dict[str, Any]
    item_ids: list[str]
    item_names: list[str]
    item_categories: list[str | None]
    item_embeddings: NDArray[Any]
    item_biases: NDArray[Any]
    item_popularity: NDArray[Any]
    user_ids: list[str]
    user_embeddings: NDArray[Any]
    user_biases: NDArray[Any]
    history_starts: NDArray[Any]
    history_items: NDArray[Any]
    history_kinds: NDArray[Any]
    content: ContentFeatures | None
    feature_keys: list[str]
    feature_embeddings: NDArray[Any]
    feature_biases: NDArray[Any]
    _item_index: dict[str, int] = field(init=False, repr=False)
    _user_index: dict[str, int] = field(init=False, repr=False)
    _feature_index: dict[str, int] = field(init=False, repr=False)
    _unit_items: NDArray[Any] = field(init=False, repr=False)
    _by_popularity: NDArray[Any] = field(init=False, repr=False)
    _category_codes: dict[str, int] = field(init=False, repr=False)
    _item_category_codes: NDArray[Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._item_index = {item: index for index, item in enumerate(self.item_ids)}
        self._user_index = {user: index for index, user in enumerate(self.user_ids)}
        self._feature_index = {key: index for index, key in enumerate(self.feature_keys)}
        self._unit_items = _unit_rows(self.item_embeddings)
        names = sorted({c for c in self.item_categories if c is not None})
        self._category_codes = {name: code for code, name in enumerate(names)}
        self._item_category_codes = np.array(
            [self._category_codes.get(c, -1) if c is not None else -1 for c in self.item_categories]
        )
        liked = np.flatnonzero(self.item_popularity > 0)
        # Most popular first; ties by catalogue order, so the answer is stable.
        self._by_popularity = liked[np.argsort(-self.item_popularity[liked], kind="stable")]

    def knows_user(self, user_id: str) -> bool:
        return user_id in self._user_index

    def knows_item(self, item_id: str) -> bool:
        return item_id in self._item_index

    def recommend(
        self,
        user_id: str,
        n: int = 10,
        *,
        exclude: Collection[str] = (),
        categories: Iterable[str] = (),
    ) -> list[Recommendation]:
        """The user's top `n` by the model; a user the model has not seen gets `popular`
        (within `categories` first, when given: the cold-start rule)."""
        user = self._user_index.get(user_id)
        if user is None:
            return self.popular(n, exclude=exclude, categories=categories)
        scores = self.item_embeddings @ self.user_embeddings[user]
        scores += self.item_biases + self.user_biases[user]
        chosen = self._top(scores, n, exclude)
        return self._explained(chosen, scores, user)

    def similar(
        self, item_id: str, n: int = 10, *, exclude: Collection[str] = ()
    ) -> list[Recommendation]:
        """Items nearest by cosine over the item embeddings; UnknownItem if not in the model."""
        index = self._item_index.get(item_id)
        if index is None:
            raise UnknownItem(item_id)
        return self._similar_to_vector(self._unit_items[index], n, exclude, index)

    def similar_to_new(
        self, item: Item, n: int = 10, *, exclude: Collection[str] = ()
    ) -> list[Recommendation]:
        """Neighbours of a product the model has not seen, embedded from its content features;
        popular items of its category when none of its features is known to the model."""
        if item.item_id in self._item_index:
            return self.similar(item.item_id, n, exclude=exclude)
        embedded = self.embed(item)
        if embedded is None:
            categories = [item.category] if item.category else []
            return self.popular(n, exclude={*exclude, item.item_id}, categories=categories)
        vector = embedded[0] / (np.linalg.norm(embedded[0]) or 1.0)
        return self._similar_to_vector(vector, n, {*exclude, item.item_id}, None, item.name)

    def popular(
        self, n: int = 10, *, exclude: Collection[str] = (), categories: Iterable[str] = ()
    ) -> list[Recommendation]:
        """Most users first; items of `categories` before the rest when categories are given."""
        wanted = [self._category_codes[c] for c in categories if c in self._category_codes]
        order = self._by_popularity
        if wanted:
            in_wanted = np.isin(self._item_category_codes[order], wanted)
            order = np.concatenate([order[in_wanted], order[~in_wanted]])
        skipped = set(exclude)
        chosen: list[Recommendation] = []
        for index in order:
            if len(chosen) >= n:
                break
            if self.item_ids[index] not in skipped:
                chosen.append(
                    Recommendation(
                        self.item_ids[index], float(self.item_popularity[index]), POPULAR
                    )
                )
        return chosen

    def embed(self, item: Item) -> tuple[NDArray[Any], float] | None:
        """(embedding, bias) of an item from its content features alone, as LightFM
        represents an item with no interactions; None if no feature is known."""
        if self.content is None:
            return None
        found = [
            (self._feature_index[key], weight)
            for group, value, weight in self.content.features_of(item)
            if (key := feature_key(group, value)) in self._feature_index
        ]
        if not found:
            return None
        rows = np.array([index for index, _ in found])
        weights = np.array([weight for _, weight in found], dtype=np.float32)
        vector = weights @ self.feature_embeddings[rows]
        return vector, float(weights @ self.feature_biases[rows])

    def _explained(
        self, chosen: NDArray[Any], scores: NDArray[Any], user: int
    ) -> list[Recommendation]:
        """Each recommendation names the item of the user's history nearest to it (never
        itself): "because you bought X"."""
        start, end = self.history_starts[user], self.history_starts[user + 1]
        history, kinds = self.history_items[start:end], self.history_kinds[start:end]
        if len(history) == 0:
            return [Recommendation(self.item_ids[i], float(scores[i]), FOR_YOU) for i in chosen]
        similarity = self._unit_items[chosen] @ self._unit_items[history].T
        similarity[chosen[:, None] == history[None, :]] = -np.inf
        nearest = similarity.argmax(axis=1)
        explained = []
        for row, index in enumerate(chosen):
            item_id, score, k = self.item_ids[index], float(scores[index]), nearest[row]
            if not np.isfinite(similarity[row, k]):  # its only history is the item itself
                explained.append(Recommendation(item_id, score, FOR_YOU))
                continue
            source = int(history[k])
            name = self.item_names[source] or self.item_ids[source]
            reason = f"because you {VERBS[int(kinds[k])]} {name}"
            explained.append(Recommendation(item_id, score, reason, self.item_ids[source]))
        return explained

    def _similar_to_vector(
        self,
        unit: NDArray[Any],
        n: int,
        exclude: Collection[str],
        itself: int | None,
        name: str | None = None,
    ) -> list[Recommendation]:
        scores = self._unit_items @ unit
        if itself is not None:
            scores[itself] = -np.inf
            name = self.item_names[itself] or self.item_ids[itself]
            source: str | None = self.item_ids[itself]
        else:
            source = None
        reason = f"similar to {name}" if name else "similar"
        return [
            Recommendation(self.item_ids[i], float(scores[i]), reason, source)
            for i in self._top(scores, n, exclude)
        ]

    def _top(self, scores: NDArray[Any], n: int, exclude: Collection[str]) -> NDArray[Any]:
        """Indices of the `n` best scores, best first, leaving out the excluded items."""
        for item_id in exclude:
            index = self._item_index.get(item_id)
            if index is not None:
                scores[index] = -np.inf
        available = int(np.isfinite(scores).sum())
        count = min(n, available)
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        best = np.argpartition(-scores, count - 1)[:count]
        return best[np.argsort(-scores[best], kind="stable")]


def _unit_rows(matrix: NDArray[Any]) -> NDArray[Any]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: NDArray[Any] = (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    return unit
