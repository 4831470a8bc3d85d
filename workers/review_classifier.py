"""The review classifier: reads `reviews.events` in its own consumer group, runs the
feedback model (eventmart.ml.feedback) over each review's text as submitted and as each
edit leaves it, and stores what it says as `review.classified` events of the review, with
the model's version. Replays and rebuilds read those events; they never run the model.

Each classification is saved with the tracking of the event that caused it (workers.saga),
and the review refuses a reading it already has (same text, same model), so a redelivered
or re-published event changes nothing. A reading of a text edited since is refused too:
the edit's own event brings the new text. `eventmart analyst reclassify-reviews` reads
every review again with another model version (reclassify below). Its timer refreshes
each product's and seller's topics as their reviews change (workers.review_topics)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.reviews import MAX_TERM_LENGTH, MAX_TERMS, Review, Reviews
from eventmart.contracts import Envelope
from eventmart.ml.feedback import Classification, FeedbackModel, load_default
from eventmart.ml.feedback.lexicon import scan
from eventmart.ml.feedback.text import normalize
from eventmart.settings import Settings
from workers.review_topics import refresh_topics
from workers.saga import Context, Participant

TEXT_FIELDS = {"title", "body"}
CONFLICT_RETRIES = 5


def review_text(title: str | None, body: str) -> str:
    """What the model reads: as Review.text."""
    return f"{title}\n{body}" if title else body


def terms_of(text: str, sentiment: str) -> dict[str, list[str]]:
    """The lexicon's polarity words in the text, for the feedback's top terms. A positive
    review's negative words are mostly negated praise ("not bad"), and the other way round,
    so a review with a clear verdict gives terms of that side only."""
    found: dict[str, list[str]] = {"positive": [], "negative": []}
    for _, _, entry in scan(normalize(text)):
        if entry.kind or not entry.polarity:
            continue
        polarity = "positive" if entry.polarity > 0 else "negative"
        if sentiment != "neutral" and polarity != sentiment:
            continue
        term = entry.term.strip()[:MAX_TERM_LENGTH]
        if term and term not in found[polarity] and len(found[polarity]) < MAX_TERMS:
            found[polarity].append(term)
    return found


def record(
    reviews: Reviews,
    review_id: UUID,
    text_version: int,
    text: str,
    model: FeedbackModel,
    classification: Classification | None = None,
) -> bool:
    reading = classification or model.classify([text])[0]
    return reviews.record_classification(
        review_id,
        text_version,
        model.version,
        reading.as_labels(),
        terms_of(text, reading.sentiment),
    )


def classify_submitted(ctx: Context, event: Envelope) -> None:
    p = event.payload
    text = review_text(p["title"], p["body"])
    record(
        ctx.application, event.aggregate_id, event.aggregate_version, text, ctx.adapters["model"]
    )


def classify_edited(ctx: Context, event: Envelope) -> None:
    """Only an edit of the words is read again; a new star rating keeps the labels."""
    p = event.payload
    if not TEXT_FIELDS & set(p["changed"]):
        return
    text = review_text(p["title"], p["body"])
    record(
        ctx.application, event.aggregate_id, event.aggregate_version, text, ctx.adapters["model"]
    )


WARM_UP = ("物流很快，质量不错", "Fast shipping, good quality")


def adapters(settings: Settings) -> dict[str, Any]:
    """The model, warmed up: jieba loads its dictionary (a second or more of CPU) on the
    first Chinese text it cuts, which would otherwise be the first review's lag."""
    model = load_default()
    model.classify(WARM_UP)
    return {"model": model}


def touches(event: Envelope) -> list[UUID]:
    return [event.aggregate_id]


def reclassify(
    reviews: Reviews, review_ids: Iterable[UUID], model: FeedbackModel, batch: int = 256
) -> int:
    """Read the current text of each review with `model`; returns how many readings were
    stored (a review this model read already, or a withdrawn one, stores nothing)."""
    stored = 0
    pending: list[Review] = []

    def stored_one(item: Review, reading: Classification) -> bool:
        for attempt in range(CONFLICT_RETRIES):
            try:
                return record(reviews, item.id, item.text_version, item.text, model, reading)
            except IntegrityError:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                # The review changed meanwhile: its reading is recorded against it as it is
                # now (or refused, if its text was edited: the edit is classified in turn).
        return False

    def flush(items: Sequence[Review]) -> int:
        readings = model.classify([item.text for item in items])
        return sum(stored_one(item, reading) for item, reading in zip(items, readings, strict=True))

    for review_id in review_ids:
        pending.append(reviews.get_review(review_id))
        if len(pending) >= batch:
            stored += flush(pending)
            pending = []
    return stored + (flush(pending) if pending else 0)


PARTICIPANT = Participant(
    group="review-classifier",
    topics=["reviews.events"],
    application=Reviews,
    policies={"review.submitted": classify_submitted, "review.edited": classify_edited},
    timers={"refresh_topics": refresh_topics},
    adapters=adapters,
    touches=touches,
)
