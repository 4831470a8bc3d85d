"""Reviews: what a verified buyer says about a product and its seller, with its edits, the
seller's reply, helpful votes, moderation and the feedback classifier's labels.

One review per buyer and product: the review's id is derived from both, so a second
submission collides in the event store (`already_reviewed`). Whether the buyer received
the product is the reviews context's own record, kept from `orders.events`
(projections/purchases.py); the application is told the answer, it does not ask another
context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.errors import Conflict, DomainError, InvalidInput, NotFound
from domain.idempotency import claim_key, find_key, result_as_left, save_with_key
from domain.limits import (
    MAX_DISPLAY_NAME_LENGTH,
    MAX_RATING,
    MAX_REASON_LENGTH,
    MAX_REVIEW_BODY_LENGTH,
    MAX_REVIEW_REPLY_LENGTH,
    MAX_REVIEW_TITLE_LENGTH,
    check_text,
    is_whole_number,
)
from domain.review_topics import ReviewTopics

REVIEW_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:review")
EDITABLE_FIELDS = ("rating", "seller_rating", "title", "body")
TEXT_FIELDS = ("title", "body")
PUBLISHED, WITHDRAWN, HIDDEN = "published", "withdrawn", "hidden"
ASPECTS = ("quality", "shipping", "price", "service")
SENTIMENTS = ("positive", "neutral", "negative")
MAX_TERMS = 10  # top terms a classification keeps per polarity
MAX_MODEL_VERSION_LENGTH = 100
MAX_TERM_LENGTH = 40


class ReviewNotFound(NotFound):
    """Also what another user hears about someone's review they may not change (API.md:
    another user's resource is 404)."""

    code = "review_not_found"


class AlreadyReviewed(Conflict):
    code = "already_reviewed"


class NotAVerifiedBuyer(DomainError):
    """No order of the caller's with this product was delivered (HTTP 403)."""

    code = "not_a_verified_buyer"


class NotProductSeller(DomainError):
    """Only the seller of the reviewed product replies (HTTP 403)."""

    code = "not_product_seller"


class OwnReview(DomainError):
    """An author cannot vote their own review helpful (HTTP 403)."""

    code = "own_review"


class InvalidRating(InvalidInput):
    code = "invalid_rating"


def review_id_for(author_id: UUID, product_id: UUID) -> UUID:
    return uuid5(REVIEW_NAMESPACE, f"{author_id}:{product_id}")


