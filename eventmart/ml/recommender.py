"""The recommender: a LightFM hybrid (WARP loss, item content features) trained through
rectools, versioned, and exported to a `ServingModel` that scores from numpy arrays.

    trained = train(interactions, items, seen={"orders.events:0": 4211})
    serving = trained.to_serving()          # small, numpy only
    store.save(serving, models_dir)         # <models_dir>/<version>/ + LATEST
    serving.recommend("user-1", 10, exclude=already_bought)

Data in, model out: no Kafka, HTTP or SQL here. `interactions` and `items` are the
tables of `eventmart.ml.interactions` (its docstring documents the weights).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from lightfm import LightFM
from rectools.dataset import Dataset
from rectools.models import LightFMWrapperModel

from eventmart.ml.features import ContentFeatures, feature_key
from eventmart.ml.history import user_histories
from eventmart.ml.interactions import (
    InvalidInteractions,
    checked_interactions,
    checked_items,
    item_popularity,
    pair_table,
)
from eventmart.ml.serving import ServingModel


@dataclass(frozen=True)
class HybridParams:
    """LightFM's hyperparameters and the content features' shape. The defaults were chosen
    on a validation split carved from the training part of the Online Retail data
    (docs/recommendations.md has the grid and the figures)."""

    components: int = 32
    epochs: int = 60
    learning_rate: float = 0.02
    item_alpha: float = 1e-6
    user_alpha: float = 0.0
    max_sampled: int = 10
    use_item_features: bool = True
    words_weight: float = 1.0
    max_words: int = 2000


@dataclass
class TrainedModel:
    """A fitted model with what it needs to recommend through rectools, and the record of
    what it saw: the caller's log offsets (`seen`) and the counts of its input."""

    version: str
    trained_at: datetime
    params: HybridParams
    seed: int
    seen: dict[str, int]
    counts: dict[str, int]
    model: LightFMWrapperModel
    dataset: Dataset
    content: ContentFeatures | None
    interactions: pd.DataFrame = field(repr=False)
    items: pd.DataFrame = field(repr=False)

    def to_serving(self) -> ServingModel:
        """The arrays serving needs, taken out of LightFM once: scoring is then a dot
        product, with no rectools or LightFM call on the request path."""
        user_vectors, item_vectors = self.model.get_vectors(self.dataset, add_biases=True)
        # get_vectors puts (bias, 1) before a user's embedding and (1, bias) before an item's.
        item_ids = [str(i) for i in self.dataset.item_id_map.external_ids]
        by_id = self.items.set_index("item_id")
        names = by_id["name"].reindex(item_ids).fillna("")
        categories = by_id["category"].reindex(item_ids)
        popularity = item_popularity(self.interactions).reindex(item_ids).fillna(0)
        lightfm: LightFM = self.model.model
        hot = self.dataset.n_hot_items
        features = self.dataset.item_features  # None without content, or with no feature found
        feature_names = features.names if features is not None else ()
        user_ids = [str(u) for u in self.dataset.user_id_map.external_ids]
        starts, history_items, history_kinds = user_histories(
            self.interactions, user_ids, {item: index for index, item in enumerate(item_ids)}
        )
        return ServingModel(
            version=self.version,
            trained_at=self.trained_at,
            seen=dict(self.seen),
            details={"params": asdict(self.params), "seed": self.seed, "counts": self.counts},
            item_ids=item_ids,
            item_names=[str(name) for name in names],
            item_categories=[None if pd.isna(c) else str(c) for c in categories],
            item_embeddings=item_vectors[:, 2:].astype(np.float32),
            item_biases=item_vectors[:, 1].astype(np.float32),
            item_popularity=popularity.to_numpy(dtype=np.float32),
            user_ids=user_ids,
            user_embeddings=user_vectors[:, 2:].astype(np.float32),
            user_biases=user_vectors[:, 0].astype(np.float32),
            history_starts=starts,
            history_items=history_items,
            history_kinds=history_kinds,
            content=self.content,
            feature_keys=[feature_key(str(group), str(value)) for group, value in feature_names],
            feature_embeddings=lightfm.item_embeddings[hot:].astype(np.float32),
            feature_biases=lightfm.item_biases[hot:].astype(np.float32),
        )


def build_dataset(
    pairs: pd.DataFrame, items: pd.DataFrame, content: ContentFeatures | None
) -> Dataset:
    """rectools' Dataset of the (user, item) pairs, with the catalogue's content features
    when given: items with features but no interactions are then part of it too."""
    if content is None:
        return Dataset.construct(pairs)
    flat = content.flat_table(items)
    if flat.empty:
        return Dataset.construct(pairs)
    groups = sorted(flat["feature"].unique())
    return Dataset.construct(pairs, item_features_df=flat, cat_item_features=groups)


def lightfm_core(params: HybridParams, seed: int) -> LightFM:
    return LightFM(
        no_components=params.components,
        loss="warp",
        learning_rate=params.learning_rate,
        item_alpha=params.item_alpha,
        user_alpha=params.user_alpha,
        max_sampled=params.max_sampled,
        random_state=seed,
    )


def lightfm_model(params: HybridParams, seed: int, threads: int = 1) -> LightFMWrapperModel:
    """Fitted one epoch per `fit_partial` call, so training can report its progress."""
    return LightFMWrapperModel(lightfm_core(params, seed), epochs=1, num_threads=threads)


def train(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    *,
    params: HybridParams = HybridParams(),
    seed: int = 0,
    seen: Mapping[str, int] | None = None,
    threads: int = 1,
    on_epoch: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
) -> TrainedModel:
    """Fit the hybrid on every interaction given. One thread (the default) gives the same
    model for the same input and seed; more threads train faster but LightFM's parallel
    updates are not reproducible. `seen` is the caller's record of the log it read
    (e.g. "topic:partition" -> next offset); `on_epoch(done, total)` reports progress."""
    interactions = checked_interactions(interactions)
    items = checked_items(items)
    pairs = pair_table(interactions)
    if pairs.empty:
        raise InvalidInteractions("no interaction with a positive weight: nothing to learn from")
    content = (
        ContentFeatures.build(items, max_words=params.max_words, words_weight=params.words_weight)
        if params.use_item_features
        else None
    )
    dataset = build_dataset(pairs, items, content)
    model = lightfm_model(params, seed, threads)
    for epoch in range(params.epochs):
        model.fit_partial(dataset, epochs=1)
        if on_epoch is not None:
            on_epoch(epoch + 1, params.epochs)
    trained_at = (now or datetime.now(UTC)).astimezone(UTC)
    counts = {
        "interactions": len(interactions),
        "pairs": len(pairs),
        "users": dataset.n_hot_users,
        "items": len(dataset.item_id_map.external_ids),
        "items_with_interactions": dataset.n_hot_items,
    }
    return TrainedModel(
        version=model_version(trained_at, pairs, params, seed),
        trained_at=trained_at,
        params=params,
        seed=seed,
        seen=dict(seen or {}),
        counts=counts,
        model=model,
        dataset=dataset,
        content=content,
        interactions=interactions,
        items=items,
    )


def model_version(
    trained_at: datetime, pairs: pd.DataFrame, params: HybridParams, seed: int
) -> str:
    """Sortable by training time, and naming what went in: the same time with other data or
    parameters gives another version."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(pairs, index=False).to_numpy().tobytes())
    digest.update(json.dumps({"params": asdict(params), "seed": seed}, sort_keys=True).encode())
    return f"{trained_at:%Y%m%dT%H%M%S}Z-{digest.hexdigest()[:8]}"
