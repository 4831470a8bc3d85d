"""The reviews read model (the `reviews-projection` group, in the reviews database): what
review listings and the feedback figures answer from.

One row per review, changed by its events in their order (a version guard drops anything
older than the row). Withdrawn and hidden reviews keep their row with their status, and
leave every listing and figure. The classifier's labels come from `review.classified`
events: the latest one wins, so a reclassification by a new model replaces the labels.
Topics (projections.review_topics) come from `feedback.topics_updated` and are the
latest refresh's, whatever the window asked for. An erased author (`user.erased` on
`users.events`) is shown as "Deleted user" on every review of theirs, their rating and
text kept; the erasure is remembered (`erased_authors`), so a review of theirs that
arrives after it, from the other topic, is shown so too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from domain.errors import InvalidInput
from eventmart.contracts import Envelope
from eventmart.personal_data import ERASED
from projections import review_topics
from projections.cursors import Cursors, InvalidCursor
from projections.tracking import Handler

GROUP = "reviews-projection"
TOPICS = ["reviews.events", "users.events"]
DELETED_USER = "Deleted user"  # API.md: an erased author's reviews show this name
TOP_TERMS = 10

DDL = (
    """
CREATE TABLE IF NOT EXISTS reviews_view (
    review_id uuid PRIMARY KEY,
    product_id uuid NOT NULL,
    seller_id uuid NOT NULL,
    author_id uuid NOT NULL,
    author_name text NOT NULL,
    rating smallint NOT NULL,
    seller_rating smallint,
    title text,
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    edited_at timestamptz,
    status text NOT NULL DEFAULT 'published',
    hidden_reason text,
    helpful_count int NOT NULL DEFAULT 0,
    reply_body text,
    replied_at timestamptz,
    lang text,
    aspects text[],
    sentiment text,
    model_version text,
    classified_at timestamptz,
    terms_positive text[] NOT NULL DEFAULT '{}',
    terms_negative text[] NOT NULL DEFAULT '{}',
    version bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_view_newest
    ON reviews_view (product_id, created_at DESC, review_id DESC) WHERE status = 'published';
CREATE INDEX IF NOT EXISTS reviews_view_helpful
    ON reviews_view (product_id, helpful_count DESC, review_id DESC) WHERE status = 'published';
CREATE INDEX IF NOT EXISTS reviews_view_seller ON reviews_view (seller_id, product_id);
CREATE INDEX IF NOT EXISTS reviews_view_author ON reviews_view (author_id);
CREATE TABLE IF NOT EXISTS erased_authors (
    user_id uuid PRIMARY KEY,
    erased_at timestamptz NOT NULL
);
"""
    + review_topics.DDL
)


def _later(cursor: psycopg.Cursor[Any], event: Envelope, assignments: str, *values: Any) -> None:
    """Change the review's row unless it already shows this event or a later one."""
    cursor.execute(
        f"UPDATE reviews_view SET {assignments}, version = %s "
        "WHERE review_id = %s AND version < %s",
        (*values, event.aggregate_version, event.payload["review_id"], event.aggregate_version),
    )


def shown_name(author_name: str) -> str:
    """What a review shows of its author: their name, or DELETED_USER once their key is gone."""
    return DELETED_USER if author_name == ERASED else author_name


def review_submitted(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    p = event.payload
    cursor.execute(
        "INSERT INTO reviews_view (review_id, product_id, seller_id, author_id, author_name, "
        "rating, seller_rating, title, body, created_at, version) "
        "VALUES (%s, %s, %s, %s, "
        "COALESCE((SELECT %s::text FROM erased_authors WHERE user_id = %s::uuid), %s), "
        "%s, %s, %s, %s, %s, %s) ON CONFLICT (review_id) DO NOTHING",
        (
            p["review_id"],
            p["product_id"],
            p["seller_id"],
            p["author_id"],
            DELETED_USER,
            p["author_id"],
            shown_name(p["author_name"]),
            p["rating"],
            p["seller_rating"],
            p["title"],
            p["body"],
            event.occurred_at,
            event.aggregate_version,
        ),
    )


def review_edited(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    p = event.payload
    _later(
        cursor,
        event,
        "rating = %s, seller_rating = %s, title = %s, body = %s, edited_at = %s",
        p["rating"],
        p["seller_rating"],
        p["title"],
        p["body"],
        event.occurred_at,
    )


def review_withdrawn(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    _later(cursor, event, "status = 'withdrawn'")


def review_hidden(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    _later(cursor, event, "status = 'hidden', hidden_reason = %s", event.payload["reason"])


def review_replied(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    _later(
        cursor, event, "reply_body = %s, replied_at = %s", event.payload["body"], event.occurred_at
    )


def review_marked_helpful(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    _later(cursor, event, "helpful_count = helpful_count + 1")


def review_classified(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    p = event.payload
    _later(
        cursor,
        event,
        "lang = %s, aspects = %s, sentiment = %s, model_version = %s, classified_at = %s, "
        "terms_positive = %s, terms_negative = %s",
        p["lang"],
        p["aspects"],
        p["sentiment"],
        p["model_version"],
        event.occurred_at,
        p["terms"]["positive"],
        p["terms"]["negative"],
    )


def user_erased(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    user_id = event.payload["user_id"]
    cursor.execute(
        "INSERT INTO erased_authors (user_id, erased_at) VALUES (%s, %s) "
        "ON CONFLICT (user_id) DO NOTHING",
        (user_id, event.occurred_at),
    )
    cursor.execute(
        "UPDATE reviews_view SET author_name = %s WHERE author_id = %s", (DELETED_USER, user_id)
    )


HANDLERS: dict[str, Handler] = {
    "user.erased": user_erased,
    "review.submitted": review_submitted,
    "review.edited": review_edited,
    "review.withdrawn": review_withdrawn,
    "review.hidden": review_hidden,
    "review.replied": review_replied,
    "review.marked_helpful": review_marked_helpful,
    "review.classified": review_classified,
    "feedback.topics_updated": review_topics.topics_updated,
}

SORTS = ("newest", "helpful", "rating", "-rating")
# sort -> (key, direction, how a cursor's key is cast back). `rating` is lowest first and
# `-rating` highest first, as `price` and `-price` are; ties go newest first by id.
ORDERINGS: dict[str, tuple[str, str, str]] = {
    "newest": ("created_at", "DESC", "timestamptz"),
    "helpful": ("helpful_count", "DESC", "int"),
    "rating": ("rating", "ASC", "smallint"),
    "-rating": ("rating", "DESC", "smallint"),
}
LISTED = (
    "review_id",
    "product_id",
    "author_name",
    "rating",
    "seller_rating",
    "title",
    "body",
    "created_at",
    "edited_at",
    "helpful_count",
    "aspects",
    "sentiment",
    "reply_body",
    "replied_at",
)


def _listed(row: tuple[Any, ...]) -> dict[str, Any]:
    """A listed review; `aspects` and `sentiment` are absent until the classifier has read
    it (API.md)."""
    r = dict(zip(LISTED, row, strict=True))
    labels = (
        {"aspects": r["aspects"], "sentiment": r["sentiment"]} if r["sentiment"] is not None else {}
    )
    return {
        "review_id": r["review_id"],
        "product_id": r["product_id"],
        "author": {"display_name": r["author_name"]},
        "rating": r["rating"],
        "seller_rating": r["seller_rating"],
        "title": r["title"],
        "body": r["body"],
        "created_at": r["created_at"],
        "edited_at": r["edited_at"],
        "verified_purchase": True,  # only verified buyers may review (domain.reviews)
        "helpful_count": r["helpful_count"],
        **labels,
        "seller_reply": (
            {"body": r["reply_body"], "replied_at": r["replied_at"]}
            if r["reply_body"] is not None
            else None
        ),
    }


async def list_reviews(
    conn: psycopg.AsyncConnection[Any],
    product_id: str,
    *,
    sort: str = "newest",
    rating: int | None = None,
    aspect: str | None = None,
    sentiment: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    cursors: Cursors,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a product's published reviews and the next page's cursor."""
    if sort not in ORDERINGS:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
    key, direction, cast = ORDERINGS[sort]
    where = ["product_id = %s", "status = 'published'"]
    params: list[Any] = [product_id]
    if rating is not None:
        where.append("rating = %s")
        params.append(rating)
    if aspect is not None:
        where.append("%s = ANY(aspects)")
        params.append(aspect)
    if sentiment is not None:
        where.append("sentiment = %s")
        params.append(sentiment)
    kind = f"reviews:{sort}"
    if cursor is not None:
        last_key, last_id, of_product = cursors.decode(cursor, kind)
        if str(of_product) != product_id:
            raise InvalidCursor("the cursor is not one this list handed out")
        compare = ">" if direction == "ASC" else "<"
        # Ties broken by id in the key's direction, as ORDER BY below.
        where.append(f"({key}, review_id) {compare} (%s::{cast}, %s::uuid)")
        params.extend([last_key, last_id])
    query = (
        f"SELECT {', '.join(LISTED)}, {key} FROM reviews_view WHERE {' AND '.join(where)} "
        f"ORDER BY {key} {direction}, review_id {direction} LIMIT %s"
    )
    rows = await (await conn.execute(query, [*params, limit + 1])).fetchall()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = cursors.encode(kind, (page[-1][-1], page[-1][0], product_id))
    return [_listed(row[:-1]) for row in page], next_cursor


def review_exists(conn: psycopg.Connection[Any], review_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM reviews_view WHERE review_id = %s", (review_id,)).fetchone()
        is not None
    )


# Feedback: the classifier's labels over published reviews, counted when asked.

_SENTIMENT_COUNTS = (
    "SELECT count(*), count(*) FILTER (WHERE sentiment = 'positive'), "
    "count(*) FILTER (WHERE sentiment = 'neutral'), "
    "count(*) FILTER (WHERE sentiment = 'negative') FROM reviews_view WHERE {where}"
)
_ASPECT_COUNTS = (
    "SELECT aspect, sentiment, count(*) FROM reviews_view, unnest(aspects) AS aspect "
    "WHERE {where} AND sentiment IS NOT NULL GROUP BY aspect, sentiment"
)
_TOP_TERMS = (
    "SELECT term, count(*) AS uses FROM reviews_view, unnest({column}) AS term "
    "WHERE {where} GROUP BY term ORDER BY uses DESC, term LIMIT %(top)s"
)
ASPECTS = ("quality", "shipping", "price", "service")


Window = tuple[datetime | None, datetime | None]  # reviews written in [from, to)


async def _feedback(
    conn: psycopg.AsyncConnection[Any],
    where: str,
    params: dict[str, Any],
    window: Window = (None, None),
) -> dict[str, Any]:
    where = f"{where} AND status = 'published'"
    since, until = window
    if since is not None:
        where += " AND created_at >= %(since)s"
    if until is not None:
        where += " AND created_at < %(until)s"
    params = {**params, "since": since, "until": until}
    counts = await conn.execute(_SENTIMENT_COUNTS.format(where=where), params)
    total, positive, neutral, negative = await counts.fetchone() or (0, 0, 0, 0)
    aspects = {aspect: {"positive": 0, "neutral": 0, "negative": 0} for aspect in ASPECTS}
    by_aspect = await conn.execute(_ASPECT_COUNTS.format(where=where), params)
    for aspect, sentiment, count in await by_aspect.fetchall():
        if aspect in aspects and sentiment in aspects[aspect]:
            aspects[aspect][sentiment] = count
    terms: dict[str, list[str]] = {}
    for polarity in ("positive", "negative"):
        top = await conn.execute(
            _TOP_TERMS.format(column=f"terms_{polarity}", where=where),
            {**params, "top": TOP_TERMS},
        )
        terms[polarity] = [term for term, _ in await top.fetchall()]
    return {
        "reviews": total,
        "sentiment": {"positive": positive, "neutral": neutral, "negative": negative},
        "aspects": aspects,
        "top_terms": terms,
    }


async def product_feedback(
    conn: psycopg.AsyncConnection[Any], product_id: str, window: Window = (None, None)
) -> dict[str, Any]:
    figures = await _feedback(conn, "product_id = %(product)s", {"product": product_id}, window)
    topics = await review_topics.topics_of(conn, "product", product_id)
    return {"product_id": product_id, **figures, "topics": topics}


MAX_SELLER_PRODUCTS = 100  # rows of a seller's feedback, most reviewed products first


async def seller_feedback(
    conn: psycopg.AsyncConnection[Any], seller_id: str, window: Window = (None, None)
) -> dict[str, Any]:
    """Over all the seller's products, then one row per product (the most reviewed)."""
    overall = await _feedback(conn, "seller_id = %(seller)s", {"seller": seller_id}, window)
    overall["topics"] = await review_topics.topics_of(conn, "seller", seller_id)
    reviewed = await conn.execute(
        "SELECT product_id FROM reviews_view WHERE seller_id = %s AND status = 'published' "
        "GROUP BY product_id ORDER BY count(*) DESC, product_id LIMIT %s",
        (seller_id, MAX_SELLER_PRODUCTS),
    )
    products = [str(row[0]) for row in await reviewed.fetchall()]
    return {
        "seller_id": seller_id,
        **overall,
        "products": [await product_feedback(conn, product, window) for product in products],
    }
