"""What buyers talk about, per product and per seller: the topic model's latest reading of
their reviews, refreshed by the classifier worker as reviews arrive.

One aggregate per scope (a product or a seller), its id derived from the scope, so every
refresh of a product's topics is one more event of the same aggregate. Each refresh
stores the topics with the topic model's version and a digest of the reviews it read:
replays and rebuilds read the events, they never rerun the model, and a refresh of the
same reviews by the same model stores nothing."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput

TOPICS_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:review-topics")
SCOPES = ("product", "seller")
MAX_TOPICS = 8
MAX_TOPIC_TERMS = 8
MAX_EXAMPLES = 5
MAX_LABEL_LENGTH = 100
MAX_CORPUS_LENGTH = 64


def topics_id_for(scope: str, scope_id: UUID) -> UUID:
    return uuid5(TOPICS_NAMESPACE, f"{scope}:{scope_id}")


class ReviewTopics(Aggregate):
    """The topics of one product's or one seller's published, classified reviews."""

    @staticmethod
    def create_id(scope: str, scope_id: UUID) -> UUID:
        return topics_id_for(scope, scope_id)

    @event("Started")
    def __init__(self, scope: str, scope_id: UUID) -> None:
        if scope not in SCOPES:
            raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}")
        self.scope = scope
        self.scope_id = scope_id
        self.read: tuple[str, str] | None = None  # (model version, corpus digest)

    def refresh(
        self, model_version: str, corpus: str, reviews: int, topics: list[dict[str, Any]]
    ) -> bool:
        """Record the topics found in `reviews` reviews (digest `corpus`); nothing when this
        model already read these reviews."""
        if self.read == (model_version, corpus):
            return False
        if not 0 < len(model_version) <= 100 or not 0 < len(corpus) <= MAX_CORPUS_LENGTH:
            raise InvalidInput("model_version and corpus must be short, non-empty strings")
        if len(topics) > MAX_TOPICS:
            raise InvalidInput(f"at most {MAX_TOPICS} topics")
        self._updated(
            scope=self.scope,
            scope_id=self.scope_id,
            model_version=model_version,
            corpus=corpus,
            reviews=reviews,
            topics=[_bounded(topic) for topic in topics],
        )
        return True

    @event("Updated")
    def _updated(
        self,
        scope: str,
        scope_id: UUID,
        model_version: str,
        corpus: str,
        reviews: int,
        topics: list[dict[str, Any]],
    ) -> None:
        self.read = (model_version, corpus)


def _bounded(topic: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": str(topic["label"])[:MAX_LABEL_LENGTH],
        "terms": [str(term)[:40] for term in topic["terms"][:MAX_TOPIC_TERMS]],
        "lang": topic["lang"],
        "reviews": int(topic["reviews"]),
        "sentiment": {
            k: int(topic["sentiment"].get(k, 0)) for k in ("positive", "neutral", "negative")
        },
        "example_review_ids": [str(r) for r in topic["example_review_ids"][:MAX_EXAMPLES]],
    }
