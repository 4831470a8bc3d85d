"""Hyperparameters chosen on a validation split carved from the training part only (the
last share of it by time, scored exactly as `time_split` scores a test period); the test
period is never looked at. A coordinate search: vary one parameter at a time over its
values, keep the best by NDCG@10 averaged over a few seeds, go on to the next."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from eventmart.ml.evaluation import (
    DEFAULT_CHOICES,
    HYBRID,
    ITEM_KNN,
    NO_FEATURES,
    ModelChoices,
    TimeSplit,
    evaluate,
    time_split,
)
from eventmart.ml.recommender import HybridParams

LIGHTFM_GRID: dict[str, list[Any]] = {
    "components": [16, 32, 64],
    "epochs": [10, 20, 30, 60],
    "learning_rate": [0.02, 0.05, 0.1],
    "item_alpha": [0.0, 1e-6, 1e-5],
    "max_sampled": [10, 30],
}
WORDS_GRID: dict[str, list[Any]] = {"words_weight": [0.5, 1.0, 2.0]}
KNN_NEIGHBOURS = (10, 20, 50, 100, 200)
METRIC = "ndcg@10"


@dataclass
class Tuning:
    choices: ModelChoices
    validation: TimeSplit
    tried: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)


def _coordinate_search(
    start: HybridParams, grid: dict[str, list[Any]], score: Callable[[HybridParams], float]
) -> HybridParams:
    best, best_score = start, score(start)
    for name, values in grid.items():
        for value in values:
            if getattr(best, name) == value:
                continue
            candidate = replace(best, **{name: value})
            candidate_score = score(candidate)
            if candidate_score > best_score:
                best, best_score = candidate, candidate_score
    return best


def tune(
    train_part: pd.DataFrame,
    items: pd.DataFrame,
    *,
    start: ModelChoices = DEFAULT_CHOICES,
    seeds: tuple[int, ...] = (0, 1),
    validation_share: float = 0.2,
    grid: dict[str, list[Any]] | None = None,
    knn_neighbours: tuple[int, ...] = KNN_NEIGHBOURS,
    threads: int = 1,
    on_trial: Callable[[str, dict[str, Any], float], None] | None = None,
) -> Tuning:
    """Choices for every model, from `train_part` alone (the caller's training period).
    `grid` replaces LIGHTFM_GRID (and WORDS_GRID), e.g. for a quick look."""
    validation = time_split(train_part, items, validation_share)
    tuning = Tuning(start, validation)
    lightfm_grid = LIGHTFM_GRID if grid is None else grid
    words_grid = WORDS_GRID if grid is None else {}

    def trial(model: str, choices: ModelChoices, shown: dict[str, Any]) -> float:
        scores = [
            evaluate(validation, choices=choices, models=(model,), seed=seed, threads=threads)[
                model
            ][METRIC]
            for seed in seeds
        ]
        mean = sum(scores) / len(scores)
        tuning.tried.append((model, shown, mean))
        if on_trial is not None:
            on_trial(model, shown, mean)
        return mean

    def hybrid_score(params: HybridParams) -> float:
        return trial(HYBRID, replace(start, hybrid=params), _shown(params))

    def no_features_score(params: HybridParams) -> float:
        return trial(NO_FEATURES, replace(start, no_features=params), _shown(params))

    hybrid = _coordinate_search(start.hybrid, {**lightfm_grid, **words_grid}, hybrid_score)
    no_features = _coordinate_search(start.no_features, lightfm_grid, no_features_score)
    knn_scores = {
        k: trial(ITEM_KNN, replace(start, knn_neighbours=k), {"neighbours": k})
        for k in knn_neighbours
    }
    best_knn = max(knn_neighbours, key=lambda k: (knn_scores[k], -k))
    tuning.choices = ModelChoices(hybrid=hybrid, no_features=no_features, knn_neighbours=best_knn)
    return tuning


def _shown(params: HybridParams) -> dict[str, Any]:
    names = [*LIGHTFM_GRID, *(WORDS_GRID if params.use_item_features else {})]
    return {name: getattr(params, name) for name in names}
