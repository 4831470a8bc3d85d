"""Incremental training: an updated model learns new users and items, its state survives a
restart whole, a follower of the log turns later confirmations into purchases, and on the
Online Retail sample fed in time order it ranks within 5% of a full training."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eventmart.ml import store
from eventmart.ml.evaluation import evaluate_serving, time_split
from eventmart.ml.event_log import follow_events
from eventmart.ml.incremental import IncrementalModel, UpdateParams
from eventmart.ml.interactions import Interaction, Item, interactions_frame
from eventmart.ml.recommender import HybridParams, train
from eventmart.ml.synthetic import planted_log

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "datasets" / "online-retail-sample.csv.gz"
QUICK = HybridParams(epochs=5, components=8)
NOON = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, pd.DataFrame]:
    return planted_log(users=80, items=40, groups=4, per_user=10, seed=1)


def started(planted: tuple[pd.DataFrame, pd.DataFrame]) -> IncrementalModel:
    interactions, items = planted
    return IncrementalModel.from_trained(
        train(interactions, items, params=QUICK), updates=UpdateParams(epochs=3, replay=2)
    )


def test_taking_over_a_full_training_changes_no_score(planted):
    interactions, items = planted
    trained = train(interactions, items, params=QUICK)
    before = trained.to_serving()
    after = IncrementalModel.from_trained(trained).to_serving()
    assert after.item_ids == before.item_ids and after.user_ids == before.user_ids
    user = before.user_ids[0]
    assert [r.item_id for r in after.recommend(user)] == [r.item_id for r in before.recommend(user)]
    np.testing.assert_allclose(after.item_embeddings, before.item_embeddings, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(after.history_items, before.history_items)
    np.testing.assert_array_equal(after.item_popularity, before.item_popularity)


def test_an_update_adds_new_users_and_items_and_makes_a_new_version(planted):
    model = started(planted)
    version, users, items = model.version, len(model.user_ids), len(model.item_ids)
    new = interactions_frame(
        [
            Interaction.purchase("newcomer", "item-00001", NOON),
            Interaction.view("newcomer", "brand-new", NOON),
        ]
    )
    learnt = model.update(new, [Item("brand-new", "red mug style1", category="category-1")])
    assert learnt >= 2 and model.version != version
    assert len(model.user_ids) == users + 1 and len(model.item_ids) == items + 1
    serving = model.to_serving()
    assert serving.knows_user("newcomer") and serving.knows_item("brand-new")
    shown = serving.recommend("newcomer", 5, exclude={"item-00001", "brand-new"})
    assert len(shown) == 5 and shown[0].reason.startswith("because you")
    # The new item got its content features in the full training's vocabulary.
    row = model.item_content[model.item_index["brand-new"]]
    assert row.nnz >= 1
    assert serving.item_popularity[serving.item_ids.index("brand-new")] == 1


def test_the_state_survives_a_restart_and_keeps_learning(planted, tmp_path: Path):
    model = started(planted)
    model.seen = {"behavior.events:0": 41}
    model.pending_orders = {"order-1": ("user-00001", ["item-00002"])}
    store.save_state(model, tmp_path)
    restored = store.load_state(tmp_path)
    assert restored is not None
    assert restored.version == model.version and restored.seen == model.seen
    assert restored.pending_orders == model.pending_orders
    user = model.user_ids[3]
    assert [r.item_id for r in restored.to_serving().recommend(user)] == [
        r.item_id for r in model.to_serving().recommend(user)
    ]
    restored.update(interactions_frame([Interaction.view("user-00003", "item-00004", NOON)]))
    store.save_state(restored, tmp_path)
    assert [p.name for p in tmp_path.glob("state-*")] == [f"state-{restored.version}"]
    assert store.load_state(tmp_path).version == restored.version  # type: ignore[union-attr]


def envelope(kind: str, offset: int, payload: dict, topic: str = "orders.events") -> dict:
    return {
        "event_id": f"e-{topic}-{offset}",
        "type": kind,
        "aggregate_id": "a",
        "aggregate_version": 1,
        "occurred_at": (NOON + timedelta(minutes=offset)).isoformat(),
        "payload": payload,
        "topic": topic,
        "partition": 0,
        "offset": offset,
    }


def test_following_the_log_turns_a_later_confirmation_into_purchases_once():
    seen: dict[str, int] = {"orders.events:0": 1}
    pending: dict[str, tuple[str, list[str]]] = {}
    placed = {"order_id": "o1", "buyer_id": "ann", "lines": [{"product_id": "mug"}]}
    rejected = {"order_id": "o2", "buyer_id": "bob", "lines": [{"product_id": "pot"}]}
    first = [
        envelope("order.placed", 0, {**placed, "order_id": "old"}),  # before seen: learnt
        envelope("order.placed", 1, placed),
        envelope("order.placed", 2, rejected),
        envelope("order.rejected", 3, {"order_id": "o2"}),
    ]
    assert follow_events(first, seen, pending) == ([], [])
    assert list(pending) == ["o1"] and seen == {"orders.events:0": 4}
    later = [
        envelope("order.confirmed", 4, {"order_id": "o1"}),
        envelope("order.confirmed", 4, {"order_id": "o1"}),
    ]
    interactions, _ = follow_events(later, seen, pending)
    assert [(i.user_id, i.item_id, i.kind) for i in interactions] == [("ann", "mug", "purchase")]
    assert pending == {}


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"the Online Retail sample is not at {SAMPLE}")
def test_on_online_retail_fed_in_order_the_updated_model_ranks_within_5_percent_of_a_full_one():
    from eventmart.ml.online_retail import read_online_retail

    interactions, items = read_online_retail(SAMPLE)
    split = time_split(interactions, items)
    full = evaluate_serving(split, train(split.train, split.items).to_serving())["ndcg@10"]
    ordered = split.train.sort_values("datetime", kind="stable")
    first = int(len(ordered) * 0.8)  # a full training, then updates of 1,000 until the cutoff
    model = IncrementalModel.from_trained(train(ordered.iloc[:first], split.items))
    for start in range(first, len(ordered), 1000):
        model.update(ordered.iloc[start : start + 1000])
    assert model.interactions == len(ordered)
    updated = evaluate_serving(split, model.to_serving())["ndcg@10"]
    assert updated >= 0.95 * full, (updated, full)


def test_the_worker_updates_from_its_journal_and_a_restart_goes_on_from_the_state(
    planted, tmp_path: Path
):
    from eventmart.contracts import CONTRACTS, parse
    from eventmart.settings import Settings
    from projections.tracking import Delivery
    from workers.recommender import Retrainer

    settings = Settings(state_dir=tmp_path, recommender_training_nice=0)
    model = started(planted)
    model.seen = {"behavior.events:0": 10}
    store.save_state(model, settings.models_dir)
    retrainer = Retrainer(settings)

    async def announced(serving: object) -> None:  # no broker here: the worker test has one
        return None

    retrainer.announce = announced  # type: ignore[assignment,method-assign]
    view = parse(CONTRACTS["behavior.viewed"].example)
    learnt_before = Delivery("behavior.events", 0, 9, view)  # before the state's offsets
    assert retrainer.count([learnt_before, Delivery("behavior.events", 0, 10, view)]) == 2
    serving = retrainer.retrain()
    assert serving is not None and serving.version != model.version
    assert serving.knows_user(str(view.payload["user_id"]))
    assert serving.details["full_training"] == model.version  # an update, not a full one
    assert retrainer.model is not None and retrainer.model.interactions == model.interactions + 1
    assert store.latest_version(settings.models_dir) == serving.version
    assert list((settings.models_dir / "journal").glob("*.jsonl")) == []
    restarted = Retrainer(settings)
    restarted.announce = announced  # type: ignore[assignment,method-assign]
    restarted.count([Delivery("behavior.events", 0, 11, view)])
    again = restarted.retrain()
    assert again is not None and restarted.model is not None
    assert restarted.model.seen == {"behavior.events:0": 12}
    assert restarted.model.interactions == model.interactions + 2
