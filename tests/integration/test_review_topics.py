"""Topics of what buyers talk about, on real Kafka and PostgreSQL: reviews with planted
themes go through the event store, the relay, the classifier worker (which labels them
and then refreshes the product's and the seller's topics as `feedback.topics_updated`)
and the reviews projection, and come back through GET feedback as one topic per theme
with the theme's sentiment."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any
from uuid import UUID, uuid4

from fastapi.testclient import TestClient

from eventmart.settings import Settings
from tests.conftest import REVIEW_GROUPS
from tests.planted_themes import planted_reviews
from tests.shop import Seller
from tests.support import read_envelopes, wait_for_groups_to_join, wait_until

THEMES = {"strap": ("negative", 1), "delivery": ("positive", 5)}  # sentiment, stars


def test_planted_themes_come_back_as_one_topic_each_with_their_sentiment(
    api: TestClient, settings: Settings, saga_workers, catalog_projection, review_workers
):
    wait_for_groups_to_join(settings.bootstrap_servers, REVIEW_GROUPS, timeout=180)
    seller = Seller(api)
    product = seller.product(stock=1)
    reviews = api.app.state.services.applications.reviews  # type: ignore[attr-defined]
    planted: dict[tuple[str, str], set[str]] = defaultdict(set)
    submissions = [
        (language, theme, text)
        for language in ("en", "zh")
        for theme, texts in planted_reviews(language).items()
        for text in texts
    ]
    random.Random(25).shuffle(submissions)
    for language, theme, text in submissions:
        # Straight into the reviews context (as the API does once a purchase is verified):
        # 160 buyers' orders through the saga would only make the test slow.
        review_id = reviews.submit_review(
            uuid4(),
            "Buyer",
            UUID(product),
            UUID(seller.user_id),
            verified_buyer=True,
            rating=THEMES.get(theme, ("neutral", 3))[1],
            body=text,
        )
        planted[(language, theme)].add(str(review_id))

    def found(path: str, **headers: str) -> dict[str, Any] | None:
        answer = api.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        feedback = answer.json()
        return feedback if _themes_found(feedback["topics"], planted) else None

    feedback = wait_until(
        lambda: found(f"/v1/products/{product}/feedback"),
        timeout=240,
        interval=0.5,
        message="each planted theme to come back as one topic",
    )
    assert feedback["reviews"] == len(submissions)
    assert len(feedback["topics"]) <= 8
    labels = {
        key: next(t for t in feedback["topics"] if set(t["example_review_ids"]) <= ids)["label"]
        for key, ids in planted.items()
        if key[1] in THEMES
    }
    assert "strap" in labels[("en", "strap")] and "表带" in labels[("zh", "strap")]
    assert "delivery" in labels[("en", "delivery")] or "fast" in labels[("en", "delivery")]

    # The seller's feedback over all its products (here the one) has its own topics.
    mine = wait_until(
        lambda: found("/v1/sellers/me/feedback", **seller.headers),
        timeout=120,
        interval=0.5,
        message="the seller's topics",
    )
    assert mine["products"][0]["topics"] == feedback["topics"]

    # The events carry the topic model's version: replays read them, never rerun it.
    updates = [
        e
        for e in read_envelopes(settings.bootstrap_servers, "reviews.events")
        if e.type == "feedback.topics_updated" and e.payload["scope_id"] == product
    ]
    assert updates and all(e.payload["model_version"].startswith("topics-") for e in updates)


def _themes_found(topics: list[dict[str, Any]], planted: dict[tuple[str, str], set[str]]) -> bool:
    """Each planted theme is one topic: its examples all from the theme, at least 27 of
    its 30 reviews in it (a noise review or two may join), most of them of the theme's
    sentiment; and no other topic shows the theme's reviews."""
    for (language, theme), ids in planted.items():
        if theme not in THEMES:
            continue
        showing = [t for t in topics if set(t["example_review_ids"]) & ids]
        if len(showing) != 1:
            return False
        topic = showing[0]
        sentiment = THEMES[theme][0]
        if not set(topic["example_review_ids"]) <= ids or not 27 <= topic["reviews"] <= 33:
            return False
        if topic["sentiment"][sentiment] < 0.8 * topic["reviews"]:
            return False
    return True
