"""Catalogue searches on the behaviour stream: the first page of a `q` search lands on
`behavior.events` as `behavior.searched` with its words, keyed by the signed-in user, the
anonymous session, or nobody (a token that does not verify only makes it anonymous);
browsing without `q`, and page turns, publish nothing."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from eventmart.contracts.behavior import visitor_id
from eventmart.settings import Settings
from tests.shop import Customer
from tests.support import read_envelopes, wait_until


def searches(settings: Settings, word: str) -> list[dict[str, Any]]:
    return [
        {"key": str(e.aggregate_id), "event_id": str(e.event_id), **e.payload}
        for e in read_envelopes(settings.bootstrap_servers, "behavior.events")
        if e.type == "behavior.searched" and word in e.payload["query"]
    ]


def test_searches_land_on_the_behaviour_topic_with_their_query(api: TestClient, settings: Settings):
    customer = Customer(api)
    word = f"tea{uuid.uuid4().hex[:12]}"
    session = f"s-{uuid.uuid4().hex}"
    asked = [
        customer.get("/v1/products", q=f"{word} user", category="tea"),
        api.get("/v1/products", params={"q": f"{word} session", "session_id": session}),
        api.get("/v1/products", params={"q": f"{word} nobody"}),
        api.get(
            "/v1/products",
            params={"q": f"{word} stale"},
            headers={"Authorization": "Bearer nonsense"},
        ),
    ]
    for answer in asked:
        assert answer.status_code == 200, answer.text
    # Not searches: browsing, a blank query, a page turn, a bad session (422).
    assert api.get("/v1/products", params={"category": word}).status_code == 200
    assert api.get("/v1/products", params={"q": "  "}).status_code == 200
    bad = api.get("/v1/products", params={"q": f"{word} bad", "session_id": "bad id"})
    assert bad.status_code == 422, bad.text

    def all_four() -> list[dict[str, Any]] | None:
        found = searches(settings, word)
        return found if len(found) >= 4 else None

    found = wait_until(all_four, timeout=20, message="the four searches on behavior.events")
    by_query = {s["query"].split()[1]: s for s in found}
    assert sorted(by_query) == ["nobody", "session", "stale", "user"], found
    mine = by_query["user"]
    assert mine["user_id"] == customer.user_id == mine["key"]
    assert mine["category"] == "tea" and mine["result_count"] == 0
    theirs = by_query["session"]
    assert theirs["session_id"] == session and theirs["user_id"] is None
    assert theirs["key"] == str(visitor_id(None, session))
    for anonymous in (by_query["nobody"], by_query["stale"]):
        assert anonymous["user_id"] is None and anonymous["session_id"] is None
        assert anonymous["key"] == anonymous["event_id"]
