"""The words of a product's name and description, for content features: jieba for Chinese,
a plain tokenizer for English, stop words out, plurals folded ("mugs" -> "mug")."""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import Any

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[a-z][a-z0-9]*")


def _listed(text: str) -> frozenset[str]:
    return frozenset(text.split())


ENGLISH_STOP_WORDS = _listed(
    """a an and are as at be by for from has have in into is it its of on or our set sets
    that the their this to was were which with without your you we all any each per pack
    new pcs piece pieces assorted"""
)
# Function words and shop filler that jieba keeps as words of their own.
CHINESE_STOP_WORDS = _listed(
    "的 了 和 与 及 是 在 有 为 或 等 个 款 件 这 那 我 你 他 她 它 也 都 就 而 之 其 把 被 对 从 "
    "中 上 下 不 很 更 最 新 套 装 只 支 条 一 二 两 超 送 包邮 正品 特价 新款"
)


@cache
def _jieba() -> Any:
    """jieba, loaded once; its dictionary ships in the package (nothing is downloaded)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def _fold_plural(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _latin_words(text: str) -> list[str]:
    return [
        _fold_plural(word)
        for word in _LATIN_WORD.findall(text)
        if len(word) > 1 and word not in ENGLISH_STOP_WORDS
    ]


def words_of(text: str) -> list[str]:
    """Distinct words of `text` in order of first appearance."""
    lowered = text.lower()
    if _CJK.search(lowered):
        words: list[str] = []
        for token in _jieba().lcut(lowered):
            if _CJK.search(token):
                if token not in CHINESE_STOP_WORDS:
                    words.append(token)
            else:
                words.extend(_latin_words(token))
    else:
        words = _latin_words(lowered)
    return list(dict.fromkeys(words))
