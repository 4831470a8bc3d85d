"""The feedback classifier on the fresh set (220 en + 220 zh reviews written from a brief
by a hand that never saw this repository; never trained on, never tuned against), and
its sentence encoder working with no network."""

from __future__ import annotations

import math
import socket
from typing import Any

import pytest

from eventmart.ml.feedback import FeedbackModel, encoder, shipped_examples
from eventmart.ml.feedback.report import score
from tests.unit.feedback_support import default_model, feedback_cache

__all__ = ["default_model", "feedback_cache"]  # fixtures, shared

# The target is 0.80 sentiment macro-F1 per language. The shipped model does not reach it
# on this set: 0.754 zh, 0.689 en (docs/feedback-classifier.md), so the floors are what it
# reaches, less about 0.03 (some seven reviews of 220): a change that loses more than that
# on text nobody here wrote fails. Raise them when the model gets better, never lower.
FRESH_SENTIMENT_FLOORS = {"zh": 0.72, "en": 0.65}
FRESH_ASPECT_FLOOR = 0.80


def test_sentiment_and_aspects_on_the_fresh_set_hold_their_floors(
    default_model: FeedbackModel,
) -> None:
    fresh = shipped_examples("fresh")
    assert {language: sum(e.lang == language for e in fresh) for language in ("zh", "en")} == {
        "zh": 220,
        "en": 220,
    }
    figures = score(default_model, fresh)["by_language"]
    for language, floor in FRESH_SENTIMENT_FLOORS.items():
        assert figures[language]["sentiment_macro_f1"] >= floor, figures[language]
        assert figures[language]["aspect_macro_f1"] >= FRESH_ASPECT_FLOOR, figures[language]


def test_the_fresh_set_is_in_no_model_and_shares_only_stock_phrases() -> None:
    """Written apart, it repeats five stock phrases of the training data ("meh", "never
    again.", 一分钱一分货吧。): kept, as buyers do write them; nothing longer."""
    fresh = {e.text.casefold() for e in shipped_examples("fresh")}
    trained = {e.text.casefold() for e in shipped_examples("all")}
    outside = {e.text.casefold() for e in shipped_examples("outside")}
    assert len(fresh) == 440 and not fresh & outside
    shared = fresh & trained
    assert len(shared) <= 5 and all(len(text) <= 20 for text in shared), shared


def test_the_encoder_reads_its_weights_from_its_package_with_no_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("no network in this test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    encoder._encoder.cache_clear()
    vectors = encoder.encode(["表带用了三天就断了", "Zipper jammed on day one"])
    assert [len(v) for v in vectors] == [encoder.DIMENSIONS] * 2
    assert all(math.isclose(sum(x * x for x in v), 1.0, abs_tol=1e-3) for v in vectors)
    assert encoder.encode([]) == []
