"""What buyers talk about: a topic model over one product's (or one seller's) reviews.
Data in, topics out; no Kafka, HTTP or SQL.

Each language is modelled apart, so a topic's label and terms are in its reviews'
language: words (jieba for Chinese, with the feedback lexicon's terms kept whole) without
stop words, TF-IDF, then NMF. Each review joins the component that explains most of it,
components whose reviews read alike are merged (NMF splits a theme told in several ways),
and only topics with at least `MIN_TOPIC_REVIEWS` reviews are kept, the largest first, at
most `MAX_TOPICS`. Sentiment counts come from the classifier's labels of the reviews.

    topics = find_topics([Document(review_id, text, sentiment), ...])
    topics[0].label  # 'strap · broke', '表带 · 断'
    TOPIC_MODEL_VERSION  # 'topics-1.0-…', stored with every refresh

Deterministic: the same documents, in any order, give the same topics."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eventmart.ml.feedback.lexicon import entries
from eventmart.ml.feedback.text import detect_language, normalize
from eventmart.ml.feedback.words import tokens

MODEL_SERIES = "1.0"
MAX_TOPICS = 8
MIN_REVIEWS = 10  # below this many reviews in a language, no topics for it
MIN_TOPIC_REVIEWS = 5
MIN_TERM_REVIEWS = 3  # a word in fewer reviews than this is no topic's word
MAX_DOCUMENTS = 2000  # the newest, per language, when a scope has more
REVIEWS_PER_COMPONENT = 20  # NMF components per language: one per this many reviews, 2..8
SHARE = 0.4  # a review joins its strongest component if that holds this share of it
MERGE_SIMILARITY = 0.3  # cosine of two topics' mean review vectors
CORE_SHARE = 0.6  # a group's core words: in at least this share of its reviews
TOP_TERMS = 5
LABEL_TERMS = 2
EXAMPLES = 3
SENTIMENTS = ("positive", "neutral", "negative")

LATIN_WORD = re.compile(r"[a-z][a-z'-]+")
CJK_WORD = re.compile(r"[\u3400-\u9fff]+")
_ENGLISH_STOP = """a about after again all also am an and any are as at be been before being but
by can could did do does doing don't for from get got had has have having he her here him
his how i i'm i've if in into is it it's its just me more most my no nor not now of off on
once one only or other our out over own same she so some such than that the their them then
there these they this those through to too under until up very was we were what when where
which while who why will with would you your really bit lot much even within without still
thing things item product bought buy ordered order day days week weeks time times"""
_CHINESE_STOP = """一个 一下 一点 一些 这个 那个 这样 那样 什么 怎么 还是 就是 但是 不过 而且 然后
所以 因为 如果 虽然 可以 没有 不是 还有 已经 非常 特别 真的 感觉 觉得 有点 我们 你们 他们 自己
东西 宝贝 商品 产品 购买 买了 收到 这次 这款 一次 之后 时候 比较 其实 一样 现在 以后 知道 应该
的 了 很 就 都 也 还 又 在 是 有 我 你 他 她 它 这 那 和 与 才 太 得 地 着 过 吧 啊 呢 吗 个 些
点 天 周 次 用 买 到 给 让 把 被 对 说 会 能 要 想 去 来 上 下 里 不"""
ENGLISH_STOP_WORDS = frozenset(_ENGLISH_STOP.split())
CHINESE_STOP_WORDS = frozenset(_CHINESE_STOP.split())


@dataclass(frozen=True)
class Document:
    review_id: str
    text: str
    sentiment: str | None  # the classifier's label; None until it has read the review


@dataclass(frozen=True)
class Topic:
    label: str
    terms: tuple[str, ...]
    lang: str
    review_ids: tuple[str, ...]
    sentiment: dict[str, int]
    example_review_ids: tuple[str, ...]

    @property
    def reviews(self) -> int:
        return len(self.review_ids)

    def as_payload(self) -> dict[str, Any]:
        """The event's and the API's shape (member ids stay out: examples say enough)."""
        return {
            "label": self.label,
            "terms": list(self.terms),
            "lang": self.lang,
            "reviews": self.reviews,
            "sentiment": dict(self.sentiment),
            "example_review_ids": list(self.example_review_ids),
        }


@cache
def topic_model_version() -> str:
    """`topics-<series>-<hash>` of this module and the scikit-learn release."""
    import sklearn

    digest = hashlib.sha256(resources.files("eventmart.ml").joinpath("topics.py").read_bytes())
    digest.update(sklearn.__version__.encode())
    return f"topics-{MODEL_SERIES}-{digest.hexdigest()[:12]}"


@cache
def _markers() -> frozenset[str]:
    """The lexicon's negators, intensifiers, downtoners, contrast and sarcasm words: how
    something is said, never what it is about."""
    return frozenset(term for term, entry in entries().items() if entry.kind)


def words(text: str) -> list[str]:
    """A review's topic words: latin words of 3+ letters and Chinese words, stop words and
    the lexicon's markers left out."""
    found = []
    markers = _markers()
    for token in tokens(normalize(text)):
        if token in markers:
            continue
        if LATIN_WORD.fullmatch(token):
            if len(token) > 2 and token not in ENGLISH_STOP_WORDS:
                found.append(token)
        elif CJK_WORD.fullmatch(token) and token not in CHINESE_STOP_WORDS:
            found.append(token)
    return found


