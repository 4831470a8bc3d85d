"""The default model: trained from the shipped data on first use, cached by version.

Nothing is downloaded: the artifact is a function of the repository's files, so a clean
clone builds the same one (in a few seconds) and later processes load it from the cache."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from eventmart.ml.feedback.data import shipped_examples
from eventmart.ml.feedback.model import FeedbackModel, model_version, train


def default_cache_dir() -> Path:
    """EVENTMART_CACHE_DIR, else XDG_CACHE_HOME/eventmart, else ~/.cache/eventmart."""
    explicit = os.environ.get("EVENTMART_CACHE_DIR")
    if explicit:
        return Path(explicit) / "feedback"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eventmart" / "feedback"


@cache
def load_default(cache_dir: Path | None = None) -> FeedbackModel:
    """The model trained on every shipped example (training and held-out parts)."""
    examples = shipped_examples("all")
    folder = cache_dir or default_cache_dir()
    path = folder / f"{model_version(examples)}.json"
    try:
        return FeedbackModel.load(path)
    except (OSError, ValueError, KeyError):
        pass  # not built yet, or unreadable: build it
    model = train(examples)
    try:
        model.save(path)
    except OSError:
        pass  # a read-only cache costs a retrain per process, nothing more
    return model
