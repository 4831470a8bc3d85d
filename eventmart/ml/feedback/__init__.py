"""Bilingual review feedback: which aspects a review talks about (quality, shipping,
price, service) and its overall sentiment, for Chinese (simplified and traditional) and
English. Data in, model out; model and texts in, classifications out.

    model = load_default()            # trained from the shipped data once, then cached
    model.classify(["物流很快，质量一般"])  # [Classification(lang='zh', aspects=(...), ...)]
    model.version                     # 'feedback-1.0-…', stored with every classification
"""

from __future__ import annotations

from eventmart.ml.feedback.data import (
    ASPECTS,
    LANGUAGES,
    SENTIMENTS,
    Example,
    InvalidExample,
    parse_examples,
    read_jsonl,
    shipped_examples,
)
from eventmart.ml.feedback.metrics import evaluate
from eventmart.ml.feedback.model import Classification, FeedbackModel, model_version, train
from eventmart.ml.feedback.store import default_cache_dir, load_default

__all__ = [
    "ASPECTS",
    "LANGUAGES",
    "SENTIMENTS",
    "Classification",
    "Example",
    "FeedbackModel",
    "InvalidExample",
    "default_cache_dir",
    "evaluate",
    "load_default",
    "model_version",
    "parse_examples",
    "read_jsonl",
    "shipped_examples",
    "train",
]
