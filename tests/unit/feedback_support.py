"""Fixtures the feedback classifier's tests share: each model is trained once a session
(training takes seconds, and longer on a busy machine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventmart.ml.feedback import FeedbackModel, load_default, shipped_examples, train


@pytest.fixture(scope="session")
def feedback_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache directory the CLI's default model lands in (through EVENTMART_CACHE_DIR)."""
    folder = tmp_path_factory.mktemp("eventmart-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVENTMART_CACHE_DIR", str(folder))
        yield folder / "feedback"


@pytest.fixture(scope="session")
def default_model(feedback_cache: Path) -> FeedbackModel:
    """The shipped model (every example), as `load_default` builds and caches it."""
    return load_default(feedback_cache)


@pytest.fixture(scope="session")
def split_model() -> FeedbackModel:
    """Trained on the training split only, for figures on the held-out split."""
    return train(shipped_examples("train"))
