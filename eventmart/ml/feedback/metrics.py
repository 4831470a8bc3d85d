"""Scoring predictions against labels: per-aspect precision, recall and F1, the aspects'
macro-F1, sentiment accuracy and macro-F1 and its confusion matrix, overall and per
language."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from eventmart.ml.feedback.data import ASPECTS, LANGUAGES, SENTIMENTS


class Labelled(Protocol):
    @property
    def aspects(self) -> Collection[str]: ...
    @property
    def sentiment(self) -> str: ...


def evaluate(
    gold: Sequence[Labelled], predicted: Sequence[Labelled], languages: Sequence[str]
) -> dict[str, Any]:
    """Figures for all lines (`overall`) and for each language present (`by_language`)."""
    if not len(gold) == len(predicted) == len(languages):
        raise ValueError("gold, predicted and languages must be the same length")
    report: dict[str, Any] = {"overall": _figures(gold, predicted), "by_language": {}}
    for language in LANGUAGES:
        chosen = [i for i, lang in enumerate(languages) if lang == language]
        if chosen:
            report["by_language"][language] = _figures(
                [gold[i] for i in chosen], [predicted[i] for i in chosen]
            )
    return report


def _figures(gold: Sequence[Labelled], predicted: Sequence[Labelled]) -> dict[str, Any]:
    aspects = {}
    for aspect in ASPECTS:
        truth = [aspect in g.aspects for g in gold]
        guess = [aspect in p.aspects for p in predicted]
        aspects[aspect] = _precision_recall_f1(truth, guess)
    confusion = {
        actual: {guessed: 0 for guessed in SENTIMENTS} for actual in SENTIMENTS
    }  # rows: label, columns: prediction
    for g, p in zip(gold, predicted, strict=True):
        confusion[g.sentiment][p.sentiment] += 1
    sentiment_f1 = {
        label: _precision_recall_f1(
            [g.sentiment == label for g in gold], [p.sentiment == label for p in predicted]
        )
        for label in SENTIMENTS
    }
    correct = sum(confusion[label][label] for label in SENTIMENTS)
    return {
        "count": len(gold),
        "aspects": aspects,
        "aspect_macro_f1": _mean(
            [f["f1"] for f in aspects.values() if f["support"] or f["predicted"]]
        ),
        "exact_aspect_sets": _ratio(
            sum(set(g.aspects) == set(p.aspects) for g, p in zip(gold, predicted, strict=True)),
            len(gold),
        ),
        "sentiment": sentiment_f1,
        "sentiment_accuracy": _ratio(correct, len(gold)),
        "sentiment_macro_f1": _mean(
            [f["f1"] for f in sentiment_f1.values() if f["support"] or f["predicted"]]
        ),
        "sentiment_confusion": confusion,
    }


def _precision_recall_f1(truth: Sequence[bool], guess: Sequence[bool]) -> dict[str, float]:
    true_positive = sum(t and g for t, g in zip(truth, guess, strict=True))
    precision = _ratio(true_positive, sum(guess))
    recall = _ratio(true_positive, sum(truth))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": sum(truth),
        "predicted": sum(guess),
    }


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0
