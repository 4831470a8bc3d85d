"""From a review text to the sparse features the linear model weighs.

Two families: n-grams (words, word pairs, character n-grams, each family scaled to unit
length) that learn the training set's phrasing, and lexicon readings (polarity with
negation, verdicts, sarcasm, contrast, aspect cues) that carry over to phrasings the
training set never had."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import cache
from itertools import pairwise
from typing import Any

from eventmart.ml.feedback import corpus_polarity, encoder
from eventmart.ml.feedback.lexicon import ASPECT_LETTERS, entries, read
from eventmart.ml.feedback.text import Language, cjk_runs, detect_language, normalize
from eventmart.ml.feedback.words import tokens

Features = dict[str, float]
LATIN_WORD = re.compile(r"[a-z]{2}")

NEGATION_SCOPE = 3  # tokens after a negator that are marked as negated
# Knobs for ablations (docs/feedback-classifier.md reports what each family adds).
LEXICON_SCALE = 1.0
USE_CORPUS = True
USE_VADER = True
# The sentence encoder's vector (unit length) times this; 0 leaves it out.
ENCODER_SCALE = 2.0
ENCODER_PREFIX = "e:"


def extract(
    text: str, vector: Sequence[float] | None = None, encoded: bool = True
) -> tuple[Language, Features]:
    """`vector`: the encoder's reading of `normalize(text)` when the caller encoded a batch
    at once (`encode_all`); read here otherwise. `encoded=False` leaves the encoder's
    features out (the model scores them apart, as one matrix product)."""
    normalized = normalize(text)
    language = detect_language(normalized)
    features: Features = {f"lang:{language}": 1.0}
    words = tokens(normalized)
    marked = _negation_marked(words)
    _add_unit(features, _word_grams(marked))
    _add_unit(features, _character_grams(normalized, words))
    features.update(_lexicon_features(normalized))
    if USE_CORPUS:
        features.update(_corpus_features(marked))
    if USE_VADER and LATIN_WORD.search(normalized):
        features.update(_vader_features(normalized))
    if ENCODER_SCALE and encoded:
        if vector is None:
            vector = encoder.encode([normalized])[0]
        features.update(
            {
                f"{ENCODER_PREFIX}{index}": ENCODER_SCALE * value
                for index, value in enumerate(vector)
                if value
            }
        )
    return language, features


def encode_all(texts: Sequence[str]) -> list[list[float]] | list[None]:
    """The encoder's vectors of a batch of texts (one call is cheaper than one per text)."""
    if not ENCODER_SCALE:
        return [None] * len(texts)
    return encoder.encode([normalize(text) for text in texts])


def _corpus_features(marked: list[str]) -> Features:
    """Sum the corpus polarity of the words, a negated word counting against."""
    chinese, english = corpus_polarity.chinese(), corpus_polarity.english()
    topics = _topic_words()
    positive = negative = 0.0
    for word in marked:
        negated = word.startswith("not_")
        plain = word[4:] if negated else word
        if plain in topics:
            continue
        value = chinese.get(plain, 0.0) or english.get(plain, 0.0)
        if negated:
            value *= -0.7
        if value > 0:
            positive += value
        else:
            negative -= value
    features = {"corpus:positive": _squash(positive), "corpus:negative": _squash(negative)}
    return {name: value for name, value in features.items() if value}


@cache
def _topic_words() -> frozenset[str]:
    """Aspect names (客服, 物流, price): the corpus finds them polar only because people
    mention them when they complain, which says nothing about this review."""
    return frozenset(
        term
        for term, entry in entries().items()
        if entry.aspects and not entry.polarity and not entry.kind
    )


def _vader_features(normalized: str) -> Features:
    compound = _vader().polarity_scores(normalized)["compound"]
    return {"vader:positive": max(compound, 0.0), "vader:negative": max(-compound, 0.0)}


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _add_unit(features: Features, grams: Iterable[str]) -> None:
    """Binary presence, scaled so the family has unit length whatever the text's length."""
    unique = set(grams)
    if unique:
        weight = 1.0 / math.sqrt(len(unique))
        for gram in unique:
            features[gram] = weight


def _negation_marked(words: list[str]) -> list[str]:
    """Words within reach after a negator get a `not_` prefix; clause breaks end the reach."""
    negators = _negators()
    marked: list[str] = []
    scope = 0
    for word in words:
        if word == "|":
            scope = 0
            marked.append(word)
            continue
        marked.append(f"not_{word}" if scope else word)
        scope = NEGATION_SCOPE if word in negators else max(0, scope - 1)
    return marked


def _word_grams(marked: list[str]) -> list[str]:
    grams = [f"w:{word}" for word in marked if word != "|"]
    grams += [f"b:{a}_{b}" for a, b in pairwise(marked) if "|" not in (a, b)]
    return grams


def _character_grams(normalized: str, words: list[str]) -> list[str]:
    grams: list[str] = []
    for run in cjk_runs(normalized):
        grams += [f"c:{run[i : i + 2]}" for i in range(len(run) - 1)]
        grams += [f"c:{character}" for character in run]
    for word in words:
        if word.isascii() and word.isalpha() and len(word) > 2:
            padded = f"<{word}>"
            grams += [f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2)]
    return grams


@cache
def _negators() -> frozenset[str]:
    return frozenset(term for term, entry in entries().items() if entry.kind == "NEG")


def _lexicon_features(normalized: str) -> Features:
    reading = read(normalized)
    scale = LEXICON_SCALE
    features: Features = {
        "lex:positive": scale * _squash(reading.positive),
        "lex:negative": scale * _squash(reading.negative),
        "lex:net": scale * _squash(reading.positive - reading.negative, signed=True),
        "lex:negations": scale * min(reading.negations, 2),
        "lex:bare_negations": scale * min(reading.bare_negations, 2),
        "lex:contrast": scale * min(reading.contrasts, 2),
        "lex:last_clause": scale * _squash(reading.last_clause, signed=True),
        "lex:final": scale * _squash(reading.final, signed=True),
        "lex:sarcasm": scale * min(reading.sarcasm + reading.quoted_praise, 2),
    }
    if reading.verdict:
        features["lex:verdict"] = scale * _squash(reading.verdict, signed=True)
    if reading.sarcasm and reading.positive:
        features["lex:sarcastic_praise"] = scale
    if reading.positive and reading.negative:
        features["lex:mixed"] = (
            scale
            * min(reading.positive, reading.negative)
            / max(reading.positive, reading.negative)
        )
    if not reading.hits:
        features["lex:nothing"] = scale
    if not reading.aspect_mentions:
        features["lex:no_aspect"] = scale
    for aspect in ASPECT_LETTERS.values():
        mentions = reading.aspect_mentions.get(aspect, 0.0)
        if mentions:
            features[f"lex:{aspect}"] = scale * min(mentions, 2)
            polarity = reading.aspect_polarity.get(aspect, 0.0)
            features[f"lex:{aspect}:polarity"] = scale * _squash(polarity, signed=True)
    return {name: value for name, value in features.items() if value}


def _squash(value: float, signed: bool = False) -> float:
    """log(1 + |x|), keeping the sign when asked: two strong words are not twice one."""
    squashed = math.log1p(abs(value))
    return math.copysign(squashed, value) if signed else squashed
