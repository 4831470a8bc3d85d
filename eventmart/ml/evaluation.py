"""Honest offline evaluation: a time split, every model trained on the past only, and
rectools' ranking metrics on the future, against baselines on the same split.

The split (`time_split`): the last `test_share` of interactions by time is the test
period. Its ground truth is, per user, the items liked (weight > 0) then that the user
had not touched before the cutoff; the shop never re-recommends what a user bought, and
all models here filter what the user already touched (`filter_viewed`), so a repeat
could never be hit. Only warm users (with training interactions) are scored: a cold
user gets popularity from every model here, as in production, and is only counted.
Test pairs whose item has no training interaction stay in the ground truth as misses:
no model could have known that item, which is the honest figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd
from implicit.nearest_neighbours import CosineRecommender
from rectools.dataset import Dataset
from rectools.metrics import MAP, NDCG, CatalogCoverage, Precision, Recall, calc_metrics
from rectools.metrics.base import MetricAtK
from rectools.models import ImplicitItemKNNWrapperModel, PopularModel
from rectools.models.base import ModelBase

from eventmart.ml.interactions import checked_interactions, checked_items, pair_table
from eventmart.ml.recommender import HybridParams, train
from eventmart.ml.serving import ServingModel

HYBRID, NO_FEATURES, POPULAR, ITEM_KNN = (
    "lightfm_hybrid",
    "lightfm_no_features",
    "popular",
    "item_knn",
)
MODELS = (HYBRID, NO_FEATURES, POPULAR, ITEM_KNN)


def metric_set(k: int = 10) -> dict[str, MetricAtK]:
    """rectools' metrics at k; coverage is distinct items in all top-k lists / catalogue."""
    return {
        f"precision@{k}": Precision(k),
        f"recall@{k}": Recall(k),
        f"ndcg@{k}": NDCG(k),
        f"map@{k}": MAP(k),
        f"coverage@{k}": CatalogCoverage(k, normalize=True),
        f"distinct_items@{k}": CatalogCoverage(k, normalize=False),
    }


# Chosen by `tune` on the Online Retail training part, as the hybrid's are
# (docs/recommendations.md).
NO_FEATURES_PARAMS = HybridParams(
    components=64,
    epochs=20,
    learning_rate=0.02,
    item_alpha=0.0,
    max_sampled=10,
    use_item_features=False,
)


@dataclass(frozen=True)
class ModelChoices:
    """The hyperparameters every model of the comparison is trained with."""

    hybrid: HybridParams = field(default_factory=HybridParams)
    no_features: HybridParams = field(default_factory=lambda: NO_FEATURES_PARAMS)
    knn_neighbours: int = 200


DEFAULT_CHOICES = ModelChoices()


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    cutoff: pd.Timestamp
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def catalogue(self) -> list[str]:
        return sorted(self.train["item_id"].unique())


def time_split(
    interactions: pd.DataFrame, items: pd.DataFrame, test_share: float = 0.2
) -> TimeSplit:
    """Interactions at or after the cutoff (the time of the first of the last `test_share`
    of them) are the test period; see the module docstring for what is scored."""
    if not 0 < test_share < 1:
        raise ValueError("test_share must be between 0 and 1")
    table = checked_interactions(interactions).sort_values("datetime", kind="stable")
    if len(table) < 2:
        raise ValueError("too few interactions to split")
    cutoff = table["datetime"].iloc[int(len(table) * (1 - test_share))]
    train_part = table[table["datetime"] < cutoff]
    later = table[(table["datetime"] >= cutoff) & (table["weight"] > 0)]
    warm_users = set(train_part["user_id"])
    seen_pairs = set(zip(train_part["user_id"], train_part["item_id"], strict=True))
    warm = later[later["user_id"].isin(warm_users)]
    is_new = [pair not in seen_pairs for pair in zip(warm["user_id"], warm["item_id"], strict=True)]
    test = warm[is_new].drop_duplicates(["user_id", "item_id"])[["user_id", "item_id"]]
    catalogue = set(train_part["item_id"])
    figures = {
        "train_interactions": len(train_part),
        "test_interactions": len(table) - len(train_part),
        "test_users": later["user_id"].nunique(),
        "cold_test_users": len(set(later["user_id"]) - warm_users),
        "repeat_pairs_dropped": int(len(warm) - sum(is_new)),
        "scored_users": test["user_id"].nunique(),
        "test_pairs": len(test),
        "test_pairs_with_unknown_item": int((~test["item_id"].isin(catalogue)).sum()),
        "catalogue": len(catalogue),
    }
    known_items = checked_items(items)
    return TimeSplit(
        train=train_part.reset_index(drop=True),
        test=test.reset_index(drop=True),
        items=known_items[known_items["item_id"].isin(catalogue)].reset_index(drop=True),
        cutoff=cutoff,
        figures=figures,
    )


