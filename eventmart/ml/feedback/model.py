"""The feedback model: linear weights over `features.extract`, trained with scikit-learn,
kept as a plain table so prediction needs neither scikit-learn nor numpy.

Four binary heads (one per aspect) and one three-way sentiment head share the features.
Training is deterministic (fixed seeds, solvers without randomness left to chance), and
weights are rounded, so the same data and code give the same artifact byte for byte."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from eventmart.ml.feedback import features as extraction
from eventmart.ml.feedback.corpus_polarity import corpus_bytes
from eventmart.ml.feedback.data import ASPECTS, SENTIMENTS, Example, examples_digest
from eventmart.ml.feedback.encoder import DIMENSIONS, encoder_release
from eventmart.ml.feedback.features import ENCODER_PREFIX, encode_all, extract
from eventmart.ml.feedback.lexicon import lexicon_bytes
from eventmart.ml.feedback.text import Language

# The code that turns text into features and weights: part of the model's version.
MODULES: tuple[str, ...] = ("text.py", "lexicon.py", "words.py", "corpus_polarity.py")
MODULES = (*MODULES, "encoder.py", "features.py", "model.py")
MODEL_SERIES = "1.0"  # bump by hand when the meaning of the labels changes
HEADS = len(ASPECTS) + len(SENTIMENTS)
ASPECT_REGULARISATION = 4.0  # scikit-learn's C: larger trusts the training data more
SENTIMENT_REGULARISATION = 4.0
SEED = 14
DIGITS = 6


@dataclass(frozen=True)
class Classification:
    lang: Language
    aspects: tuple[str, ...]  # in the order of ASPECTS
    sentiment: str
    sentiment_confidence: float

    def as_labels(self) -> dict[str, Any]:
        return {"lang": self.lang, "aspects": list(self.aspects), "sentiment": self.sentiment}


@dataclass(frozen=True)
class FeedbackModel:
    version: str
    weights: dict[str, tuple[float, ...]]  # feature -> one weight per head
    intercepts: tuple[float, ...]
    thresholds: tuple[float, ...]  # per aspect, on the probability

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        vectors = encode_all(texts)
        encoded = self._encoder_scores(vectors)
        return [self._classify_one(t, e) for t, e in zip(texts, encoded, strict=True)]

    def _encoder_scores(self, vectors: Sequence[Sequence[float] | None]) -> list[list[float]]:
        """The encoder features' part of every head's score, for the batch at once: one
        matrix product instead of 256 dictionary features per review."""
        if not vectors or vectors[0] is None:
            return [[0.0] * HEADS for _ in vectors]
        import numpy as np

        scale = extraction.ENCODER_SCALE
        scores: list[list[float]] = (scale * (np.array(vectors) @ self._encoder_table)).tolist()
        return scores

    @cached_property
    def _encoder_table(self) -> Any:
        """The encoder features' weights as a (dimensions, heads) matrix."""
        import numpy as np

        table = np.zeros((DIMENSIONS, HEADS))
        for index in range(DIMENSIONS):
            row = self.weights.get(f"{ENCODER_PREFIX}{index}")
            if row is not None:
                table[index] = row
        return table

    def _classify_one(self, text: str, encoded: list[float]) -> Classification:
        language, features = extract(text, encoded=False)
        scores = [b + e for b, e in zip(self.intercepts, encoded, strict=True)]
        weights = self.weights
        for name, value in features.items():
            row = weights.get(name)
            if row is not None:
                for head in range(HEADS):
                    scores[head] += value * row[head]
        aspects = tuple(
            aspect
            for index, aspect in enumerate(ASPECTS)
            if _sigmoid(scores[index]) >= self.thresholds[index]
        )
        sentiment_scores = scores[len(ASPECTS) :]
        best = max(range(len(SENTIMENTS)), key=sentiment_scores.__getitem__)
        top = sentiment_scores[best]
        total = sum(math.exp(score - top) for score in sentiment_scores)
        return Classification(language, aspects, SENTIMENTS[best], round(1.0 / total, 4))

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "heads": [*ASPECTS, *SENTIMENTS],
                "intercepts": self.intercepts,
                "thresholds": self.thresholds,
                "weights": self.weights,
            },
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> FeedbackModel:
        raw = json.loads(text)
        if raw.get("heads") != [*ASPECTS, *SENTIMENTS]:
            raise ValueError("the artifact's heads are not this code's aspects and sentiments")
        return cls(
            version=raw["version"],
            weights={name: tuple(row) for name, row in raw["weights"].items()},
            intercepts=tuple(raw["intercepts"]),
            thresholds=tuple(raw["thresholds"]),
        )

    def save(self, path: Path) -> None:
        """Write atomically, so a reader never sees half an artifact."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(self.to_json(), encoding="utf-8")
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> FeedbackModel:
        return cls.from_json(path.read_text(encoding="utf-8"))


def _sigmoid(score: float) -> float:
    return 1.0 / (1.0 + math.exp(-score)) if score > -60 else 0.0


def model_version(examples: Sequence[Example]) -> str:
    """`feedback-<series>-<hash>`: the hash covers the examples, the lexicons and corpus
    table, the code that turns text into features and weights, the scikit-learn release
    and the sentence encoder's."""
    import sklearn

    digest = hashlib.sha256()
    digest.update(examples_digest(examples).encode())
    digest.update(lexicon_bytes())
    digest.update(corpus_bytes())
    package = resources.files("eventmart.ml.feedback")
    for module in MODULES:
        digest.update(package.joinpath(module).read_bytes())
    digest.update(sklearn.__version__.encode())
    digest.update(encoder_release().encode())
    return f"feedback-{MODEL_SERIES}-{digest.hexdigest()[:12]}"


