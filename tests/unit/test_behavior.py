"""The behaviour stream's pieces without I/O: envelopes keyed by visitor with ids that a
retry keeps, bounded memories, and when the recommender worker retrains."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api import behavior
from api.behavior import KnownProducts, RecentCategories, behavior_envelope
from api.idempotency import RecentKeys
from domain.idempotency import IdempotencyKeyReused
from eventmart.contracts import CONTRACTS, parse
from eventmart.contracts.behavior import visitor_id
from eventmart.ml.event_log import read_events
from eventmart.settings import Settings
from projections.tracking import Delivery
from workers.recommender import Retrainer

PRODUCT = uuid.uuid4()


def view(session_id: str | None = "s-1", user_id: uuid.UUID | None = None, key: str | None = None):
    return behavior_envelope(
        "behavior.viewed",
        {"product_id": PRODUCT, "source": "search"},
        user_id=user_id,
        session_id=session_id,
        idempotency_key=key,
    )


def test_a_view_is_keyed_by_its_visitor_and_parses_as_its_contract():
    user = uuid.uuid4()
    assert view(user_id=user, session_id=None).aggregate_id == user
    anonymous = view("s-1")
    assert anonymous.aggregate_id == visitor_id(None, "s-1") != visitor_id(None, "s-2")
    assert parse(anonymous.to_bytes()).payload["session_id"] == "s-1"


def test_an_idempotency_key_makes_the_same_event_id_for_the_same_visitor_only():
    assert view(key="k").event_id == view(key="k").event_id
    assert view(key="k").event_id != view("s-2", key="k").event_id
    assert view().event_id != view().event_id


@pytest.mark.parametrize("session_id", [None, "", "x" * 129, "two words", "tab\t"])
def test_an_anonymous_view_needs_a_well_formed_session(session_id: str | None):
    with pytest.raises((ValidationError, ValueError)):
        view(session_id)


def test_memories_are_bounded_and_keep_the_latest():
    recent = RecentCategories(max_visitors=2, per_visitor=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for category in ("garden", "kitchen", "garden", "toys"):
        recent.viewed(a, category)
    assert recent.of(a) == ["toys", "garden"]
    recent.viewed(b, "books")
    recent.viewed(c, "books")
    assert recent.of(a) == [] and recent.of(c) == ["books"]
    known = KnownProducts(max_entries=1)
    known.add([(a, "x"), (b, "y")])
    assert known.get(a) is None and known.get(b) == "y"


def deliveries(types: list[str]) -> list[Delivery]:
    """What the worker counts by: the envelopes' types (each its contract's example)."""
    envelopes = [parse(CONTRACTS[kind].example) for kind in types]
    return [Delivery("t", 0, n, envelope) for n, envelope in enumerate(envelopes)]


def test_the_worker_retrains_after_n_interactions_or_when_its_model_is_old(tmp_path: Path):
    settings = Settings(
        state_dir=tmp_path,
        recommender_retrain_interactions=3,
        recommender_retrain_seconds=60,
        recommender_training_nice=0,  # this is the test runner's thread
    )
    retrainer = Retrainer(settings)
    retrainer.have_model = True
    trained: list[int] = []
    retrainer.retrain = lambda: trained.append(retrainer.new_interactions) or object()  # type: ignore[method-assign,func-returns-value]
    assert retrainer.count(deliveries(["behavior.viewed", "product.created"])) == 1
    assert retrainer.tick() == 0 and not trained
    retrainer.count(deliveries(["order.confirmed", "behavior.viewed"]))
    assert retrainer.tick() == 1 and trained == [3] and retrainer.new_interactions == 0
    retrainer.count(deliveries(["behavior.viewed"]))
    assert retrainer.tick() == 0
    retrainer.last_trained -= 61  # the schedule: anything new, and the model is old
    assert retrainer.tick() == 1 and trained == [3, 1]
    assert retrainer.tick() == 0  # nothing new since


def test_a_failed_training_is_not_retried_every_second(tmp_path: Path):
    retrainer = Retrainer(
        Settings(
            state_dir=tmp_path, recommender_retrain_interactions=1, recommender_training_nice=0
        )
    )

    def broker_away() -> None:
        raise ConnectionError("the broker is away")

    retrainer.retrain = broker_away  # type: ignore[assignment,method-assign]
    retrainer.count(deliveries(["behavior.viewed"]))
    with pytest.raises(ConnectionError):
        retrainer.tick()
    assert not retrainer.due() and retrainer.new_interactions == 1
    retrainer.retry_at = 0.0  # the pause is over
    assert retrainer.due()


def test_training_runs_on_a_nicer_thread_than_the_rest(tmp_path: Path):
    retrainer = Retrainer(
        Settings(
            state_dir=tmp_path, recommender_retrain_interactions=1, recommender_training_nice=7
        )
    )
    retrainer.have_model = True
    niceness: list[int] = []

    def retrain() -> object:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return object()

    retrainer.retrain = retrain  # type: ignore[method-assign]
    retrainer.count(deliveries(["behavior.viewed"]))
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    timer_thread = threading.Thread(target=retrainer.tick)
    timer_thread.start()
    timer_thread.join()
    assert niceness == [max(before, 7)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before, "only that thread"


def search(**visitor: Any):
    return behavior_envelope(
        "behavior.searched",
        {"query": "green tea", "category": None, "result_count": 3},
        user_id=visitor.get("user_id"),
        session_id=visitor.get("session_id"),
    )


def test_a_search_is_keyed_by_its_visitor_or_by_itself_when_anonymous():
    user = uuid.uuid4()
    assert search(user_id=user).aggregate_id == user
    assert search(session_id="s-1").aggregate_id == visitor_id(None, "s-1")
    anonymous = search()
    assert anonymous.aggregate_id == anonymous.event_id
    parsed = parse(anonymous.to_bytes()).payload
    assert parsed["query"] == "green tea"
    assert parsed["user_id"] is None and parsed["session_id"] is None


@pytest.mark.parametrize(
    "fields",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "tea\x00"},
        {"query": "tea\n"},
        {"query": "x" * 201},
        {"category": "tea\x1b"},
        {"result_count": -1},
        {"result_count": 101},
        {"result_count": "3"},
    ],
)
def test_a_search_out_of_bounds_is_refused(fields: dict[str, Any]):
    with pytest.raises(ValidationError):
        behavior_envelope(
            "behavior.searched",
            {"query": "tea", "category": None, "result_count": 0, **fields},
            user_id=None,
            session_id=None,
        )


def test_the_recommender_ignores_searches_and_impressions():
    user = uuid.uuid4()
    records = [
        search(user_id=user),
        behavior_envelope(
            "behavior.recommendations_shown",
            {"surface": "popular", "product_ids": [PRODUCT]},
            user_id=user,
            session_id=None,
        ),
        view(user_id=user, session_id=None),
    ]
    data = read_events(records)
    assert len(data.interactions) == 1
    assert data.counts["behavior.searched"] == 1 and data.counts["malformed"] == 0
    assert records[0].occurred_at <= datetime.now(UTC)


def test_fire_and_forget_sends_are_bounded_while_the_broker_hangs():
    async def scenario() -> tuple[int, int]:
        publisher = behavior.BehaviorPublisher(Settings())
        release = asyncio.Event()

        async def hanging(envelope: Any) -> None:
            await release.wait()

        publisher.publish = hanging  # type: ignore[method-assign]
        for _ in range(behavior.MAX_PENDING + 5):
            publisher.publish_soon(search())
        dropped = publisher.dropped
        release.set()
        await publisher.stop()
        publisher.publish_soon(search())  # drained: accepted again
        await publisher.stop()
        return dropped, publisher.dropped

    assert asyncio.run(scenario()) == (5, 5)


def test_a_view_key_stands_for_its_first_accepted_view_while_remembered():
    keys = RecentKeys(max_entries=2)
    keys.check("visitor", "k", "mug:search")  # not remembered until accepted
    keys.check("visitor", "k", "lamp:direct")
    keys.remember("visitor", "k", "mug:search")
    keys.check("visitor", "k", "mug:search")
    keys.check("another visitor", "k", "lamp:direct")
    with pytest.raises(IdempotencyKeyReused):
        keys.check("visitor", "k", "lamp:direct")
    keys.remember("visitor", "k2", "x")
    keys.remember("visitor", "k3", "y")  # the oldest, k, is forgotten
    keys.check("visitor", "k", "lamp:direct")


def test_recently_ordered_products_are_remembered_for_a_while_then_left_to_the_read_model():
    from api.recommendation_memory import RecentlyOrdered

    user, other = uuid.uuid4(), uuid.uuid4()
    recently = RecentlyOrdered(seconds=60.0, max_users=2)
    recently.add(user, [PRODUCT])
    recently.add(user, ["p-2"])
    assert recently.of(user) == {str(PRODUCT), "p-2"} and recently.of(other) == set()
    recently.seconds = -1.0  # every order is older than that
    assert recently.of(user) == set()
    recently.seconds = 60.0
    for n in range(3):
        recently.add(uuid.uuid4(), [f"p-{n}"])
    assert len(recently._orders) == 2, "bounded"
