"""Review text as tokens: latin words as they are, CJK runs segmented by jieba with the
lexicon's Chinese terms kept whole. Its own module because it reads the lexicon, which reads
text.py's normalisation: text.py -> lexicon.py -> words.py, no circle."""

from __future__ import annotations

import logging
from functools import cache

from eventmart.ml.feedback.lexicon import chinese_terms
from eventmart.ml.feedback.text import CJK_RUN, CLAUSE_BREAK, LATIN_TOKEN


@cache
def _segmenter() -> object:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()

    for term in chinese_terms():  # keep slang such as 物流给力 and 性价比 in one piece
        tokenizer.add_word(term, freq=2000)
    return tokenizer


def tokens(normalized: str) -> list[str]:
    """Latin words and symbols as they are; CJK runs segmented by jieba; clause breaks as '|'."""
    segmenter = _segmenter()
    out: list[str] = []
    position = 0
    for run in CJK_RUN.finditer(normalized):
        out.extend(_latin_tokens(normalized[position : run.start()]))
        out.extend(segmenter.lcut(run.group(), HMM=False))  # type: ignore[attr-defined]
        position = run.end()
    out.extend(_latin_tokens(normalized[position:]))
    return out


def _latin_tokens(text: str) -> list[str]:
    return ["|" if CLAUSE_BREAK.fullmatch(t) else t for t in LATIN_TOKEN.findall(text)]
