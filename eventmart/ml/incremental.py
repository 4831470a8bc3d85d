"""The recommender trained incrementally: the LightFM state of the last model, kept with
the interaction totals it learnt from, updated from what arrived since (`fit_partial`)
rather than refitted on the whole log.

    model = IncrementalModel.from_trained(train(interactions, items))   # a full training
    model.update(new_interactions, new_items)                           # each batch after
    serving = model.to_serving()

An update's cost follows what is new, not the log: it trains on the (user, item) pairs the
new interactions touched, with their totals so far, plus `replay` times as many pairs drawn
at random from everything learnt before (so the model does not drift toward the latest
taste and forget the rest), for `epochs` passes. New users and items get rows of their own:
LightFM's parameter arrays have one row per feature, and here the item rows are laid out as
[content features | one identity row per item], so a new item appends a row and nothing
moves. The content vocabulary stays the full training's until the next one.

Data in, model out: no Kafka, HTTP or SQL here; eventmart.ml.store saves and loads it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from lightfm import LightFM
from numpy.typing import NDArray
from scipy import sparse

from eventmart.ml.features import ContentFeatures, feature_key, items_of
from eventmart.ml.history import HISTORY_LENGTH, KIND_CODES, recent_pairs
from eventmart.ml.interactions import Item, checked_interactions
from eventmart.ml.recommender import HybridParams, TrainedModel, lightfm_core
from eventmart.ml.serving import ServingModel

EMBEDDING_ARRAYS = ("embeddings", "embedding_gradients", "embedding_momentum")
BIAS_ARRAYS = ("biases", "bias_gradients", "bias_momentum")
PAIR_KEY = np.int64(1 << 32)  # a pair's key: user index * PAIR_KEY + item index


@dataclass(frozen=True)
class UpdateParams:
    """How an update trains: passes over the new pairs and the replayed ones, and how many
    old pairs are replayed per new pair (chosen on the Online Retail split, see
    docs/recommendations.md)."""

    epochs: int = 20
    replay: int = 4


class IncrementalModel:
    """A LightFM hybrid with what it needs to keep learning: its id maps, each pair's total
    weight, each user's recent items, each item's count of users, and its content features."""

    def __init__(
        self,
        *,
        lightfm: LightFM,
        params: HybridParams,
        seed: int,
        user_ids: list[str],
        item_ids: list[str],
        items: dict[str, Item],
        content: ContentFeatures | None,
        feature_keys: list[str],
        item_content: sparse.csr_matrix,
        pair_keys: NDArray[np.int64],
        pair_sums: NDArray[np.float64],
        histories: dict[int, list[tuple[int, int, int]]],
        version: str,
        trained_at: datetime,
        full_version: str,
        full_trained_at: datetime,
        interactions: int,
        interactions_at_full: int,
        seen: dict[str, int],
        pending_orders: dict[str, tuple[str, list[str]]],
        updates: UpdateParams = UpdateParams(),
    ) -> None:
        self.lightfm, self.params, self.seed = lightfm, params, seed
        self.user_ids, self.item_ids, self.items = user_ids, item_ids, items
        self.user_index = {user: index for index, user in enumerate(user_ids)}
        self.item_index = {item: index for index, item in enumerate(item_ids)}
        self.content, self.feature_keys = content, feature_keys
        self.feature_index = {key: index for index, key in enumerate(feature_keys)}
        self.item_content = item_content
        self.pair_keys, self.pair_sums = pair_keys, pair_sums
        self.histories = histories
        self.version, self.trained_at = version, trained_at
        self.full_version, self.full_trained_at = full_version, full_trained_at
        self.interactions, self.seen = interactions, seen
        self.interactions_at_full = interactions_at_full
        self.pending_orders = pending_orders
        self.updates = updates
        self.random = np.random.default_rng([seed, len(pair_keys)])
        self._features: sparse.csr_matrix | None = None

    @property
    def n_features(self) -> int:
        return len(self.feature_keys)

    @property
    def drift(self) -> float:
        """Interactions learnt by updates since the full training, as a share of those it
        saw: past a point (docs/recommendations.md) a full training is due again."""
        return (self.interactions - self.interactions_at_full) / max(self.interactions_at_full, 1)

    @classmethod
    def from_trained(
        cls,
        trained: TrainedModel,
        *,
        pending_orders: dict[str, tuple[str, list[str]]] | None = None,
        updates: UpdateParams = UpdateParams(),
    ) -> IncrementalModel:
        """Take over a full training's state: rectools lays LightFM's item rows out as
        [identity of items with interactions | content features]; here they become
        [content features | identity of every item] (zero rows for items without
        interactions, which LightFM represented by their features alone: no change)."""
        dataset, lightfm = trained.dataset, copy.copy(trained.model.model)  # arrays replaced
        hot, n_items = dataset.n_hot_items, len(dataset.item_id_map.external_ids)
        features = dataset.item_features
        names = features.names if features is not None else ()
        n_features = len(names)
        cold = n_items - hot
        for name in (*EMBEDDING_ARRAYS, *BIAS_ARRAYS):
            array = getattr(lightfm, f"item_{name}")
            filler = np.ones if name.endswith("gradients") else np.zeros
            rest = filler((cold, *array.shape[1:]), dtype=np.float32)
            reordered = np.concatenate([array[hot : hot + n_features], array[:hot], rest])
            setattr(lightfm, f"item_{name}", np.ascontiguousarray(reordered))
        item_content = (
            features.get_sparse().tocsr().astype(np.float32)
            if features is not None
            else sparse.csr_matrix((n_items, 0), dtype=np.float32)
        )
        user_ids = [str(u) for u in dataset.user_id_map.external_ids]
        item_ids = [str(i) for i in dataset.item_id_map.external_ids]
        user_index = {user: index for index, user in enumerate(user_ids)}
        item_index = {item: index for index, item in enumerate(item_ids)}
        table = trained.interactions
        users = table["user_id"].map(user_index)
        known = users.notna().to_numpy()
        keys = users[known].to_numpy(np.int64) * PAIR_KEY + table["item_id"][known].map(
            item_index
        ).to_numpy(np.int64)
        sums = pd.Series(table["weight"].to_numpy()[known]).groupby(keys).sum()
        recent = recent_pairs(table[known], item_index)
        histories: dict[int, list[tuple[int, int, int]]] = {}
        for user, index, code, at in zip(
            recent["user_id"].map(user_index),
            recent["index"],
            recent["code"],
            recent["datetime"].astype("int64"),
            strict=True,
        ):
            histories.setdefault(int(user), []).append((int(index), int(code), int(at)))
        return cls(
            lightfm=lightfm,
            params=trained.params,
            seed=trained.seed,
            user_ids=user_ids,
            item_ids=item_ids,
            items={item.item_id: item for item in items_of(trained.items)},
            content=trained.content,
            feature_keys=[feature_key(str(group), str(value)) for group, value in names],
            item_content=item_content,
            pair_keys=sums.index.to_numpy(np.int64),
            pair_sums=sums.to_numpy(np.float64),
            histories=histories,
            version=trained.version,
            trained_at=trained.trained_at,
            full_version=trained.version,
            full_trained_at=trained.trained_at,
            interactions=len(table),
            interactions_at_full=len(table),
            seen=dict(trained.seen),
            pending_orders=dict(pending_orders or {}),
            updates=updates,
        )

    # Growing: new users and items get rows of their own, appended.

    def _grow(self, side: str, count: int) -> None:
        if count <= 0:
            return
        components = self.params.components
        for name in EMBEDDING_ARRAYS:
            array = getattr(self.lightfm, f"{side}_{name}")
            if name == "embeddings":  # as LightFM initialises its own
                added = (self.random.random((count, components)) - 0.5) / components
            elif name == "embedding_gradients":  # adagrad's accumulators start at 1
                added = np.ones((count, components))
            else:
                added = np.zeros((count, components))
            setattr(self.lightfm, f"{side}_{name}", np.vstack([array, added.astype(np.float32)]))
        for name in BIAS_ARRAYS:
            array = getattr(self.lightfm, f"{side}_{name}")
            filler = np.ones if name == "bias_gradients" else np.zeros
            added = filler(count, dtype=np.float32)
            setattr(self.lightfm, f"{side}_{name}", np.concatenate([array, added]))

    def _add_users(self, users: Iterable[str]) -> None:
        new = [user for user in dict.fromkeys(users) if user not in self.user_index]
        for user in new:
            self.user_index[user] = len(self.user_ids)
            self.user_ids.append(user)
        self._grow("user", len(new))

    def _add_items(self, item_ids: Iterable[str]) -> None:
        new = [item for item in dict.fromkeys(item_ids) if item not in self.item_index]
        for item in new:
            self.item_index[item] = len(self.item_ids)
            self.item_ids.append(item)
        self._grow("item", len(new))
        if new:
            rows = [self._content_row(self.items.get(item)) for item in new]
            self.item_content = sparse.vstack([self.item_content, *rows], format="csr")
            self._features = None

    def _content_row(self, item: Item | None) -> sparse.csr_matrix:
        """An item's content features in the vocabulary of the last full training."""
        found: dict[int, float] = {}
        if item is not None and self.content is not None:
            for group, value, weight in self.content.features_of(item):
                index = self.feature_index.get(feature_key(group, value))
                if index is not None:
                    found[index] = weight
        return sparse.csr_matrix(
            (list(found.values()), ([0] * len(found), list(found.keys()))),
            shape=(1, self.n_features),
            dtype=np.float32,
        )

    def item_features(self) -> sparse.csr_matrix:
        """LightFM's item feature matrix: [content | identity] for every item."""
        if self._features is None:
            identity = sparse.identity(len(self.item_ids), dtype=np.float32, format="csr")
            self._features = sparse.hstack([self.item_content, identity], format="csr")
        return self._features

    # Updating.

    def update(
        self,
        interactions: pd.DataFrame,
        items: Iterable[Item] = (),
        *,
        seen: dict[str, int] | None = None,
        now: datetime | None = None,
        before_epoch: Callable[[], None] | None = None,
    ) -> int:
        """Learn from interactions that arrived since the last model; the number of pairs
        trained on (0: nothing to learn, the model is unchanged but for `seen`)."""
        table = checked_interactions(interactions)
        for item in items:
            self.items[item.item_id] = item
        self.seen.update(seen or {})
        if table.empty:
            return 0
        self._add_users(table["user_id"])
        self._add_items(table["item_id"])
        users = table["user_id"].map(self.user_index).to_numpy(np.int64)
        item_rows = table["item_id"].map(self.item_index).to_numpy(np.int64)
        self._remember(users, item_rows, table)
        keys = users * PAIR_KEY + item_rows
        touched = self._add_to_pairs(keys, table["weight"].to_numpy(np.float64))
        self.interactions += len(table)
        liked = touched[self.pair_sums[touched] > 0]
        if len(liked) == 0:
            return 0
        replayed = self.random.integers(0, len(self.pair_keys), self.updates.replay * len(liked))
        chosen = np.unique(np.concatenate([liked, replayed]))
        chosen = chosen[self.pair_sums[chosen] > 0]
        matrix = sparse.coo_matrix(
            (
                np.log1p(self.pair_sums[chosen]).astype(np.float32),
                (self.pair_keys[chosen] // PAIR_KEY, self.pair_keys[chosen] % PAIR_KEY),
            ),
            shape=(len(self.user_ids), len(self.item_ids)),
        )
        features = self.item_features()
        for _ in range(self.updates.epochs):
            if before_epoch is not None:
                before_epoch()
            self.lightfm.fit_partial(matrix, item_features=features, sample_weight=matrix)
        self.trained_at = (now or datetime.now(UTC)).astimezone(UTC)
        digest = hashlib.sha256(f"{self.version}:{self.interactions}".encode())
        digest.update(keys.tobytes())
        self.version = f"{self.trained_at:%Y%m%dT%H%M%S}Z-{digest.hexdigest()[:8]}"
        return len(chosen)

    def _add_to_pairs(self, keys: NDArray[np.int64], weights: NDArray[np.float64]) -> Any:
        """Add the weights to their pairs' totals (new pairs inserted in key order); the
        positions of the pairs touched."""
        sums = pd.Series(weights).groupby(keys).sum()
        new_keys, added = sums.index.to_numpy(np.int64), sums.to_numpy(np.float64)
        at = np.searchsorted(self.pair_keys, new_keys)
        present = (at < len(self.pair_keys)) & (
            self.pair_keys[np.minimum(at, len(self.pair_keys) - 1)] == new_keys
        )
        self.pair_sums[at[present]] += added[present]
        if (~present).any():
            self.pair_keys = np.insert(self.pair_keys, at[~present], new_keys[~present])
            self.pair_sums = np.insert(self.pair_sums, at[~present], added[~present])
        return np.searchsorted(self.pair_keys, new_keys)

    def _remember(
        self, users: NDArray[np.int64], item_rows: NDArray[np.int64], table: pd.DataFrame
    ) -> None:
        """Each user's recent items (the strongest kind per item, the latest time)."""
        codes = table["kind"].map(KIND_CODES).to_numpy()
        times = table["datetime"].astype("int64").to_numpy()
        positive = table["weight"].to_numpy() > 0
        for user, item, code, at, liked in zip(
            users, item_rows, codes, times, positive, strict=True
        ):
            if not liked:
                continue
            history = self.histories.setdefault(int(user), [])
            for position, (known, known_code, known_at) in enumerate(history):
                if known == item:
                    history[position] = (known, max(known_code, int(code)), max(known_at, int(at)))
                    break
            else:
                history.append((int(item), int(code), int(at)))
            history.sort(key=lambda entry: (-entry[2], entry[0]))
            del history[HISTORY_LENGTH:]

    # Serving.

    def popularity(self) -> NDArray[np.float32]:
        """How many users liked each item: the pairs with a positive total."""
        liked = self.pair_keys[self.pair_sums > 0] % PAIR_KEY
        return np.bincount(liked, minlength=len(self.item_ids)).astype(np.float32)

    def to_serving(self) -> ServingModel:
        features = self.item_features()
        embeddings, biases = self.lightfm.item_embeddings, self.lightfm.item_biases
        starts = np.zeros(len(self.user_ids) + 1, dtype=np.int64)
        history_items: list[int] = []
        history_kinds: list[int] = []
        for user in range(len(self.user_ids)):
            entries = self.histories.get(user, [])
            starts[user + 1] = starts[user] + len(entries)
            history_items.extend(entry[0] for entry in entries)
            history_kinds.extend(entry[1] for entry in entries)
        known = [self.items.get(item) for item in self.item_ids]
        counts = {
            "interactions": self.interactions,
            "pairs": len(self.pair_keys),
            "users": len(self.user_ids),
            "items": len(self.item_ids),
        }
        return ServingModel(
            version=self.version,
            trained_at=self.trained_at,
            seen=dict(self.seen),
            details={
                "params": self.params.__dict__,
                "seed": self.seed,
                "counts": counts,
                "full_training": self.full_version,
            },
            item_ids=list(self.item_ids),
            item_names=[item.name if item else "" for item in known],
            item_categories=[item.category if item else None for item in known],
            item_embeddings=np.asarray(features @ embeddings, dtype=np.float32),
            item_biases=np.asarray(features @ biases, dtype=np.float32),
            item_popularity=self.popularity(),
            user_ids=list(self.user_ids),
            user_embeddings=self.lightfm.user_embeddings.astype(np.float32),
            user_biases=self.lightfm.user_biases.astype(np.float32),
            history_starts=starts,
            history_items=np.array(history_items, dtype=np.int32),
            history_kinds=np.array(history_kinds, dtype=np.int8),
            content=self.content,
            feature_keys=list(self.feature_keys),
            feature_embeddings=embeddings[: self.n_features].astype(np.float32),
            feature_biases=biases[: self.n_features].astype(np.float32),
        )


def restored_lightfm(params: HybridParams, seed: int, arrays: dict[str, NDArray[Any]]) -> LightFM:
    """A LightFM with the parameters and the state arrays saved by eventmart.ml.store."""
    model = lightfm_core(params, seed)
    for side in ("user", "item"):
        for name in (*EMBEDDING_ARRAYS, *BIAS_ARRAYS):
            setattr(model, f"{side}_{name}", arrays[f"{side}_{name}"])
    return model