def check_rating(field: str, value: object, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not is_whole_number(value, MAX_RATING):
        raise InvalidRating(f"{field} must be a whole number from 1 to {MAX_RATING}")
    assert isinstance(value, int)
    return value


def check_title(title: str | None) -> str | None:
    """No title and a blank one are the same: none."""
    if title is None:
        return None
    checked = check_text("title", title, MAX_REVIEW_TITLE_LENGTH, blank_ok=True)
    return checked or None


def check_body(body: str) -> str:
    return check_text("body", body, MAX_REVIEW_BODY_LENGTH, multiline=True)


class Review(Aggregate):
    """A buyer's review of one product. Every change is an event; edits keep the history."""

    @staticmethod
    def create_id(author_id: UUID, product_id: UUID, **_: Any) -> UUID:
        return review_id_for(author_id, product_id)

    @event("Submitted")
    def __init__(
        self,
        author_id: UUID,
        author_name: str,
        product_id: UUID,
        seller_id: UUID,
        rating: int,
        seller_rating: int | None,
        title: str | None,
        body: str,
    ) -> None:
        self.author_id = author_id
        self.author_name = author_name
        self.product_id = product_id
        self.seller_id = seller_id
        self.rating = rating
        self.seller_rating = seller_rating
        self.title = title
        self.body = body
        self.status = PUBLISHED
        self.history: list[dict[str, Any]] = []
        self.text_version = 1  # the version whose event last set the title or body
        self.reply: str | None = None
        self.helpful_voters: set[UUID] = set()
        self.hidden_reason: str | None = None
        self.classified: tuple[int, str] | None = None  # (text version, model version)

    @staticmethod
    def submit(
        author_id: UUID,
        author_name: str,
        product_id: UUID,
        seller_id: UUID,
        rating: int,
        seller_rating: int | None,
        title: str | None,
        body: str,
    ) -> Review:
        return Review(
            author_id=author_id,
            author_name=check_text("display_name", author_name, MAX_DISPLAY_NAME_LENGTH),
            product_id=product_id,
            seller_id=seller_id,
            rating=check_rating("rating", rating),  # type: ignore[arg-type]
            seller_rating=check_rating("seller_rating", seller_rating, optional=True),
            title=check_title(title),
            body=check_body(body),
        )

    @property
    def text(self) -> str:
        """What the feedback classifier reads."""
        return f"{self.title}\n{self.body}" if self.title else self.body

    def _check_author(self, user_id: UUID) -> None:
        if user_id != self.author_id or self.status == WITHDRAWN:
            raise ReviewNotFound(str(self.id))

    def _check_visible(self) -> None:
        """Withdrawn and hidden reviews are gone for everyone but their author and admins."""
        if self.status != PUBLISHED:
            raise ReviewNotFound(str(self.id))

    def edit(self, author_id: UUID, **proposed: Any) -> bool:
        """Any of rating, seller_rating, title, body; records only what really changed."""
        self._check_author(author_id)
        unknown = set(proposed) - set(EDITABLE_FIELDS)
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}")
        checked: dict[str, Any] = {}
        if "rating" in proposed:
            checked["rating"] = check_rating("rating", proposed["rating"])
        if "seller_rating" in proposed:
            checked["seller_rating"] = check_rating(
                "seller_rating", proposed["seller_rating"], optional=True
            )
        if "title" in proposed:
            checked["title"] = check_title(proposed["title"])
        if "body" in proposed:
            checked["body"] = check_body(proposed["body"])
        changed = [
            field
            for field in EDITABLE_FIELDS
            if field in checked and checked[field] != getattr(self, field)
        ]
        if not changed:
            return False
        after = {field: checked.get(field, getattr(self, field)) for field in EDITABLE_FIELDS}
        # The product and author ride along, so the public event is whole on its own (the
        # recommender reads ratings from the log: eventmart.ml.event_log).
        self._edited(changed=changed, product_id=self.product_id, author_id=self.author_id, **after)
        return True

    @event("Edited")
    def _edited(
        self,
        rating: int,
        seller_rating: int | None,
        title: str | None,
        body: str,
        changed: list[str],
        product_id: UUID,
        author_id: UUID,
    ) -> None:
        """Carries the review as it now reads, and which fields changed."""
        self.history.append(
            {"at": self.modified_on, **{field: getattr(self, field) for field in EDITABLE_FIELDS}}
        )
        self.rating, self.seller_rating, self.title, self.body = rating, seller_rating, title, body
        if any(field in TEXT_FIELDS for field in changed):
            self.text_version = self.version + 1  # this event's version (applied before it)

    def withdraw(self, author_id: UUID) -> bool:
        """The author takes the review back: it leaves listings and aggregates for good."""
        if author_id == self.author_id and self.status == WITHDRAWN:
            return False
        self._check_author(author_id)
        self._withdrawn()
        return True

    @event("Withdrawn")
    def _withdrawn(self) -> None:
        self.status = WITHDRAWN

    def answer(self, seller_id: UUID, body: str) -> bool:
        """The product's seller replies once; replying again edits the reply."""
        self._check_visible()
        if seller_id != self.seller_id:
            raise NotProductSeller(f"review {self.id} is about another seller's product")
        body = check_text("reply", body, MAX_REVIEW_REPLY_LENGTH, multiline=True)
        if body == self.reply:
            return False
        self._replied(body=body, edited=self.reply is not None)
        return True

    @event("Replied")
    def _replied(self, body: str, edited: bool) -> None:
        self.reply = body

    def mark_helpful(self, voter_id: UUID) -> bool:
        """Counted once per user (False the second time); never by the author."""
        self._check_visible()
        if voter_id == self.author_id:
            raise OwnReview("an author cannot vote their own review helpful")
        if voter_id in self.helpful_voters:
            return False
        self._marked_helpful(voter_id=voter_id)
        return True

    @event("MarkedHelpful")
    def _marked_helpful(self, voter_id: UUID) -> None:
        self.helpful_voters.add(voter_id)

    @property
    def helpful_count(self) -> int:
        return len(self.helpful_voters)

    def hide(self, admin_id: UUID, reason: str) -> bool:
        """An admin takes the review out of listings and aggregates, saying why."""
        reason = check_text("reason", reason, MAX_REASON_LENGTH)
        if self.status == WITHDRAWN:
            raise ReviewNotFound(str(self.id))
        if self.status == HIDDEN:
            return False
        self._hidden(admin_id=admin_id, reason=reason)
        return True

    @event("Hidden")
    def _hidden(self, admin_id: UUID, reason: str) -> None:
        self.status = HIDDEN
        self.hidden_reason = reason

    def classify(
        self,
        text_version: int,
        model_version: str,
        lang: str,
        aspects: list[str],
        sentiment: str,
        terms: dict[str, list[str]],
    ) -> bool:
        """The classifier's reading of the text as it was at `text_version`. Nothing is
        recorded for a text since edited (its edit is classified in turn), for a reading
        already recorded, or for a withdrawn review."""
        if self.status == WITHDRAWN or text_version != self.text_version:
            return False
        if self.classified == (text_version, model_version):
            return False
        if not 0 < len(model_version) <= MAX_MODEL_VERSION_LENGTH:
            raise InvalidInput("model_version must be 1..100 characters")
        if sentiment not in SENTIMENTS or not set(aspects) <= set(ASPECTS):
            raise InvalidInput("unknown aspect or sentiment")
        bounded = {
            polarity: [term[:MAX_TERM_LENGTH] for term in terms.get(polarity, [])[:MAX_TERMS]]
            for polarity in ("positive", "negative")
        }
        self._classified(
            text_version=text_version,
            model_version=model_version,
            lang=lang,
            aspects=[aspect for aspect in ASPECTS if aspect in aspects],
            sentiment=sentiment,
            terms=bounded,
        )
        return True

    @event("Classified")
    def _classified(
        self,
        text_version: int,
        model_version: str,
        lang: str,
        aspects: list[str],
        sentiment: str,
        terms: dict[str, list[str]],
    ) -> None:
        self.classified = (text_version, model_version)


