"""Reviews and feedback (API.md "Reviews and feedback"): verified buyers review, sellers
reply, anyone reads; listings, feedback and ratings come from the read models only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.caught_up import CaughtUp, found_or_caught_up
from api.deps import (
    CurrentUser,
    PurchasesDb,
    RatingsDb,
    ServicesDep,
    require_role,
    retry_concurrent,
)
from api.errors import error_responses
from api.idempotency import IdempotencyKeyHeader, accept_idempotency_key, fingerprint
from api.params import Cursor, Limit
from api.product_cache import encode
from api.routes.sellers import Since, Until, _range
from api.security import Principal
from domain.reviews import Review
from eventmart.contracts.bounds import Rating, Reason, ReviewBody, ReviewReply, ReviewTitle
from eventmart.database import make_async_pool
from eventmart.groups import database_of
from projections.purchases import has_received
from projections.ratings import seller_rating
from projections.reviews import list_reviews, product_feedback, seller_feedback


@asynccontextmanager
async def review_reads(app: FastAPI) -> AsyncIterator[None]:
    """Listings and feedback read the reviews read model through an async pool of their
    own, as the catalogue's queries do: no thread hop per request."""
    settings = app.state.services.settings
    pool = make_async_pool(
        database_of("reviews-projection", settings),
        min_size=2,
        max_size=8,
        timeout=settings.database_wait_seconds,
    )
    await pool.open(wait=True, timeout=30)
    app.state.review_reads = pool
    app.state.caught_up = CaughtUp(
        settings.bootstrap_servers, settings.verified_purchase_wait_seconds
    )
    try:
        yield
    finally:
        await app.state.caught_up.stop()
        await pool.close()


router = APIRouter(prefix="/v1", tags=["reviews"], lifespan=review_reads)

Seller = Annotated[Principal, require_role("seller")]
Admin = Annotated[Principal, require_role("admin")]
Aspect = Literal["quality", "shipping", "price", "service"]
Sentiment = Literal["positive", "neutral", "negative"]
IDEMPOTENT = [Depends(accept_idempotency_key)]
JSON = "application/json"


class SubmitReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Rating
    seller_rating: Rating | None = None
    title: ReviewTitle | None = None
    body: ReviewBody


class EditReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Rating | None = None
    seller_rating: Rating | None = None
    title: ReviewTitle | None = None
    body: ReviewBody | None = None


class ReplyToReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: ReviewReply


class HideReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class ReviewSubmitted(BaseModel):
    review_id: UUID


class ReviewStored(BaseModel):
    """A review as its aggregate holds it (the answer to a change)."""

    review_id: UUID
    product_id: UUID
    rating: int
    seller_rating: int | None
    title: str | None
    body: str
    status: Literal["published", "withdrawn", "hidden"]
    seller_reply: str | None
    helpful_count: int
    version: int


class Author(BaseModel):
    display_name: str


class SellerReply(BaseModel):
    body: str
    replied_at: datetime


class ReviewView(BaseModel):
    review_id: UUID
    product_id: UUID
    author: Author
    rating: int
    seller_rating: int | None
    title: str | None
    body: str
    created_at: datetime
    edited_at: datetime | None
    verified_purchase: bool
    helpful_count: int
    aspects: list[Aspect] | None = Field(
        None, description="absent until the feedback classifier has read the review"
    )
    sentiment: Sentiment | None = Field(
        None, description="absent until the feedback classifier has read the review"
    )
    seller_reply: SellerReply | None


class ReviewPage(BaseModel):
    items: list[ReviewView]
    next_cursor: str | None


class SentimentCounts(BaseModel):
    positive: int
    neutral: int
    negative: int


class TopTerms(BaseModel):
    positive: list[str]
    negative: list[str]


class FeedbackTopic(BaseModel):
    """What buyers talk about: a topic of the reviews, from the topic model."""

    label: str = Field(description="the topic's top terms, in its reviews' language")
    terms: list[str]
    reviews: int = Field(description="how many reviews the topic holds")
    sentiment: SentimentCounts
    example_review_ids: list[UUID]


