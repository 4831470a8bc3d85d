"""A listed review carries `aspects` and `sentiment` once the classifier has read it, and
not before (API.md: absent until then)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from projections.reviews import LISTED, _listed


def row(**values: object) -> tuple[object, ...]:
    base: dict[str, object] = {
        "review_id": uuid.uuid4(),
        "product_id": uuid.uuid4(),
        "author_name": "Ann",
        "rating": 5,
        "seller_rating": None,
        "title": None,
        "body": "Great mug",
        "created_at": datetime(2026, 12, 6, tzinfo=UTC),
        "edited_at": None,
        "helpful_count": 0,
        "aspects": None,
        "sentiment": None,
        "reply_body": None,
        "replied_at": None,
    }
    base.update(values)
    return tuple(base[name] for name in LISTED)


def test_labels_are_absent_until_classified_then_present():
    unread = _listed(row())
    assert "aspects" not in unread and "sentiment" not in unread
    assert unread["body"] == "Great mug" and unread["seller_reply"] is None
    read = _listed(row(aspects=[], sentiment="positive"))
    assert read["aspects"] == [] and read["sentiment"] == "positive"