class Reviews(Application[UUID]):
    """Command entry point for the reviews context (tables `reviews_events`)."""

    name = "Reviews"

    def submit_review(
        self,
        author_id: UUID,
        author_name: str,
        product_id: UUID,
        seller_id: UUID,
        *,
        verified_buyer: bool,
        rating: int,
        seller_rating: int | None = None,
        title: str | None = None,
        body: str,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> UUID:
        """`verified_buyer`: whether the reviews context's purchase record shows one of the
        author's orders with this product delivered. With an Idempotency-Key, the same
        request again answers the first review."""
        scope = f"submit_review:{author_id}"
        earlier = find_key(self, scope, idempotency_key)
        if earlier is not None:
            return earlier.replay(fingerprint)
        review = Review.submit(
            author_id, author_name, product_id, seller_id, rating, seller_rating, title, body
        )
        if not verified_buyer:
            raise NotAVerifiedBuyer("only a buyer whose order with this product was delivered")
        try:
            earlier = save_with_key(
                self, claim_key(scope, idempotency_key, fingerprint, review), review
            )
        except IntegrityError as error:
            raise AlreadyReviewed(
                "you reviewed this product already; edit that review instead"
            ) from error
        return review.id if earlier is None else earlier.replay(fingerprint)

    def edit_review(
        self,
        review_id: UUID,
        author_id: UUID,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        **changes: Any,
    ) -> Review:
        return self._change(
            review_id,
            lambda review: review.edit(author_id, **changes),
            (f"edit_review:{author_id}", idempotency_key, fingerprint),
        )

    def withdraw_review(self, review_id: UUID, author_id: UUID) -> Review:
        return self._change(review_id, lambda review: review.withdraw(author_id))

    def reply_to_review(
        self,
        review_id: UUID,
        seller_id: UUID,
        body: str,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> Review:
        return self._change(
            review_id,
            lambda review: review.answer(seller_id, body),
            (f"reply_to_review:{seller_id}", idempotency_key, fingerprint),
        )

    def mark_helpful(self, review_id: UUID, voter_id: UUID) -> Review:
        return self._change(review_id, lambda review: review.mark_helpful(voter_id))

    def hide_review(
        self,
        review_id: UUID,
        admin_id: UUID,
        reason: str,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> Review:
        return self._change(
            review_id,
            lambda review: review.hide(admin_id, reason),
            (f"hide_review:{admin_id}", idempotency_key, fingerprint),
        )

    def record_classification(
        self,
        review_id: UUID,
        text_version: int,
        model_version: str,
        labels: dict[str, Any],
        terms: dict[str, list[str]],
    ) -> bool:
        """True if a `review.classified` event was stored."""
        review = self.get_review(review_id)
        changed = review.classify(
            text_version,
            model_version,
            labels["lang"],
            list(labels["aspects"]),
            labels["sentiment"],
            terms,
        )
        if changed:
            self.save(review)
        return changed

    def topics_read(self, scope: str, scope_id: UUID) -> tuple[str, str] | None:
        """(model version, corpus digest) of the scope's latest topics, None before any."""
        try:
            topics: object = self.repository.get(ReviewTopics.create_id(scope, scope_id))
        except AggregateNotFoundError:
            return None
        return topics.read if isinstance(topics, ReviewTopics) else None

    def record_topics(
        self,
        scope: str,
        scope_id: UUID,
        model_version: str,
        corpus: str,
        reviews: int,
        topics: list[dict[str, Any]],
    ) -> bool:
        """True if a `feedback.topics_updated` event was stored (a racing refresh of the
        same scope fails on the aggregate's version; its next refresh reads again)."""
        try:
            found: object = self.repository.get(ReviewTopics.create_id(scope, scope_id))
        except AggregateNotFoundError:
            found = ReviewTopics(scope, scope_id)
        if not isinstance(found, ReviewTopics):
            raise InvalidInput("not a topics aggregate")
        changed = found.refresh(model_version, corpus, reviews, topics)
        if changed:
            self.save(found)
        return changed

    def _change(
        self,
        review_id: UUID,
        change: Callable[[Review], bool],
        keyed: tuple[str, str | None, str] | None = None,
    ) -> Review:
        """Load, change, save with the version read: a racing change of the same review
        fails (the API retries it) instead of being overwritten. With an Idempotency-Key,
        the same request again changes nothing and answers the review as the first left it
        (a change that changed nothing claims its key too, so another body is refused).
        `keyed`: the key's scope, the key (or None) and the request's fingerprint."""
        scope, key, fingerprint = keyed or ("", None, "")
        earlier = find_key(self, scope, key)
        if earlier is None:
            review = self.get_review(review_id)
            changed = change(review)
            claim = claim_key(scope, key, fingerprint, review)
            if not changed and claim is None:
                return review
            earlier = save_with_key(self, claim, *([review] if changed else []))
            if earlier is None:
                return review
        return result_as_left(self, earlier, fingerprint, Review)

    def get_review(self, review_id: UUID) -> Review:
        try:
            review: object = self.repository.get(review_id)
        except AggregateNotFoundError as error:
            raise ReviewNotFound(str(review_id)) from error
        if not isinstance(review, Review):
            raise ReviewNotFound(str(review_id))
        return review
