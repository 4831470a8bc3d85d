"""The evaluation figures, checked on a case small enough to work out by hand."""

from __future__ import annotations

from eventmart.ml.feedback import Example, evaluate


def labelled(aspects: set[str], sentiment: str) -> Example:
    return Example("text", frozenset(aspects), sentiment)


def test_figures_worked_out_by_hand() -> None:
    gold = [
        labelled({"quality"}, "positive"),
        labelled({"quality", "shipping"}, "negative"),
        labelled({"price"}, "neutral"),
        labelled(set(), "positive"),
    ]
    predicted = [
        labelled({"quality"}, "positive"),
        labelled({"quality"}, "neutral"),
        labelled({"price", "shipping"}, "neutral"),
        labelled({"quality"}, "positive"),
    ]
    report = evaluate(gold, predicted, ["en", "en", "zh", "zh"])
    overall = report["overall"]
    # quality: 2 right of 3 predicted, 2 of 2 found; shipping: 0 of 1 predicted, 0 of 1 found
    assert overall["aspects"]["quality"] == {
        "precision": 0.6667,
        "recall": 1.0,
        "f1": 0.8,
        "support": 2,
        "predicted": 3,
    }
    assert overall["aspects"]["shipping"]["f1"] == 0.0
    assert overall["aspects"]["price"]["f1"] == 1.0
    assert overall["aspects"]["service"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
        "predicted": 0,
    }
    assert overall["aspect_macro_f1"] == round((0.8 + 0.0 + 1.0) / 3, 4)  # service absent
    assert overall["sentiment_accuracy"] == 0.75
    assert overall["sentiment_confusion"]["negative"] == {
        "positive": 0,
        "neutral": 1,
        "negative": 0,
    }
    # positive 1.0, neutral: precision 1/2, recall 1/1 -> 0.6667, negative 0
    assert overall["sentiment_macro_f1"] == round((1.0 + 0.6667 + 0.0) / 3, 4)
    assert report["by_language"]["en"]["count"] == 2
    assert report["by_language"]["zh"]["sentiment_accuracy"] == 1.0
