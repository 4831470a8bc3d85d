"""Product and seller ratings from `reviews.events`, kept in the catalogue's database (the
`ratings-projection` group), so the product views and `sort=rating` read them in the same
query as the products.

`review_ratings` holds each review's stars and whether it counts (withdrawn and hidden
reviews do not); `product_ratings` is each product's count, sum and histogram over the
counted reviews, recounted from `review_ratings` whenever one of its reviews changes, so
an edit moves a review between buckets and nothing is ever added twice.

The Bayesian average pulls a product with few reviews towards the catalogue-wide mean:
(C * m + sum) / (C + count), with m the mean of every counted review in the catalogue and
C = PRIOR_WEIGHT reviews (docs/reviews.md). It is computed when read, so a change of m
needs no rewrite of every product.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from eventmart.contracts import Envelope
from projections.tracking import Handler

GROUP = "ratings-projection"
TOPICS = ["reviews.events"]
PRIOR_WEIGHT = 5  # C: how many reviews at the catalogue's mean every product starts with
STARS = (1, 2, 3, 4, 5)

DDL = """
CREATE TABLE IF NOT EXISTS review_ratings (
    review_id uuid PRIMARY KEY,
    product_id uuid NOT NULL,
    seller_id uuid NOT NULL,
    rating smallint NOT NULL,
    seller_rating smallint,
    counted boolean NOT NULL DEFAULT true,
    version bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS review_ratings_product ON review_ratings (product_id) WHERE counted;
CREATE INDEX IF NOT EXISTS review_ratings_seller ON review_ratings (seller_id) WHERE counted;
CREATE TABLE IF NOT EXISTS product_ratings (
    product_id uuid PRIMARY KEY,
    review_count int NOT NULL,
    stars_sum bigint NOT NULL,
    histogram int[] NOT NULL
);
CREATE OR REPLACE FUNCTION public.product_ratings_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_SCHEMA = 'public' THEN
        PERFORM pg_notify(TG_TABLE_NAME,
                          CASE WHEN TG_OP = 'DELETE' THEN OLD.product_id ELSE NEW.product_id END::text);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER product_ratings_changed AFTER INSERT OR UPDATE OR DELETE
    ON product_ratings FOR EACH ROW EXECUTE FUNCTION public.product_ratings_changed();
"""
# Like products_view's, every change of a product's rating is announced on the channel
# named after the table, for the API's product-detail cache (api.product_cache).
CHANGES_CHANNEL = "product_ratings"

_RECOUNT = """
INSERT INTO product_ratings (product_id, review_count, stars_sum, histogram)
SELECT p.product_id, count(r.rating), coalesce(sum(r.rating), 0),
       ARRAY[count(*) FILTER (WHERE r.rating = 1), count(*) FILTER (WHERE r.rating = 2),
             count(*) FILTER (WHERE r.rating = 3), count(*) FILTER (WHERE r.rating = 4),
             count(*) FILTER (WHERE r.rating = 5)]
FROM ({product}) AS p(product_id)
LEFT JOIN review_ratings r ON r.product_id = p.product_id AND r.counted
WHERE p.product_id IS NOT NULL
GROUP BY p.product_id
ON CONFLICT (product_id) DO UPDATE SET review_count = EXCLUDED.review_count,
    stars_sum = EXCLUDED.stars_sum, histogram = EXCLUDED.histogram
"""
RECOUNT_PRODUCT = _RECOUNT.format(product="SELECT %s::uuid")
RECOUNT_PRODUCT_OF_REVIEW = _RECOUNT.format(
    product="SELECT product_id FROM review_ratings WHERE review_id = %s"
)
# Replicas of the group apply different partitions, whose reviews may be of one product:
# each recount waits for the other's transaction on that product, then reads afresh (READ
# COMMITTED takes a snapshot per statement), so no recount overwrites a newer one.
LOCK_PRODUCT = "SELECT pg_advisory_xact_lock(7014, hashtext(%s::text))"
LOCK_PRODUCT_OF_REVIEW = (
    "SELECT pg_advisory_xact_lock(7014, hashtext(product_id::text)) "
    "FROM review_ratings WHERE review_id = %s"
)


def review_submitted(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    p = event.payload
    cursor.execute(
        "INSERT INTO review_ratings (review_id, product_id, seller_id, rating, seller_rating, "
        "version) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (review_id) DO NOTHING",
        (
            p["review_id"],
            p["product_id"],
            p["seller_id"],
            p["rating"],
            p["seller_rating"],
            event.aggregate_version,
        ),
    )
    cursor.execute(LOCK_PRODUCT, (p["product_id"],))
    cursor.execute(RECOUNT_PRODUCT, (p["product_id"],))


def review_edited(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    p = event.payload
    cursor.execute(
        "UPDATE review_ratings SET rating = %s, seller_rating = %s, version = %s "
        "WHERE review_id = %s AND version < %s",
        (
            p["rating"],
            p["seller_rating"],
            event.aggregate_version,
            p["review_id"],
            event.aggregate_version,
        ),
    )
    cursor.execute(LOCK_PRODUCT_OF_REVIEW, (p["review_id"],))
    cursor.execute(RECOUNT_PRODUCT_OF_REVIEW, (p["review_id"],))


def review_left(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """Withdrawn or hidden: out of every aggregate for good."""
    review_id = event.payload["review_id"]
    cursor.execute(
        "UPDATE review_ratings SET counted = false, version = %s "
        "WHERE review_id = %s AND version < %s",
        (event.aggregate_version, review_id, event.aggregate_version),
    )
    cursor.execute(LOCK_PRODUCT_OF_REVIEW, (review_id,))
    cursor.execute(RECOUNT_PRODUCT_OF_REVIEW, (review_id,))


HANDLERS: dict[str, Handler] = {
    "review.submitted": review_submitted,
    "review.edited": review_edited,
    "review.withdrawn": review_left,
    "review.hidden": review_left,
}

# For the catalogue's queries (projections.catalog): the catalogue-wide mean, and each
# product's figures beside its row.
PRIOR = (
    "CROSS JOIN (SELECT sum(stars_sum)::numeric / nullif(sum(review_count), 0) AS prior_mean "
    "FROM product_ratings) AS prior"
)
JOIN = "LEFT JOIN product_ratings USING (product_id) " + PRIOR
BAYESIAN = (
    f"CASE WHEN coalesce(review_count, 0) = 0 THEN NULL ELSE round(({PRIOR_WEIGHT} * "
    f"prior_mean + stars_sum) / ({PRIOR_WEIGHT} + review_count), 6) END"
)
COLUMNS = ("review_count", "stars_sum", "histogram", BAYESIAN)


def rating_view(
    count: int | None, stars: int | None, histogram: list[int] | None, bayesian: Decimal | None
) -> dict[str, Any]:
    """A product's `rating` as API.md shows it: no reviews, no averages."""
    count = count or 0
    return {
        "average": round(stars / count, 4) if count and stars is not None else None,
        "count": count,
        "bayesian_average": float(bayesian) if bayesian is not None else None,
        "histogram": {str(star): (histogram or [0] * 5)[star - 1] for star in STARS},
    }


def seller_rating(conn: psycopg.Connection[Any], seller_id: str) -> dict[str, Any]:
    """The seller's service (`seller_rating`) and their products' ratings, counted reviews
    only; the Bayesian prior is the mean seller rating across the platform."""
    row = conn.execute(
        "SELECT avg(seller_rating) FILTER (WHERE seller_id = %(s)s), "
        "count(seller_rating) FILTER (WHERE seller_id = %(s)s), "
        "sum(seller_rating) FILTER (WHERE seller_id = %(s)s), "
        "avg(seller_rating), avg(rating) FILTER (WHERE seller_id = %(s)s), "
        "count(*) FILTER (WHERE seller_id = %(s)s) FROM review_ratings WHERE counted",
        {"s": seller_id},
    ).fetchone()
    assert row is not None
    average, count, total, prior, product_average, product_count = row
    bayesian = None
    if count:
        bayesian = round((PRIOR_WEIGHT * float(prior) + total) / (PRIOR_WEIGHT + count), 4)
    return {
        "seller_id": seller_id,
        "average": round(float(average), 4) if average is not None else None,
        "count": count,
        "bayesian_average": bayesian,
        "product_rating": {
            "average": round(float(product_average), 4) if product_average is not None else None,
            "count": product_count,
        },
    }