def train(examples: Sequence[Example]) -> FeedbackModel:
    """Fit the five heads on labelled examples; the same examples give the same model."""
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    if len({e.sentiment for e in examples}) < 2:
        raise ValueError("training needs examples of at least two sentiments")
    # One order whatever the caller's: the solvers' sums, and so the last digits, follow it.
    examples = sorted(examples, key=lambda e: (e.text, sorted(e.aspects), e.sentiment))
    vectorizer = DictVectorizer(sort=True)
    vectors = encode_all([e.text for e in examples])
    rows = [extract(e.text, v)[1] for e, v in zip(examples, vectors, strict=True)]
    matrix = vectorizer.fit_transform(rows).tocsr()
    matrix.indices = matrix.indices.astype(np.int32)  # liblinear takes 32-bit indices only
    matrix.indptr = matrix.indptr.astype(np.int32)
    names = vectorizer.get_feature_names_out()
    coefficients = np.zeros((len(names), HEADS))
    intercepts = [0.0] * HEADS
    for index, aspect in enumerate(ASPECTS):
        labels = np.array([aspect in e.aspects for e in examples], dtype=int)
        if labels.min() == labels.max():  # no example (or every example) names it
            intercepts[index] = 30.0 if labels.max() else -30.0
            continue
        head = LogisticRegression(
            C=ASPECT_REGULARISATION, solver="liblinear", random_state=SEED, max_iter=1000
        ).fit(matrix, labels)
        coefficients[:, index] = head.coef_[0]
        intercepts[index] = float(head.intercept_[0])
    sentiment_labels = np.array([SENTIMENTS.index(e.sentiment) for e in examples])
    sentiment = LogisticRegression(
        C=SENTIMENT_REGULARISATION, solver="lbfgs", max_iter=5000, class_weight="balanced"
    ).fit(matrix, sentiment_labels)
    for column, label in enumerate(sentiment.classes_):
        coefficients[:, len(ASPECTS) + int(label)] = sentiment.coef_[column]
        intercepts[len(ASPECTS) + int(label)] = float(sentiment.intercept_[column])
    weights = {
        str(name): tuple(round(float(w), DIGITS) for w in row)
        for name, row in zip(names, coefficients, strict=True)
        if np.abs(row).max() >= 10**-DIGITS
    }
    return FeedbackModel(
        version=model_version(examples),
        weights=weights,
        intercepts=tuple(round(value, DIGITS) for value in intercepts),
        thresholds=(0.5,) * len(ASPECTS),
    )
