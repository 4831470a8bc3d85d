"""The held-out report: train on the training split only, score the model and its
baselines on the held-out split. `analyst train-classifier`, the benchmark and the
baseline test all use it, so the figures they show are the same figures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from eventmart.ml.feedback.baselines import LexiconBaseline, MajorityBaseline, ToolkitBaseline
from eventmart.ml.feedback.data import Example, shipped_examples
from eventmart.ml.feedback.metrics import evaluate
from eventmart.ml.feedback.model import Classification, FeedbackModel, train


class Classifier(Protocol):
    def classify(self, texts: list[str]) -> list[Classification]: ...


@dataclass(frozen=True)
class HeldOutReport:
    model: FeedbackModel  # trained on the training split only
    train_count: int
    held_out_count: int
    figures: dict[str, dict[str, Any]]  # "model" and each baseline -> evaluate(...)
    outside_count: int
    outside: dict[str, dict[str, Any]]  # the same, on the independently written half
    fresh_count: int
    fresh: dict[str, dict[str, Any]]  # the same, on the fresh set a fourth hand wrote


def score(classifier: Classifier, examples: list[Example]) -> dict[str, Any]:
    predicted = classifier.classify([e.text for e in examples])
    languages = [e.lang or p.lang for e, p in zip(examples, predicted, strict=True)]
    return evaluate(examples, predicted, languages)


def held_out_report(
    with_toolkits: bool = True,
    on_step: Callable[[str], None] = lambda _: None,
    model: FeedbackModel | None = None,
) -> HeldOutReport:
    """`model`, if given, must have been trained on the training split alone."""
    training, held_out = shipped_examples("train"), shipped_examples("heldout")
    outside, fresh = shipped_examples("outside"), shipped_examples("fresh")
    on_step("training on the training split")
    model = model or train(training)
    on_step("scoring the held-out split and the independently written sets")
    baselines: dict[str, Classifier] = {
        "model": model,
        "majority": MajorityBaseline(training),
        "lexicon": LexiconBaseline(),
    }
    if with_toolkits:
        on_step("scoring VADER and snownlp")
        baselines["vader+snownlp"] = ToolkitBaseline()
    figures = {name: score(classifier, held_out) for name, classifier in baselines.items()}
    outside_figures = {name: score(classifier, outside) for name, classifier in baselines.items()}
    fresh_figures = {name: score(classifier, fresh) for name, classifier in baselines.items()}
    return HeldOutReport(
        model,
        len(training),
        len(held_out),
        figures,
        len(outside),
        outside_figures,
        len(fresh),
        fresh_figures,
    )
