"""Topic refresh, a timer of the review classifier's group: finds the products and sellers
whose published, classified reviews changed since their topics were last found, runs the
topic model (eventmart.ml.topics) over them and stores what it finds as
`feedback.topics_updated` with the model's version. Replays and rebuilds read those events;
they never rerun the model.

It reads the reviews context's own read model (reviews_view, in the same database): the
reviews and the classifier's labels as the reviews projection has them. A scope's corpus
digest (its reviews and their labels) is stored with each refresh, so a scope whose
reviews did not change is never refreshed twice, after a restart neither."""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from eventmart.ml.topics import MAX_DOCUMENTS, MIN_REVIEWS, Document, find_topics
from eventmart.ml.topics import topic_model_version as model_version
from workers.saga import Context

log = logging.getLogger("eventmart.review_topics")
REFRESH_SECONDS = 2.0  # at most this often; each look is one grouped query per scope
SCOPE_COLUMNS = {"product": "product_id", "seller": "seller_id"}
_PUBLISHED = "status = 'published' AND sentiment IS NOT NULL"
DIGESTS = (
    "SELECT {column}, count(*), md5(string_agg(review_id::text || ':' || sentiment || ':' || "
    "classified_at::text, ',' ORDER BY review_id)) FROM reviews_view "
    f"WHERE {_PUBLISHED} GROUP BY {{column}}"
)
CORPUS = (
    "SELECT review_id, title, body, sentiment FROM reviews_view "
    f"WHERE {{column}} = %s AND {_PUBLISHED} ORDER BY created_at DESC, review_id LIMIT %s"
)


def refresh_topics(ctx: Context) -> int:
    """How many scopes got new topics."""
    now = time.monotonic()
    if now - ctx.memory.get("topics_looked_at", float("-inf")) < REFRESH_SECONDS:
        return 0
    ctx.memory["topics_looked_at"] = now
    known: dict[tuple[str, str], str] = ctx.memory.setdefault("topics_corpus", {})
    version = model_version()
    refreshed = 0
    with ctx.pool.connection() as conn:
        for scope, column in SCOPE_COLUMNS.items():
            for scope_id, count, corpus in conn.execute(DIGESTS.format(column=column)).fetchall():
                key = (scope, str(scope_id))
                if known.get(key) == corpus:
                    continue
                read = ctx.application.topics_read(scope, scope_id)
                if read == (version, corpus) or (read is None and count < MIN_REVIEWS):
                    known[key] = corpus
                    continue
                rows = conn.execute(
                    CORPUS.format(column=column), (scope_id, 2 * MAX_DOCUMENTS)
                ).fetchall()
                refreshed += _record(ctx, scope, scope_id, version, corpus, rows)
                known[key] = corpus
    return refreshed


def _record(
    ctx: Context, scope: str, scope_id: UUID, version: str, corpus: str, rows: list[Any]
) -> int:
    documents = [
        Document(str(review_id), f"{title}\n{body}" if title else body, sentiment)
        for review_id, title, body, sentiment in rows
    ]
    topics = [topic.as_payload() for topic in find_topics(documents)]
    try:
        stored = ctx.application.record_topics(
            scope, scope_id, version, corpus, len(documents), topics
        )
    except IntegrityError:  # another replica refreshed it meanwhile
        log.info("topics of %s %s refreshed elsewhere meanwhile", scope, scope_id)
        return 0
    return int(stored)
