"""`eventmart analyst classify`: JSON Lines in, the same lines with labels out; --eval
scores labelled lines; bad input is refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from entrypoints.cli import app
from eventmart.ml.feedback import FeedbackModel, shipped_examples
from eventmart.ml.feedback.report import score
from tests.unit.feedback_support import default_model, feedback_cache

__all__ = ["default_model", "feedback_cache"]  # fixtures, shared

runner = CliRunner()
HELD_OUT = Path("eventmart/ml/data/feedback_heldout.jsonl")


def test_classify_adds_labels_and_keeps_other_fields(default_model: FeedbackModel) -> None:
    lines = [
        {"text": "物流很快，质量也很好", "review_id": "r-1"},
        {"text": "Customer service never replied.", "rating": 1, "lang": "fr"},
    ]
    result = runner.invoke(
        app, ["analyst", "classify", "-"], input="".join(json.dumps(x) + "\n" for x in lines)
    )
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in result.stdout.splitlines()]
    assert [w["review_id"] if "review_id" in w else w["rating"] for w in written] == ["r-1", 1]
    expected = default_model.classify([x["text"] for x in lines])
    for record, classification in zip(written, expected, strict=True):
        assert {k: record[k] for k in ("lang", "aspects", "sentiment")} == (
            classification.as_labels()
        )
    assert written[0]["lang"] == "zh" and written[1]["lang"] == "en"


def test_classify_then_eval_round_trip(default_model: FeedbackModel, tmp_path: Path) -> None:
    classified = runner.invoke(app, ["analyst", "classify", str(HELD_OUT)])
    assert classified.exit_code == 0, classified.output
    # its own output, read back as labels, agrees with itself on every line
    own = tmp_path / "own.jsonl"
    own.write_text(classified.stdout, encoding="utf-8")
    agreed = runner.invoke(app, ["analyst", "classify", "--eval", "--json", str(own)])
    assert agreed.exit_code == 0, agreed.output
    figures = json.loads(agreed.stdout)
    assert figures["overall"]["sentiment_accuracy"] == 1.0
    assert figures["overall"]["exact_aspect_sets"] == 1.0
    # against the true labels it prints what the library computes
    scored = runner.invoke(app, ["analyst", "classify", "--eval", "--json", str(HELD_OUT)])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    assert report["model"] == default_model.version
    expected = score(default_model, shipped_examples("heldout"))
    assert report["by_language"] == expected["by_language"]
    assert set(report["by_language"]) == {"zh", "en"}
    assert set(report["overall"]["sentiment_confusion"]) == {"positive", "neutral", "negative"}


def test_eval_prints_tables(default_model: FeedbackModel) -> None:
    result = runner.invoke(app, ["analyst", "classify", "--eval", str(HELD_OUT)])
    assert result.exit_code == 0, result.output
    for heading in ("aspect macro-F1", "sent macro-F1", "sentiment confusion"):
        assert heading in result.stdout


def test_bad_input_is_refused_naming_the_line(default_model: FeedbackModel) -> None:
    no_text = runner.invoke(
        app, ["analyst", "classify", "-"], input='{"text": "ok"}\n{"body": 1}\n'
    )
    assert no_text.exit_code == 2
    assert "record 2" in no_text.output and "`text`" in no_text.output
    not_json = runner.invoke(app, ["analyst", "classify", "-"], input="{nope\n")
    assert not_json.exit_code == 2 and "line 1" in not_json.output
    unlabelled = runner.invoke(
        app, ["analyst", "classify", "--eval", "-"], input='{"text": "ok"}\n'
    )
    assert unlabelled.exit_code == 2 and "aspects" in unlabelled.output
    missing = runner.invoke(app, ["analyst", "classify", "no-such-file.jsonl"])
    assert missing.exit_code == 2 and "cannot read" in missing.output
