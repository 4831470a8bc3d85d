"""Public events of the reviews context, on `reviews.events` (key: review id, derived from
the author and the product, so one buyer has one review of a product).

`review.submitted` names the product, the seller and the author, `review.edited` the product
and the author; the others name only their review (per-aggregate order brings the
submission first)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field

from domain.review_topics import (
    MAX_CORPUS_LENGTH,
    MAX_EXAMPLES,
    MAX_LABEL_LENGTH,
    MAX_TOPIC_TERMS,
    MAX_TOPICS,
    ReviewTopics,
    topics_id_for,
)
from domain.reviews import (
    MAX_MODEL_VERSION_LENGTH,
    MAX_TERM_LENGTH,
    MAX_TERMS,
    Review,
    review_id_for,
)
from eventmart.contracts.bounds import (
    Rating,
    Reason,
    ReviewBody,
    ReviewReply,
    ReviewTitle,
    safe_text,
)
from eventmart.contracts.envelope import EventContract, Payload, event_id_for, register
from eventmart.contracts.sealed import SealedDisplayName, same_payload

TOPIC = "reviews.events"
AUTHOR_ID = "0b6f3d7e-8c2a-4d5e-9f1b-3a4c5d6e7f80"
PRODUCT_ID = "3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b"
SELLER_ID = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
ADMIN_ID = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
VOTER_ID = "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"
REVIEW_ID = str(review_id_for(UUID(AUTHOR_ID), UUID(PRODUCT_ID)))

Aspect = Literal["quality", "shipping", "price", "service"]
Term = Annotated[str, safe_text(MAX_TERM_LENGTH, min_length=1)]


class ReviewSubmitted(Payload):
    review_id: UUID
    product_id: UUID
    seller_id: UUID
    author_id: UUID
    author_name: SealedDisplayName  # v2: sealed under the author's key
    rating: Rating
    seller_rating: Rating | None
    title: ReviewTitle | None
    body: ReviewBody
    verified_purchase: bool


class ReviewEdited(Payload):
    """The review as it reads after the edit, and which fields changed."""

    review_id: UUID
    product_id: UUID
    author_id: UUID
    rating: Rating
    seller_rating: Rating | None
    title: ReviewTitle | None
    body: ReviewBody
    changed: list[Literal["rating", "seller_rating", "title", "body"]] = Field(
        min_length=1, max_length=4
    )


class ReviewWithdrawn(Payload):
    review_id: UUID


class ReviewReplied(Payload):
    review_id: UUID
    body: ReviewReply
    edited: bool


class ReviewMarkedHelpful(Payload):
    review_id: UUID
    voter_id: UUID


class ReviewHidden(Payload):
    review_id: UUID
    admin_id: UUID
    reason: Reason


class Terms(Payload):
    positive: list[Term] = Field(max_length=MAX_TERMS)
    negative: list[Term] = Field(max_length=MAX_TERMS)


class ReviewClassified(Payload):
    """The feedback classifier's reading of the review's text as of `text_version` (the
    aggregate version of the submission or edit it read), by the model `model_version`."""

    review_id: UUID
    text_version: int = Field(ge=1, le=2**31 - 1)
    model_version: str = Field(min_length=1, max_length=MAX_MODEL_VERSION_LENGTH)
    lang: Literal["zh", "en"]
    aspects: list[Aspect] = Field(max_length=4)
    sentiment: Literal["positive", "neutral", "negative"]
    terms: Terms


class SentimentCounts(Payload):
    positive: int = Field(ge=0, le=2**31 - 1)
    neutral: int = Field(ge=0, le=2**31 - 1)
    negative: int = Field(ge=0, le=2**31 - 1)


class Topic(Payload):
    """One thing buyers talk about: its label and top terms in its reviews' language, how
    many reviews, their sentiment (the classifier's labels) and the most typical ones."""

    label: Annotated[str, safe_text(MAX_LABEL_LENGTH, min_length=1)]
    terms: list[Term] = Field(min_length=1, max_length=MAX_TOPIC_TERMS)
    lang: Literal["zh", "en"]
    reviews: int = Field(ge=1, le=2**31 - 1)
    sentiment: SentimentCounts
    example_review_ids: list[UUID] = Field(max_length=MAX_EXAMPLES)


class TopicsUpdated(Payload):
    """The topic model `model_version`'s reading of the scope's `reviews` published,
    classified reviews (digest `corpus`): at most 8 topics, largest first; empty when
    there are too few reviews."""

    scope: Literal["product", "seller"]
    scope_id: UUID
    model_version: str = Field(min_length=1, max_length=MAX_MODEL_VERSION_LENGTH)
    corpus: str = Field(min_length=1, max_length=MAX_CORPUS_LENGTH)
    reviews: int = Field(ge=0, le=2**31 - 1)
    topics: list[Topic] = Field(max_length=MAX_TOPICS)


def _example(kind: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    event_id = str(event_id_for(UUID(REVIEW_ID), version))
    return {
        "event_id": event_id,
        "type": kind,
        "schema_version": 1,
        "aggregate_id": REVIEW_ID,
        "aggregate_version": version,
        "occurred_at": "2026-11-28T09:00:00+00:00",
        "correlation_id": event_id,
        "causation_id": None,
        "payload": {"review_id": REVIEW_ID, **payload},
    }


def _ids(e: Any) -> dict[str, Any]:
    return {"review_id": e.originator_id}


register(
    EventContract(
        type="review.submitted",
        topic=TOPIC,
        schema_version=2,
        upcasters={1: same_payload},
        payload=ReviewSubmitted,
        domain_event=Review.Submitted,
        personal=("author_name",),
        to_payload=lambda e: {
            **_ids(e),
            "product_id": e.product_id,
            "seller_id": e.seller_id,
            "author_id": e.author_id,
            "author_name": e.author_name,
            "rating": e.rating,
            "seller_rating": e.seller_rating,
            "title": e.title,
            "body": e.body,
            "verified_purchase": True,
        },
        example=_example(
            "review.submitted",
            1,
            {
                "product_id": PRODUCT_ID,
                "seller_id": SELLER_ID,
                "author_id": AUTHOR_ID,
                "author_name": "Ada",
                "rating": 4,
                "seller_rating": 5,
                "title": "Solid mug",
                "body": "质量不错，物流也快。Keeps coffee hot.",
                "verified_purchase": True,
            },
        ),
    )
)
register(
    EventContract(
        type="review.edited",
        topic=TOPIC,
        schema_version=1,
        payload=ReviewEdited,
        domain_event=Review.Edited,
        to_payload=lambda e: {
            **_ids(e),
            "product_id": e.product_id,
            "author_id": e.author_id,
            "rating": e.rating,
            "seller_rating": e.seller_rating,
            "title": e.title,
            "body": e.body,
            "changed": e.changed,
        },
        example=_example(
            "review.edited",
            2,
            {
                "product_id": PRODUCT_ID,
                "author_id": AUTHOR_ID,
                "rating": 2,
                "seller_rating": 5,
                "title": "Solid mug",
                "body": "The handle cracked after a week.",
                "changed": ["rating", "body"],
            },
        ),
    )
)
register(
    EventContract(
        type="review.withdrawn",
        topic=TOPIC,
        schema_version=1,
        payload=ReviewWithdrawn,
        domain_event=Review.Withdrawn,
        to_payload=_ids,
        example=_example("review.withdrawn", 6, {}),
    )
)
register(
    EventContract(
        type="review.replied",
        topic=TOPIC,
        schema_version=1,
        payload=ReviewReplied,
        domain_event=Review.Replied,
        to_payload=lambda e: {
            **_ids(e),
            "body": e.body,
            "edited": e.edited,
        },
        example=_example(
            "review.replied",
            3,
            {"body": "Sorry! A new one is on its way.", "edited": False},
        ),
    )
)
register(
    EventContract(
        type="review.marked_helpful",
        topic=TOPIC,
        schema_version=1,
        payload=ReviewMarkedHelpful,
        domain_event=Review.MarkedHelpful,
        to_payload=lambda e: {**_ids(e), "voter_id": e.voter_id},
        example=_example("review.marked_helpful", 4, {"voter_id": VOTER_ID}),
    )
)
register(
    EventContract(
        type="review.hidden",
        topic=TOPIC,
        schema_version=1,
        payload=ReviewHidden,
        domain_event=Review.Hidden,
        to_payload=lambda e: {**_ids(e), "admin_id": e.admin_id, "reason": e.reason},
        example=_example("review.hidden", 5, {"admin_id": ADMIN_ID, "reason": "abusive language"}),
    )
)
register(
    EventContract(
        type="review.classified",
        topic=TOPIC,
        schema_version=1,
        payload=ReviewClassified,
        domain_event=Review.Classified,
        to_payload=lambda e: {
            **_ids(e),
            "text_version": e.text_version,
            "model_version": e.model_version,
            "lang": e.lang,
            "aspects": e.aspects,
            "sentiment": e.sentiment,
            "terms": e.terms,
        },
        example=_example(
            "review.classified",
            3,
            {
                "text_version": 2,
                "model_version": "feedback-1.0-0123456789ab",
                "lang": "en",
                "aspects": ["quality"],
                "sentiment": "negative",
                "terms": {"positive": [], "negative": ["cracked"]},
            },
        ),
    )
)

TOPICS_ID = str(topics_id_for("product", UUID(PRODUCT_ID)))
register(
    EventContract(
        type="feedback.topics_updated",
        topic=TOPIC,
        schema_version=1,
        payload=TopicsUpdated,
        domain_event=ReviewTopics.Updated,
        to_payload=lambda e: {
            "scope": e.scope,
            "scope_id": e.scope_id,
            "model_version": e.model_version,
            "corpus": e.corpus,
            "reviews": e.reviews,
            "topics": e.topics,
        },
        example={
            "event_id": str(event_id_for(UUID(TOPICS_ID), 2)),
            "type": "feedback.topics_updated",
            "schema_version": 1,
            "aggregate_id": TOPICS_ID,
            "aggregate_version": 2,
            "occurred_at": "2026-11-28T09:05:00+00:00",
            "correlation_id": str(event_id_for(UUID(TOPICS_ID), 2)),
            "causation_id": None,
            "payload": {
                "scope": "product",
                "scope_id": PRODUCT_ID,
                "model_version": "topics-1.0-0123456789ab",
                "corpus": "9f86d081884c7d659a2feaa0c55ad015",
                "reviews": 40,
                "topics": [
                    {
                        "label": "strap · broke",
                        "terms": ["strap", "broke", "buckle", "snapped"],
                        "lang": "en",
                        "reviews": 12,
                        "sentiment": {"positive": 0, "neutral": 1, "negative": 11},
                        "example_review_ids": [REVIEW_ID],
                    }
                ],
            },
        },
    )
)
