"""What buyers talk about, in the reviews read model: the latest `feedback.topics_updated`
of each product and each seller (the classifier worker's topic model ran once, when the
event was stored; replays and rebuilds only copy what it found)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from eventmart.contracts import Envelope

DDL = """
CREATE TABLE IF NOT EXISTS review_topics (
    scope text NOT NULL,
    scope_id uuid NOT NULL,
    model_version text NOT NULL,
    reviews int NOT NULL,
    topics jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (scope, scope_id)
);
"""
# What the API shows of a topic (its language is the label's and terms' own).
SHOWN = ("label", "terms", "reviews", "sentiment", "example_review_ids")


def topics_updated(cursor: psycopg.Cursor[Any], event: Envelope) -> None:
    """The newest refresh wins; an older or repeated one changes nothing."""
    p = event.payload
    cursor.execute(
        "INSERT INTO review_topics "
        "(scope, scope_id, model_version, reviews, topics, updated_at, version) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (scope, scope_id) DO UPDATE SET "
        "model_version = EXCLUDED.model_version, reviews = EXCLUDED.reviews, "
        "topics = EXCLUDED.topics, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version "
        "WHERE review_topics.version < EXCLUDED.version",
        (
            p["scope"],
            p["scope_id"],
            p["model_version"],
            p["reviews"],
            Jsonb(p["topics"]),
            event.occurred_at,
            event.aggregate_version,
        ),
    )


async def topics_of(
    conn: psycopg.AsyncConnection[Any], scope: str, scope_id: str
) -> list[dict[str, Any]]:
    """The scope's topics as the API shows them; none before the first refresh."""
    found = await conn.execute(
        "SELECT topics FROM review_topics WHERE scope = %s AND scope_id = %s", (scope, scope_id)
    )
    row = await found.fetchone()
    return [{key: topic[key] for key in SHOWN} for topic in (row[0] if row else [])]
