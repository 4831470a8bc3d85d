"""Offline evaluation on a generated log with a planted taste structure: the hybrid must
rank above popularity, so replacing it by popularity fails these tests."""

from __future__ import annotations

import pandas as pd
import pytest

from eventmart.ml.evaluation import (
    HYBRID,
    ITEM_KNN,
    MODELS,
    NO_FEATURES,
    POPULAR,
    evaluate,
    time_split,
)
from eventmart.ml.interactions import Interaction, interactions_frame, items_frame
from eventmart.ml.synthetic import planted_log
from eventmart.ml.tuning import tune

METRICS = {"precision@10", "recall@10", "ndcg@10", "map@10", "coverage@10", "distinct_items@10"}


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, pd.DataFrame]:
    return planted_log(users=300, items=200, groups=5, per_user=20, seed=3)


@pytest.fixture(scope="module")
def results(planted: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, dict[str, float]]:
    interactions, items = planted
    return evaluate(time_split(interactions, items), seed=0)


def test_every_model_gets_every_metric(results: dict[str, dict[str, float]]) -> None:
    assert tuple(results) == MODELS
    for figures in results.values():
        assert METRICS <= set(figures)
        assert all(0 <= figures[m] <= 1 for m in METRICS - {"distinct_items@10"})


def test_the_hybrid_ranks_far_above_popularity(results: dict[str, dict[str, float]]) -> None:
    hybrid, popular = results[HYBRID], results[POPULAR]
    assert hybrid["ndcg@10"] >= 1.5 * popular["ndcg@10"]
    assert hybrid["precision@10"] > popular["precision@10"]
    assert hybrid["map@10"] > popular["map@10"]


def test_the_hybrid_covers_many_more_items_than_popularity(
    results: dict[str, dict[str, float]],
) -> None:
    assert results[POPULAR]["distinct_items@10"] <= 25  # the same best sellers for everyone
    assert results[HYBRID]["distinct_items@10"] >= 5 * results[POPULAR]["distinct_items@10"]


def test_collaborative_models_learn_the_groups_too(results: dict[str, dict[str, float]]) -> None:
    assert results[NO_FEATURES]["ndcg@10"] > results[POPULAR]["ndcg@10"]
    assert results[ITEM_KNN]["ndcg@10"] > results[POPULAR]["ndcg@10"]


def test_the_split_puts_the_last_fifth_by_time_in_the_test_period(
    planted: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    interactions, items = planted
    split = time_split(interactions, items)
    assert split.train["datetime"].max() < split.cutoff
    assert split.figures["test_interactions"] == pytest.approx(0.2 * len(interactions), abs=2)
    assert split.figures["train_interactions"] + split.figures["test_interactions"] == len(
        interactions
    )


def test_only_warm_users_new_pairs_are_scored_and_cold_users_are_counted() -> None:
    day = pd.Timestamp("2026-01-01")
    rows = [
        Interaction.purchase("ann", "mug", day),
        Interaction.purchase("bob", "lamp", day + pd.Timedelta(days=1)),
        Interaction.purchase("ann", "lamp", day + pd.Timedelta(days=2)),
        Interaction.purchase("ann", "mug", day + pd.Timedelta(days=10)),  # a repeat
        Interaction.purchase("bob", "vase", day + pd.Timedelta(days=11)),  # new pair, warm
        Interaction.purchase("cy", "mug", day + pd.Timedelta(days=12)),  # a cold user
    ]
    split = time_split(interactions_frame(rows), items_frame([]), test_share=0.5)
    assert split.test[["user_id", "item_id"]].values.tolist() == [["bob", "vase"]]
    assert split.figures["cold_test_users"] == 1
    assert split.figures["repeat_pairs_dropped"] == 1
    assert split.figures["test_pairs_with_unknown_item"] == 1  # vase was never seen before


def test_tuning_carves_its_validation_split_from_the_training_part_only(
    planted: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    interactions, items = planted
    split = time_split(interactions, items)
    tuned = tune(
        split.train,
        split.items,
        seeds=(0,),
        grid={"components": [8], "epochs": [5]},
        knn_neighbours=(10, 50),
    )
    validation = tuned.validation
    assert validation.cutoff < split.cutoff
    assert validation.figures["train_interactions"] + validation.figures[
        "test_interactions"
    ] == len(split.train)
    # start, components=8, epochs=5 for both LightFM models; two kNN sizes
    assert [model for model, _, _ in tuned.tried] == [HYBRID] * 3 + [NO_FEATURES] * 3 + [
        ITEM_KNN
    ] * 2
    best_hybrid = max((s, p) for m, p, s in tuned.tried if m == HYBRID)[1]
    assert tuned.choices.hybrid.components == best_hybrid["components"]
    assert tuned.choices.knn_neighbours in {10, 50}