def _fitted_models(
    split: TimeSplit, choices: ModelChoices, seed: int, threads: int
) -> dict[str, Callable[[], tuple[ModelBase, Dataset]]]:
    """Each model's training, deferred so the caller can time and report each one."""
    pairs = pair_table(split.train)

    def lightfm(params: HybridParams) -> tuple[ModelBase, Dataset]:
        trained = train(split.train, split.items, params=params, seed=seed, threads=threads)
        return trained.model, trained.dataset

    def baseline(model: ModelBase) -> tuple[ModelBase, Dataset]:
        dataset = Dataset.construct(pairs)
        return model.fit(dataset), dataset

    return {
        HYBRID: lambda: lightfm(replace(choices.hybrid, use_item_features=True)),
        NO_FEATURES: lambda: lightfm(replace(choices.no_features, use_item_features=False)),
        POPULAR: lambda: baseline(PopularModel()),
        ITEM_KNN: lambda: baseline(
            ImplicitItemKNNWrapperModel(CosineRecommender(K=choices.knn_neighbours))
        ),
    }


def evaluate(
    split: TimeSplit,
    *,
    choices: ModelChoices = DEFAULT_CHOICES,
    models: tuple[str, ...] = MODELS,
    seed: int = 0,
    k: int = 10,
    threads: int = 1,
    on_model: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """{model: {metric: value}} on the split's test period, plus each model's train_seconds."""
    if split.test.empty:
        raise ValueError("the test period has no new pair of a warm user: nothing to score")
    users = split.test["user_id"].unique()
    prev = pair_table(split.train)[["user_id", "item_id"]]
    fitters = _fitted_models(split, choices, seed, threads)
    results: dict[str, dict[str, float]] = {}
    for name in models:
        if on_model is not None:
            on_model(name)
        started = time.perf_counter()
        model, dataset = fitters[name]()
        seconds = time.perf_counter() - started
        reco = model.recommend(users, dataset, k=k, filter_viewed=True)
        figures = calc_metrics(
            metric_set(k), reco, split.test, prev_interactions=prev, catalog=split.catalogue
        )
        results[name] = {**{m: float(v) for m, v in figures.items()}, "train_seconds": seconds}
    return results


def evaluate_serving(split: TimeSplit, model: ServingModel, k: int = 10) -> dict[str, float]:
    """rectools' metrics of a serving model's own recommendations on the split's test
    period (each user's training items excluded, as the shop excludes what was touched):
    how the incrementally trained model and a full training are compared."""
    if split.test.empty:
        raise ValueError("the test period has no new pair of a warm user: nothing to score")
    prev = pair_table(split.train)[["user_id", "item_id"]]
    touched = prev.groupby("user_id")["item_id"].agg(set)
    rows = [
        (user, found.item_id, rank)
        for user in split.test["user_id"].unique()
        for rank, found in enumerate(model.recommend(user, k, exclude=touched.get(user, ())), 1)
    ]
    reco = pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])
    figures = calc_metrics(
        metric_set(k), reco, split.test, prev_interactions=prev, catalog=split.catalogue
    )
    return {name: float(value) for name, value in figures.items()}
