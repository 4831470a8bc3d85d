"""Text handling for review feedback: normalisation and language detection (tokens: words.py).

Traditional Chinese is folded into simplified characters first, so one lexicon and one
set of learned weights serve both scripts."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from importlib import resources
from typing import Literal

Language = Literal["zh", "en"]

CJK_CHARACTER = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
LATIN_LETTER = re.compile(r"[a-z]")
# A latin letter repeated three or more times ("sooooo", "goood") is squeezed to two.
ELONGATION = re.compile(r"([a-z])\1{2,}")
# Words (with an inner apostrophe: don't), numbers with $ or /, and single symbols (emoji).
LATIN_TOKEN = re.compile(r"[a-z0-9$][a-z0-9$'/+-]*|[^\sa-z0-9\u3400-\u9fff]")
CLAUSE_BREAK = re.compile(r"[,.!?;:，。！？；：~～\n…、()（）]")

# One CJK character carries about as much as two and a half latin letters; a text is
# Chinese when its CJK characters outweigh its latin letters on that scale.
CJK_WEIGHT = 2.5


@cache
def _traditional_to_simplified() -> dict[int, str]:
    """A character table from OpenCC's TSCharacters (shipped inside the opencc package)."""
    text = resources.files("opencc").joinpath("dictionary/TSCharacters.txt").read_text("utf-8")
    table: dict[int, str] = {}
    for line in text.splitlines():
        traditional, _, simplified = line.partition("\t")
        if len(traditional) == 1 and simplified:
            table[ord(traditional)] = simplified.split()[0]
    return table


def to_simplified(text: str) -> str:
    return text.translate(_traditional_to_simplified())


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), lower case, simplified characters, squeezed runs."""
    folded = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("\ufe0f", "")
    return ELONGATION.sub(r"\1\1", to_simplified(folded))


def detect_language(normalized: str) -> Language:
    """`zh` when CJK characters outweigh latin letters, else `en` (also for emoji-only text)."""
    cjk = len(CJK_CHARACTER.findall(normalized))
    latin = len(LATIN_LETTER.findall(normalized))
    return "zh" if cjk and cjk * CJK_WEIGHT >= latin else "en"


def cjk_runs(normalized: str) -> list[str]:
    return CJK_RUN.findall(normalized)
