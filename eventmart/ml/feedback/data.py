"""Labelled reviews: the shipped training and held-out sets, and reading JSON Lines."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

ASPECTS = ("quality", "shipping", "price", "service")
SENTIMENTS = ("positive", "neutral", "negative")
LANGUAGES = ("zh", "en")
# The project's own reviews are split by `is_held_out`; the independently written ones
# (another hand, labelled by the guide without looking at ours) were split once, by
# alternate lines within each language: one half is trained on, the other is only ever
# scored ("outside") and is in no model, the shipped one included. The same hand wrote
# the targeted set later, aimed at the kinds of text the model got wrong: training only.
# The English hard set (a third hand) aims at English sentiment errors: training only.
SPLITS = {
    "train": (
        "feedback_train.jsonl",
        "feedback_outside_train.jsonl",
        "feedback_targeted_train.jsonl",
        "feedback_en_hard_train.jsonl",
    ),
    "heldout": ("feedback_heldout.jsonl",),
    "outside": ("feedback_outside.jsonl",),
    # A fourth hand wrote 220 reviews per language from a brief naming the hard cases,
    # without seeing this repository: scored only, never trained on or tuned against.
    "fresh": ("feedback_fresh.jsonl",),
}
HASH_SPLIT_FILES = ("feedback_train.jsonl", "feedback_heldout.jsonl")


class MalformedLine(ValueError):
    """A JSON Lines line that is not a JSON object."""


class InvalidExample(ValueError):
    """A labelled line that does not say text, aspects and sentiment in the known terms."""


@dataclass(frozen=True)
class Example:
    text: str
    aspects: frozenset[str]
    sentiment: str
    lang: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Example:
        text, aspects, sentiment = (
            record.get("text"),
            record.get("aspects"),
            record.get("sentiment"),
        )
        if not isinstance(text, str) or not text.strip():
            raise InvalidExample("`text` must be a non-empty string")
        if not isinstance(aspects, list) or not set(aspects) <= set(ASPECTS):
            raise InvalidExample(f"`aspects` must be a list drawn from {', '.join(ASPECTS)}")
        if sentiment not in SENTIMENTS:
            raise InvalidExample(f"`sentiment` must be one of {', '.join(SENTIMENTS)}")
        lang = record.get("lang")
        if lang is not None and lang not in LANGUAGES:
            raise InvalidExample(f"`lang` must be one of {', '.join(LANGUAGES)}")
        return cls(text, frozenset(aspects), sentiment, lang)


def is_held_out(text: str) -> bool:
    """The split rule: a review is held out when its text's SHA-256 is 0 mod 4 (about a
    quarter in each language), so adding or relabelling one never moves another."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 4 == 0


def read_jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Parse JSON Lines, skipping blank lines; a bad line raises MalformedLine naming it."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise MalformedLine(f"line {number}: not JSON ({error.msg})") from error
        if not isinstance(record, dict):
            raise MalformedLine(f"line {number}: not a JSON object")
        yield record


def parse_examples(lines: Iterable[str]) -> list[Example]:
    examples = []
    for number, record in enumerate(read_jsonl(lines), 1):
        try:
            examples.append(Example.from_record(record))
        except InvalidExample as error:
            raise InvalidExample(f"record {number}: {error}") from error
    return examples


def _data_file(name: str) -> Any:
    return resources.files("eventmart.ml").joinpath("data", name)


def shipped_examples(split: str) -> list[Example]:
    """`train`, `heldout`, `outside`, `fresh`, or `all` (training and held-out: what the
    default model is trained on; never `outside` or `fresh`)."""
    names = [*SPLITS["train"], *SPLITS["heldout"]] if split == "all" else SPLITS[split]
    return [example for name in names for example in file_examples(name)]


def file_examples(name: str) -> list[Example]:
    """The examples of one shipped data file."""
    return parse_examples(_data_file(name).read_text("utf-8").splitlines())


def examples_digest(examples: Iterable[Example]) -> str:
    """A digest of labelled examples, independent of their order."""
    lines = sorted(
        json.dumps([e.text, sorted(e.aspects), e.sentiment], ensure_ascii=False) for e in examples
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
