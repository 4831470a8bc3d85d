"""The topic model on planted themes, and the topics aggregate: given reviews, then topics;
given a refresh, then one event, and none for the same reviews again."""

from __future__ import annotations

import random
from collections import Counter
from uuid import uuid4

import pytest

from domain.errors import InvalidInput
from domain.review_topics import ReviewTopics
from eventmart.ml.topics import (
    MAX_TOPICS,
    MIN_REVIEWS,
    Document,
    Topic,
    find_topics,
    topic_model_version,
    words,
)
from tests.planted_themes import planted_reviews

SENTIMENT = {"strap": "negative", "delivery": "positive", "noise": "neutral"}


def planted_documents(language: str) -> list[Document]:
    return [
        Document(f"{language}-{theme}-{index:02d}", text, SENTIMENT[theme])
        for theme, texts in planted_reviews(language).items()
        for index, text in enumerate(texts)
    ]


def theme_of(topic: Topic) -> Counter[str]:
    return Counter(review_id.rsplit("-", 1)[0] for review_id in topic.review_ids)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_each_planted_theme_is_one_topic_with_its_sentiment(language: str) -> None:
    topics = find_topics(planted_documents(language))
    for theme in ("strap", "delivery"):
        showing = [t for t in topics if theme_of(t)[f"{language}-{theme}"]]
        assert len(showing) == 1, [(t.label, theme_of(t)) for t in topics]
        topic = showing[0]
        assert topic.reviews >= 27 and theme_of(topic)[f"{language}-{theme}"] >= 27
        assert topic.sentiment[SENTIMENT[theme]] >= 0.8 * topic.reviews
        assert all(r.startswith(f"{language}-{theme}") for r in topic.example_review_ids)
    strap = next(t for t in topics if theme_of(t)[f"{language}-strap"])
    assert ("strap" if language == "en" else "表带") in strap.label


def test_labels_are_in_each_language_and_both_languages_mix_into_one_list() -> None:
    topics = find_topics([*planted_documents("en"), *planted_documents("zh")])
    assert len(topics) <= MAX_TOPICS
    assert {t.lang for t in topics} == {"en", "zh"}
    assert [t.reviews for t in topics] == sorted((t.reviews for t in topics), reverse=True)
    for topic in topics:
        assert all(r.startswith(topic.lang) for r in topic.review_ids)


def test_the_same_reviews_in_any_order_give_the_same_topics() -> None:
    documents = planted_documents("en")
    shuffled = random.Random(3).sample(documents, len(documents))
    assert find_topics(documents) == find_topics(shuffled)


def test_too_few_reviews_give_no_topics() -> None:
    documents = planted_documents("en")
    assert find_topics(documents[: MIN_REVIEWS - 1]) == []
    assert find_topics([]) == []


def test_topic_words_leave_stop_words_and_markers_out() -> None:
    assert words("The strap is not very good and it broke") == ["strap", "good", "broke"]
    assert "的" not in words("表带的质量很差") and "表带" in words("表带的质量很差")


def test_the_version_names_the_topic_model() -> None:
    assert topic_model_version().startswith("topics-1.0-")


def test_a_refresh_is_one_event_and_the_same_reviews_again_none() -> None:
    topics = ReviewTopics("product", uuid4())
    payload = find_topics(planted_documents("en"))[0].as_payload()
    assert topics.refresh("topics-1.0-x", "digest-1", 80, [payload])
    assert not topics.refresh("topics-1.0-x", "digest-1", 80, [payload])
    assert topics.refresh("topics-1.0-x", "digest-2", 81, [payload])
    updates = [e for e in topics.collect_events() if isinstance(e, ReviewTopics.Updated)]
    assert [e.corpus for e in updates] == ["digest-1", "digest-2"]
    assert updates[0].topics[0]["label"] == payload["label"]
    assert ReviewTopics.create_id("product", topics.scope_id) == topics.id


def test_a_refresh_refuses_what_the_contract_would() -> None:
    topics = ReviewTopics("seller", uuid4())
    with pytest.raises(InvalidInput):
        topics.refresh("", "digest", 1, [])
    with pytest.raises(InvalidInput):
        ReviewTopics("shop", uuid4())