class FeedbackFigures(BaseModel):
    reviews: int
    sentiment: SentimentCounts
    aspects: dict[Aspect, SentimentCounts]
    top_terms: TopTerms
    topics: list[FeedbackTopic] = Field(
        description="at most 8, largest first; empty below a minimum number of reviews "
        "(the latest refresh of the topic model, whatever window was asked for)",
        max_length=8,
    )


class ProductFeedback(FeedbackFigures):
    product_id: UUID


class SellerFeedback(FeedbackFigures):
    seller_id: UUID
    products: list[ProductFeedback]


class ProductRatingSummary(BaseModel):
    average: float | None
    count: int


class SellerRating(BaseModel):
    seller_id: UUID
    average: float | None
    count: int
    bayesian_average: float | None
    product_rating: ProductRatingSummary


def _stored(review: Review) -> ReviewStored:
    return ReviewStored(
        review_id=review.id,
        product_id=review.product_id,
        rating=review.rating,
        seller_rating=review.seller_rating,
        title=review.title,
        body=review.body,
        status=review.status,
        seller_reply=review.reply,
        helpful_count=review.helpful_count,
        version=review.version,
    )


@router.post(
    "/products/{product_id}/reviews",
    status_code=201,
    response_model=ReviewSubmitted,
    responses=error_responses(401, 403, 404, 409, 503),
)
def submit_review(
    product_id: UUID,
    body: SubmitReview,
    user: CurrentUser,
    services: ServicesDep,
    purchases: PurchasesDb,
    http: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ReviewSubmitted:
    """Review a product one of your orders brought you (403 `not_a_verified_buyer`
    otherwise); one review per product (409 `already_reviewed`: edit it instead)."""
    applications = services.applications
    product = applications.catalog.get_product(product_id)  # 404 product_not_found
    author = applications.users.get_user(user.user_id)
    review_id = applications.reviews.submit_review(
        user.user_id,
        services.cipher.open(author.display_name),  # sealed in the users' store
        product_id,
        product.seller_id,
        verified_buyer=found_or_caught_up(
            http.app.state.caught_up,
            purchases,
            "purchases",
            "orders.events",
            lambda: has_received(purchases, str(user.user_id), str(product_id)),
        ),
        rating=body.rating,
        seller_rating=body.seller_rating,
        title=body.title,
        body=body.body,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(services.settings.secret_key, body, product_id),
    )
    return ReviewSubmitted(review_id=review_id)


@router.patch(
    "/reviews/{review_id}",
    response_model=ReviewStored,
    responses=error_responses(401, 404, 409, 503),
)
def edit_review(
    review_id: UUID,
    body: EditReview,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ReviewStored:
    """Change any of rating, seller_rating, title, body of your review (another user's
    review is 404 `review_not_found`); the earlier text stays in the review's history.
    With an Idempotency-Key, repeating the same change answers the review as it left it."""
    changes = body.model_dump(exclude_unset=True)
    for field in ("rating", "body"):
        if field in changes and changes[field] is None:
            del changes[field]  # null means "not given" for fields a review always has
    request = fingerprint(services.settings.secret_key, body, review_id)
    review = retry_concurrent(
        lambda: services.applications.reviews.edit_review(
            review_id,
            user.user_id,
            idempotency_key=idempotency_key,
            fingerprint=request,
            **changes,
        )
    )
    return _stored(review)


@router.delete(
    "/reviews/{review_id}",
    status_code=204,
    responses=error_responses(401, 404, 409, 503),
    dependencies=IDEMPOTENT,
)
def withdraw_review(review_id: UUID, user: CurrentUser, services: ServicesDep) -> Response:
    """Withdraw your review: it leaves listings and every aggregate."""
    retry_concurrent(lambda: services.applications.reviews.withdraw_review(review_id, user.user_id))
    return Response(status_code=204)


@router.get(
    "/products/{product_id}/reviews",
    response_model=ReviewPage,
    responses=error_responses(503),
)
async def product_reviews(
    product_id: UUID,
    request: Request,
    sort: Literal["newest", "helpful", "rating", "-rating"] = "newest",
    rating: Annotated[int | None, Query(ge=1, le=5)] = None,
    aspect: Aspect | None = None,
    sentiment: Sentiment | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Response:
    """A product's published reviews, one page at a time; `rating` sorts lowest first,
    `-rating` highest first. Aspects and sentiment are absent until the classifier saw it."""
    async with request.app.state.review_reads.connection() as conn:
        items, next_cursor = await list_reviews(
            conn,
            str(product_id),
            sort=sort,
            rating=rating,
            aspect=aspect,
            sentiment=sentiment,
            limit=limit,
            cursor=cursor,
            cursors=request.app.state.services.cursors,
        )
    return Response(encode({"items": items, "next_cursor": next_cursor}), media_type=JSON)


@router.post(
    "/reviews/{review_id}/helpful",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 503),
    dependencies=IDEMPOTENT,
)
def mark_helpful(review_id: UUID, user: CurrentUser, services: ServicesDep) -> Response:
    """Counted once per user (again: 204, nothing counted); never by its author (403)."""
    retry_concurrent(lambda: services.applications.reviews.mark_helpful(review_id, user.user_id))
    return Response(status_code=204)


@router.post(
    "/reviews/{review_id}/reply",
    status_code=201,
    response_model=ReviewStored,
    responses=error_responses(401, 403, 404, 409, 503),
)
def reply_to_review(
    review_id: UUID,
    body: ReplyToReview,
    user: Seller,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ReviewStored:
    """The reviewed product's seller answers (403 `not_product_seller` for another seller);
    one reply per review: replying again replaces it. With an Idempotency-Key, repeating
    the same reply answers the review as it left it."""
    request = fingerprint(services.settings.secret_key, body, review_id)
    review = retry_concurrent(
        lambda: services.applications.reviews.reply_to_review(
            review_id, user.user_id, body.body, idempotency_key=idempotency_key, fingerprint=request
        )
    )
    return _stored(review)


@router.post(
    "/reviews/{review_id}/hide",
    status_code=202,
    response_model=ReviewStored,
    responses=error_responses(401, 403, 404, 409, 503),
)
def hide_review(
    review_id: UUID,
    body: HideReview,
    user: Admin,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ReviewStored:
    """Take a review out of listings and every aggregate, saying why (admins only). With
    an Idempotency-Key, repeating the same request answers the review as it left it."""
    request = fingerprint(services.settings.secret_key, body, review_id)
    review = retry_concurrent(
        lambda: services.applications.reviews.hide_review(
            review_id,
            user.user_id,
            body.reason,
            idempotency_key=idempotency_key,
            fingerprint=request,
        )
    )
    return _stored(review)


@router.get(
    "/products/{product_id}/feedback",
    response_model=ProductFeedback,
    responses=error_responses(503),
)
async def feedback_of_product(
    product_id: UUID, request: Request, since: Since = None, until: Until = None
) -> Response:
    """What the product's published reviews praise and complain about, by aspect; with
    `from`/`to`, over the reviews written in that window (this month against the last)."""
    window = _range(since, until)
    async with request.app.state.review_reads.connection() as conn:
        figures = await product_feedback(conn, str(product_id), window)
    return Response(encode(figures), media_type=JSON)


@router.get(
    "/sellers/me/feedback",
    response_model=SellerFeedback,
    responses=error_responses(401, 403, 503),
)
async def feedback_of_my_products(
    user: Seller, request: Request, since: Since = None, until: Until = None
) -> Response:
    """The feedback over all your products, then one row per reviewed product (the 100
    most reviewed); `from`/`to` as for a product's."""
    window = _range(since, until)
    async with request.app.state.review_reads.connection() as conn:
        figures = await seller_feedback(conn, str(user.user_id), window)
    return Response(encode(figures), media_type=JSON)


@router.get(
    "/sellers/{seller_id}/rating",
    response_model=SellerRating,
    responses=error_responses(503),
)
def rating_of_seller(seller_id: UUID, db: RatingsDb) -> SellerRating:
    """The seller's service rating (`seller_rating` of counted reviews) and their
    products' rating."""
    return SellerRating.model_validate(seller_rating(db, str(seller_id)))
