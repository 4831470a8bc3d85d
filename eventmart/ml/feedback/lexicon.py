"""The lexicons and the reading of a text against them: sentiment with negation,
intensity, contrast and sarcasm cues, and which aspects each clause talks about.

The readings become features of the learned model, so phrasings it never saw in
training still carry the polarity and aspect of the words they share with the lexicon."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from eventmart.ml.feedback.text import CJK_CHARACTER, CLAUSE_BREAK, normalize

ASPECT_LETTERS = {"q": "quality", "s": "shipping", "p": "price", "c": "service"}
MARKERS = frozenset({"NEG", "INT", "DOWN", "BUT", "SARC"})
LEXICON_FILES = ("lexicon_en.tsv", "lexicon_zh.tsv")
NEGATED = -0.7  # "not good" is a little less bad than "bad" is bad
# How far a negator or intensifier reaches: characters between it and the word it changes.
REACH = {"zh": 3, "en": 16}
VERDICT = 3.0


@dataclass(frozen=True)
class Entry:
    term: str
    kind: str  # a marker, or "" for a polarity entry
    polarity: float
    aspects: tuple[str, ...]
    latin: bool  # matched on word boundaries


@dataclass
class Reading:
    """What the lexicon says about one text."""

    positive: float = 0.0
    negative: float = 0.0
    verdict: float = 0.0  # explicit overall verdicts (recommend, 差评), signed
    negations: int = 0
    bare_negations: int = 0  # a negator with no polarity word in reach: "didn't last"
    sarcasm: int = 0
    contrasts: int = 0
    hits: int = 0
    last_clause: float = 0.0  # the polarity after the last contrast
    final: float = 0.0  # the polarity of the last clause that has any: "…Returning it."
    aspect_mentions: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    aspect_polarity: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    quoted_praise: int = 0


def lexicon_bytes() -> bytes:
    """The lexicon files' bytes, part of the model's version."""
    folder = resources.files("eventmart.ml").joinpath("data")
    return b"".join(folder.joinpath(name).read_bytes() for name in LEXICON_FILES)


@cache
def entries() -> dict[str, Entry]:
    folder = resources.files("eventmart.ml").joinpath("data")
    found: dict[str, Entry] = {}
    for name in LEXICON_FILES:
        for line in folder.joinpath(name).read_text("utf-8").splitlines():
            if not line.strip() or line.startswith("# "):
                continue
            raw_term, kind, letters = line.split("\t")
            term = normalize(raw_term)
            marker = kind if kind in MARKERS else ""
            aspects = tuple(ASPECT_LETTERS[c] for c in letters if c != "-")
            latin = not CJK_CHARACTER.search(term) and term[:1].isalnum()
            found[term] = Entry(term, marker, 0.0 if marker else float(kind), aspects, latin)
    return found


@cache
def _lengths_by_first_character() -> dict[str, tuple[int, ...]]:
    lengths: dict[str, set[int]] = defaultdict(set)
    for term in entries():
        lengths[term[0]].add(len(term))
    return {first: tuple(sorted(found, reverse=True)) for first, found in lengths.items()}


def chinese_terms() -> list[str]:
    return sorted(term for term in entries() if CJK_CHARACTER.search(term))


def scan(normalized: str) -> list[tuple[int, int, Entry]]:
    """Leftmost-longest matches: (start, end, entry); latin terms only on word boundaries."""
    table, lengths = entries(), _lengths_by_first_character()
    found: list[tuple[int, int, Entry]] = []
    position, size = 0, len(normalized)
    while position < size:
        matched = 0
        for length in lengths.get(normalized[position], ()):
            entry = table.get(normalized[position : position + length])
            if entry is None:
                continue
            end = position + length
            if entry.latin and not _on_word_boundaries(normalized, position, end):
                continue
            found.append((position, end, entry))
            matched = length
            break
        if matched:
            position += matched
        elif normalized[position].isalnum() and not CJK_CHARACTER.match(normalized[position]):
            while position < size and normalized[position].isalnum():  # skip the whole word
                position += 1
        else:
            position += 1
    return found


def _on_word_boundaries(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return not (_wordish(before) or _wordish(after))


def _wordish(character: str) -> bool:
    return (character.isalnum() or character == "'") and not CJK_CHARACTER.match(character)


def read(normalized: str) -> Reading:
    """Score the text's matches in order: negators and intensifiers change the next
    polarity word within reach in the same clause; contrast words start a new clause."""
    reading = Reading()
    clause_polarity: list[float] = [0.0]
    clause_aspects: list[set[str]] = [set()]
    modifier: tuple[str, int, float] | None = None  # (kind, end, factor)
    previous_end = 0
    for start, end, entry in scan(normalized):
        if CLAUSE_BREAK.search(normalized, previous_end, start):
            reading.bare_negations += _is_negation(modifier)
            modifier = None
            if clause_polarity[-1] or clause_aspects[-1]:
                clause_polarity.append(0.0)
                clause_aspects.append(set())
        previous_end = end
        if entry.kind == "BUT":
            reading.contrasts += 1
            clause_polarity.append(0.0)
            clause_aspects.append(set())
            reading.bare_negations += _is_negation(modifier)
            modifier = None
            continue
        if entry.kind == "SARC":
            reading.sarcasm += 1
            continue
        if entry.kind in ("NEG", "INT", "DOWN"):
            factor = {"NEG": NEGATED, "INT": 1.5, "DOWN": 0.6}[entry.kind]
            if modifier and modifier[0] == "NEG" and entry.kind != "NEG":
                factor *= modifier[2]  # "not very good": negated and intensified
            elif entry.kind == "NEG":
                reading.bare_negations += _is_negation(modifier)
            modifier = (entry.kind, end, factor)
            continue
        reading.hits += 1
        polarity = entry.polarity
        reach = REACH["en" if entry.latin else "zh"]
        if modifier and start - modifier[1] <= reach and polarity:
            if modifier[2] < 0:
                reading.negations += 1
            polarity *= modifier[2]
        else:
            reading.bare_negations += _is_negation(modifier)
        modifier = None
        if polarity > 0 and _quoted(normalized, start, end):
            reading.quoted_praise += 1
            polarity = -polarity
        if abs(entry.polarity) >= VERDICT:
            reading.verdict += polarity
        if polarity > 0:
            reading.positive += polarity
        else:
            reading.negative -= polarity
        clause_polarity[-1] += polarity
        for aspect in entry.aspects:
            reading.aspect_mentions[aspect] += 1
            clause_aspects[-1].add(aspect)
    for polarity, aspects in zip(clause_polarity, clause_aspects, strict=True):
        for aspect in aspects:
            reading.aspect_polarity[aspect] += polarity
    reading.bare_negations += _is_negation(modifier)
    reading.last_clause = clause_polarity[-1] if reading.contrasts else 0.0
    reading.final = next((polarity for polarity in reversed(clause_polarity) if polarity), 0.0)
    return reading


def _is_negation(modifier: tuple[str, int, float] | None) -> bool:
    return modifier is not None and modifier[2] < 0


def _quoted(text: str, start: int, end: int) -> bool:
    """Praise in scare quotes ("premium quality", “优质”) is usually sarcasm."""
    before, after = text[max(0, start - 2) : start], text[end : end + 2]
    return any(q in before for q in '"“「') and any(q in after for q in '"”」')