def find_topics(documents: Sequence[Document]) -> list[Topic]:
    """At most MAX_TOPICS topics, largest first; none from a language with fewer than
    MIN_REVIEWS reviews."""
    by_language: dict[str, list[Document]] = {}
    for document in sorted(documents, key=lambda d: d.review_id):
        by_language.setdefault(detect_language(normalize(document.text)), []).append(document)
    topics = [
        topic
        for language in sorted(by_language)
        for topic in _language_topics(language, by_language[language][-MAX_DOCUMENTS:])
    ]
    topics.sort(key=lambda t: (-t.reviews, t.label))
    return topics[:MAX_TOPICS]


def _language_topics(language: str, documents: list[Document]) -> list[Topic]:
    if len(documents) < MIN_REVIEWS:
        return []
    import numpy as np
    from sklearn.decomposition import NMF
    from sklearn.feature_extraction.text import TfidfVectorizer

    tokenised = [words(d.text) for d in documents]
    vectorizer = TfidfVectorizer(analyzer=lambda ws: ws, min_df=MIN_TERM_REVIEWS, sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform(tokenised)
    except ValueError:  # no word in enough reviews
        return []
    vocabulary = vectorizer.get_feature_names_out()
    wanted = len(documents) // REVIEWS_PER_COMPONENT
    components = max(1, min(MAX_TOPICS, max(2, wanted), matrix.shape[1]))
    nmf = NMF(n_components=components, init="nndsvda", random_state=0, max_iter=400)
    weights = nmf.fit_transform(matrix)
    totals = weights.sum(axis=1)
    strongest = weights.argmax(axis=1)
    members: dict[int, list[int]] = {}
    for row, component in enumerate(strongest):
        if totals[row] > 0 and weights[row, component] >= SHARE * totals[row]:
            members.setdefault(int(component), []).append(row)
    dense = matrix.toarray()
    groups = [rows for _, rows in sorted(members.items())]
    groups = _merged(groups, dense)
    topics = []
    for rows in groups:
        if len(rows) < MIN_TOPIC_REVIEWS:
            continue
        centroid = dense[rows].mean(axis=0)
        order = np.argsort(-centroid, kind="stable")[:TOP_TERMS]
        terms = tuple(str(vocabulary[i]) for i in order if centroid[i] > 0)
        closest = sorted(rows, key=lambda r: (-float(dense[r] @ centroid), documents[r].review_id))
        counts = Counter(documents[r].sentiment for r in rows)
        topics.append(
            Topic(
                label=" · ".join(terms[:LABEL_TERMS]),
                terms=terms,
                lang=language,
                review_ids=tuple(documents[r].review_id for r in rows),
                sentiment={s: counts.get(s, 0) for s in SENTIMENTS},
                example_review_ids=tuple(documents[r].review_id for r in closest[:EXAMPLES]),
            )
        )
    return topics


def _merged(groups: list[list[int]], dense: Any) -> list[list[int]]:
    """Merge the two groups whose mean vectors are most alike, or that share a core word
    (one theme told in two ways: "strap broke" and "strap snapped"), while any pair does."""
    import numpy as np

    groups = [list(g) for g in groups]
    while len(groups) > 1:
        centroids = np.array([dense[g].mean(axis=0) for g in groups])
        norms = np.linalg.norm(centroids, axis=1)
        norms[norms == 0] = 1.0
        unit = centroids / norms[:, None]
        similarity = unit @ unit.T
        cores = [set(np.flatnonzero((dense[g] > 0).mean(axis=0) >= CORE_SHARE)) for g in groups]
        for first in range(len(groups)):
            for second in range(first + 1, len(groups)):
                if cores[first] & cores[second]:
                    similarity[first, second] = similarity[second, first] = 1.0
        np.fill_diagonal(similarity, -1.0)
        best = divmod(int(similarity.argmax()), len(groups))
        if similarity[best] < MERGE_SIMILARITY:
            break
        groups[best[0]] = sorted(groups[best[0]] + groups[best[1]])
        del groups[best[1]]
    return groups
