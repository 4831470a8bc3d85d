"""What the model must beat: the majority class, the lexicon alone, and the off-the-shelf
sentiment toolkits (VADER for English, snownlp for Chinese) with the lexicon's aspects."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from eventmart.ml.feedback.data import ASPECTS, Example
from eventmart.ml.feedback.lexicon import read
from eventmart.ml.feedback.model import Classification
from eventmart.ml.feedback.text import detect_language, normalize

NEUTRAL_ZONE = 0.5  # lexicon net polarity within ±this reads as neutral


class MajorityBaseline:
    """The most common sentiment, and every aspect that most training examples name."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.sentiment = Counter(e.sentiment for e in examples).most_common(1)[0][0]
        self.aspects = tuple(
            a for a in ASPECTS if 2 * sum(a in e.aspects for e in examples) > len(examples)
        )

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        return [
            Classification(detect_language(normalize(t)), self.aspects, self.sentiment, 1.0)
            for t in texts
        ]


class LexiconBaseline:
    """The lexicon's own reading: aspects it mentions, sentiment from its net polarity."""

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        found = []
        for text in texts:
            normalized = normalize(text)
            reading = read(normalized)
            net = reading.positive - reading.negative
            sentiment = (
                "positive"
                if net > NEUTRAL_ZONE
                else "negative"
                if net < -NEUTRAL_ZONE
                else "neutral"
            )
            aspects = tuple(a for a in ASPECTS if reading.aspect_mentions.get(a))
            found.append(Classification(detect_language(normalized), aspects, sentiment, 1.0))
        return found


class ToolkitBaseline:
    """VADER's compound score (English) or snownlp's probability (Chinese) for sentiment."""

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        from snownlp import SnowNLP
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        vader = SentimentIntensityAnalyzer()
        lexicon = LexiconBaseline().classify(texts)
        found = []
        for text, by_lexicon in zip(texts, lexicon, strict=True):
            if by_lexicon.lang == "zh":
                score = 2 * SnowNLP(text).sentiments - 1  # 0..1 -> -1..1
                zone = 0.3
            else:
                score = vader.polarity_scores(text)["compound"]
                zone = 0.05  # VADER's documented thresholds
            sentiment = "positive" if score > zone else "negative" if score < -zone else "neutral"
            found.append(Classification(by_lexicon.lang, by_lexicon.aspects, sentiment, 1.0))
        return found
