"""Review rules as scenarios: given a review's events, when someone acts, then these events
(or this refusal). No I/O: the application runs on eventsourcing's in-memory store."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain.errors import InvalidInput
from domain.idempotency import IdempotencyKeyReused
from domain.limits import InvalidText
from domain.reviews import (
    AlreadyReviewed,
    InvalidRating,
    NotAVerifiedBuyer,
    NotProductSeller,
    OwnReview,
    Review,
    ReviewNotFound,
    Reviews,
    review_id_for,
)
from eventmart.contracts import envelope_from_domain, parse

AUTHOR, PRODUCT, SELLER, ADMIN, VOTER = (uuid4() for _ in range(5))


def given_review(**overrides: object) -> Review:
    fields: dict[str, object] = {
        "author_id": AUTHOR,
        "author_name": "Ada",
        "product_id": PRODUCT,
        "seller_id": SELLER,
        "rating": 4,
        "seller_rating": 5,
        "title": "Solid mug",
        "body": "质量不错，物流也快",
    }
    fields.update(overrides)
    review = Review.submit(**fields)  # type: ignore[arg-type]
    review.collect_events()
    return review


def then_events(review: Review) -> list[str]:
    return [type(e).__name__ for e in review.collect_events()]


def test_a_submission_is_one_event_with_the_id_of_its_author_and_product() -> None:
    review = Review.submit(AUTHOR, "Ada", PRODUCT, SELLER, 5, None, "  ", " Great ")
    [submitted] = review.collect_events()
    assert type(submitted).__name__ == "Submitted"
    assert review.id == review_id_for(AUTHOR, PRODUCT)
    assert (review.title, review.body, review.seller_rating) == (None, "Great", None)


@pytest.mark.parametrize("rating", [0, 6, -1, True, 4.5, "5", None])
def test_a_rating_is_a_whole_number_from_one_to_five(rating: object) -> None:
    with pytest.raises(InvalidRating):
        given_review(rating=rating)
    with pytest.raises(InvalidRating):
        given_review(seller_rating=rating if rating is not None else 0)


@pytest.mark.parametrize(
    ("field", "value"), [("body", ""), ("body", "   "), ("body", "x" * 5001), ("title", "t" * 121)]
)
def test_body_and_title_are_bounded(field: str, value: str) -> None:
    with pytest.raises(InvalidText):
        given_review(**{field: value})


def test_bodies_of_5000_characters_and_titles_of_120_are_taken() -> None:
    review = given_review(body="好" * 5000, title="t" * 120)
    assert len(review.body) == 5000


def test_an_edit_records_the_review_as_it_now_reads_and_keeps_the_history() -> None:
    review = given_review()
    assert review.edit(AUTHOR, rating=2, body="The handle cracked")
    [edited] = review.collect_events()
    assert type(edited).__name__ == "Edited"
    assert edited.changed == ["rating", "body"]  # type: ignore[attr-defined]
    assert (review.rating, review.body, review.title) == (2, "The handle cracked", "Solid mug")
    assert review.history[0]["rating"] == 4 and review.history[0]["body"] == "质量不错，物流也快"
    assert review.text_version == 2


def test_an_edit_that_changes_nothing_records_nothing() -> None:
    review = given_review()
    assert not review.edit(AUTHOR, rating=4, title="Solid mug")
    assert then_events(review) == []


def test_a_rating_only_edit_keeps_the_text_version() -> None:
    review = given_review()
    review.edit(AUTHOR, rating=1)
    assert review.text_version == 1


def test_another_user_cannot_edit_or_withdraw_and_hears_not_found() -> None:
    review = given_review()
    with pytest.raises(ReviewNotFound):
        review.edit(VOTER, rating=1)
    with pytest.raises(ReviewNotFound):
        review.withdraw(VOTER)
    assert then_events(review) == []


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidInput):
        given_review().edit(AUTHOR, stars=5)


def test_withdrawing_twice_records_once_and_a_withdrawn_review_is_gone() -> None:
    review = given_review()
    assert review.withdraw(AUTHOR)
    assert not review.withdraw(AUTHOR)
    assert then_events(review) == ["Withdrawn"]
    with pytest.raises(ReviewNotFound):
        review.edit(AUTHOR, rating=1)
    with pytest.raises(ReviewNotFound):
        review.mark_helpful(VOTER)


def test_the_products_seller_replies_once_and_may_edit_the_reply() -> None:
    review = given_review()
    assert review.answer(SELLER, "Thank you!")
    assert not review.answer(SELLER, "Thank you!")
    assert review.answer(SELLER, "Thank you, enjoy it!")
    events = review.collect_events()
    assert [e.edited for e in events] == [False, True]  # type: ignore[attr-defined]
    with pytest.raises(NotProductSeller):
        review.answer(uuid4(), "I sell it too")


def test_helpful_is_counted_once_per_user_and_never_by_the_author() -> None:
    review = given_review()
    assert review.mark_helpful(VOTER)
    assert not review.mark_helpful(VOTER)
    with pytest.raises(OwnReview):
        review.mark_helpful(AUTHOR)
    assert then_events(review) == ["MarkedHelpful"]
    assert review.helpful_count == 1


def test_hiding_needs_a_reason_and_happens_once() -> None:
    review = given_review()
    with pytest.raises(InvalidText):
        review.hide(ADMIN, " ")
    assert review.hide(ADMIN, "abusive language")
    assert not review.hide(ADMIN, "again")
    assert then_events(review) == ["Hidden"]
    with pytest.raises(ReviewNotFound):
        review.mark_helpful(VOTER)


def test_a_classification_of_an_edited_text_is_not_recorded() -> None:
    review = given_review()
    review.edit(AUTHOR, body="Broke in a day")
    review.collect_events()
    labels = ("m1", "en", ["quality"], "negative", {"positive": [], "negative": ["broke"]})
    assert not review.classify(1, *labels)  # the text it read is gone
    assert review.classify(2, *labels)
    assert not review.classify(2, *labels)  # the same reading again
    assert review.classify(2, "m2", *labels[1:])  # a new model reads it again
    assert then_events(review) == ["Classified", "Classified"]


def test_every_event_is_published_in_a_valid_envelope() -> None:
    review = Review.submit(AUTHOR, "Ada", PRODUCT, SELLER, 4, None, None, "Good")
    review.edit(AUTHOR, title="Nice", rating=5)
    review.answer(SELLER, "Thanks")
    review.mark_helpful(VOTER)
    review.classify(2, "m1", "en", ["quality"], "positive", {"positive": ["good"]})
    review.hide(ADMIN, "spam")
    review.withdraw(AUTHOR)
    types = []
    for domain_event in review.collect_events():
        envelope = envelope_from_domain(domain_event)
        assert envelope is not None
        assert parse(envelope.to_bytes()) == envelope
        assert envelope.aggregate_id == review.id
        types.append(envelope.type)
    assert types == [
        "review.submitted",
        "review.edited",
        "review.replied",
        "review.marked_helpful",
        "review.classified",
        "review.hidden",
        "review.withdrawn",
    ]


# The application: one review per buyer and product, verified buyers only.


def submit(reviews: Reviews, author: UUID = AUTHOR, **overrides: object) -> UUID:
    fields: dict[str, object] = {"verified_buyer": True, "rating": 5, "body": "Love it"}
    fields.update(overrides)
    return reviews.submit_review(author, "Ada", PRODUCT, SELLER, **fields)  # type: ignore[arg-type]


def test_a_buyer_without_a_delivered_order_cannot_review() -> None:
    with pytest.raises(NotAVerifiedBuyer):
        submit(Reviews(), verified_buyer=False)


def test_a_second_review_of_the_same_product_is_already_reviewed() -> None:
    reviews = Reviews()
    submit(reviews)
    with pytest.raises(AlreadyReviewed):
        submit(reviews, rating=1)


def test_the_same_idempotency_key_answers_the_first_review() -> None:
    reviews = Reviews()
    first = submit(reviews, idempotency_key="k1", fingerprint="f")
    assert submit(reviews, idempotency_key="k1", fingerprint="f") == first


def stored(reviews: Reviews) -> int:
    return len(reviews.recorder.select_notifications(start=1, limit=100_000))


def test_an_edit_reply_or_hiding_repeated_with_its_key_changes_once_and_answers_as_it_left() -> (
    None
):
    reviews = Reviews()
    review_id = submit(reviews)
    first = reviews.edit_review(review_id, AUTHOR, idempotency_key="e", fingerprint="f", rating=4)
    reviews.edit_review(review_id, AUTHOR, rating=2)
    before = stored(reviews)
    again = reviews.edit_review(review_id, AUTHOR, idempotency_key="e", fingerprint="f", rating=4)
    assert (again.rating, again.version) == (4, first.version)
    assert stored(reviews) == before and reviews.get_review(review_id).rating == 2
    with pytest.raises(IdempotencyKeyReused):
        reviews.edit_review(review_id, AUTHOR, idempotency_key="e", fingerprint="g", rating=3)
    reply = reviews.reply_to_review(
        review_id, SELLER, "Thanks", idempotency_key="r", fingerprint="f"
    )
    hidden = reviews.hide_review(review_id, ADMIN, "spam", idempotency_key="h", fingerprint="f")
    before = stored(reviews)
    assert (
        reviews.reply_to_review(
            review_id, SELLER, "Thanks", idempotency_key="r", fingerprint="f"
        ).version
        == reply.version
    )
    assert (
        reviews.hide_review(review_id, ADMIN, "spam", idempotency_key="h", fingerprint="f").version
        == hidden.version
    )
    for command in (
        lambda: reviews.reply_to_review(
            review_id, SELLER, "No", idempotency_key="r", fingerprint="g"
        ),
        lambda: reviews.hide_review(review_id, ADMIN, "rude", idempotency_key="h", fingerprint="g"),
    ):
        with pytest.raises(IdempotencyKeyReused):
            command()
    assert stored(reviews) == before


def test_a_keyed_edit_that_changes_nothing_still_claims_its_key() -> None:
    reviews = Reviews()
    review_id = submit(reviews, rating=5)
    reviews.edit_review(review_id, AUTHOR, idempotency_key="e", fingerprint="f", rating=5)
    with pytest.raises(IdempotencyKeyReused):
        reviews.edit_review(review_id, AUTHOR, idempotency_key="e", fingerprint="g", rating=1)
    assert reviews.get_review(review_id).rating == 5


def test_commands_on_an_unknown_review_are_not_found() -> None:
    with pytest.raises(ReviewNotFound):
        Reviews().mark_helpful(uuid4(), VOTER)


def test_a_classification_is_recorded_once_per_text_and_model() -> None:
    reviews = Reviews()
    review_id = submit(reviews)
    labels = {"lang": "en", "aspects": ["quality"], "sentiment": "positive"}
    assert reviews.record_classification(review_id, 1, "m1", labels, {"positive": ["love"]})
    assert not reviews.record_classification(review_id, 1, "m1", labels, {})
    assert reviews.get_review(review_id).version == 2


# The purchase record and the classifier's terms.


def test_a_refund_or_cancellation_never_takes_a_received_purchase_back() -> None:
    """The decision (docs/reviews.md): a review stays valid whatever happens to the order
    after delivery, so the purchase record reacts to placement and receipt only."""
    from projections.purchases import HANDLERS

    assert set(HANDLERS) == {"order.placed", "order.delivered", "order.completed"}


@pytest.mark.parametrize(
    ("text", "sentiment", "positive", "negative"),
    [
        ("质量很好，物流也很给力", "positive", True, False),
        ("Broke after two days, terrible quality", "negative", False, True),
    ],
)
def test_the_classifier_keeps_the_terms_of_the_reviews_side(
    text: str, sentiment: str, positive: bool, negative: bool
) -> None:
    from workers.review_classifier import terms_of

    terms = terms_of(text, sentiment)
    assert bool(terms["positive"]) is positive and bool(terms["negative"]) is negative
    assert all(len(found) <= 10 for found in terms.values())


def test_the_recommenders_log_reader_takes_published_ratings_and_their_edits() -> None:
    from eventmart.ml.event_log import read_events

    review = Review.submit(AUTHOR, "Ada", PRODUCT, SELLER, 5, None, None, "Good")
    review.edit(AUTHOR, rating=2)
    envelopes = [envelope_from_domain(e) for e in review.collect_events()]
    data = read_events(envelopes)
    assert data.counts.get("malformed", 0) == 0
    assert len(data.interactions) == 1  # the latest rating of the author for the product
