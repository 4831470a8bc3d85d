"""Training: documented weights, refused input, a version that names what went in, the
same model for the same seed, and serving models saved and loaded whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eventmart.ml import store
from eventmart.ml.interactions import (
    Interaction,
    InvalidInteractions,
    Item,
    interactions_frame,
    items_frame,
    pair_table,
)
from eventmart.ml.recommender import HybridParams, train
from eventmart.ml.serving import ServingModel
from eventmart.ml.synthetic import planted_log

NOON = datetime(2026, 11, 25, 12, tzinfo=UTC)
QUICK = HybridParams(epochs=5, components=8)


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, pd.DataFrame]:
    return planted_log(users=80, items=40, groups=4, per_user=10, seed=1)


def test_weights_are_as_documented() -> None:
    assert Interaction.view("u", "i", NOON).weight == 1
    assert Interaction.purchase("u", "i", NOON, quantity=10).weight == 5
    ratings = [Interaction.rating("u", "i", NOON, stars).weight for stars in range(1, 6)]
    assert ratings == [0, 0, 1, 3, 5]
    with pytest.raises(InvalidInteractions):
        Interaction.rating("u", "i", NOON, 6)


def test_pairs_add_up_and_dampen_and_poor_ratings_alone_are_dropped() -> None:
    rows = [
        Interaction.view("ann", "mug", NOON),
        Interaction.purchase("ann", "mug", NOON),
        Interaction.rating("bob", "mug", NOON, 1),
    ]
    pairs = pair_table(interactions_frame(rows))
    assert pairs[["user_id", "item_id"]].values.tolist() == [["ann", "mug"]]
    assert pairs["weight"].iloc[0] == pytest.approx(np.log1p(6))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"user_id": ["u"], "item_id": ["i"]}), "lack the columns"),
        (
            pd.DataFrame(
                {"user_id": ["u"], "item_id": ["i"], "weight": [1.0], "datetime": [NOON]}
                | {"kind": ["click"]}
            ),
            "unknown interaction kinds",
        ),
        (
            pd.DataFrame(
                {"user_id": ["u"], "item_id": ["i"], "weight": [-1.0], "datetime": [NOON]}
                | {"kind": ["view"]}
            ),
            "not negative",
        ),
        (
            pd.DataFrame(
                {"user_id": [None], "item_id": ["i"], "weight": [1.0], "datetime": [NOON]}
                | {"kind": ["view"]}
            ),
            "needs a user_id",
        ),
    ],
)
def test_bad_interactions_are_refused_with_a_reason(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(InvalidInteractions, match=message):
        train(frame, items_frame([]), params=QUICK)


def test_nothing_to_learn_from_is_refused() -> None:
    only_poor = interactions_frame([Interaction.rating("u", "i", NOON, 2)])
    with pytest.raises(InvalidInteractions, match="nothing to learn"):
        train(only_poor, items_frame([]), params=QUICK)


def test_a_catalogue_without_text_or_attributes_trains_without_features() -> None:
    rows = [Interaction.purchase(f"u{n % 7}", f"i{n % 5}", NOON) for n in range(30)]
    bare = items_frame([Item(f"i{n}") for n in range(5)])
    serving = train(interactions_frame(rows), bare, params=QUICK).to_serving()
    assert serving.feature_keys == [] and len(serving.recommend("u1", 3)) == 3
    assert serving.embed(Item("new", "a thing")) is None


def test_a_model_records_what_it_saw(planted: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    interactions, items = planted
    seen = {"orders.events:0": 120, "behavior.events:3": 9}
    trained = train(interactions, items, params=QUICK, seen=seen, now=NOON)
    assert trained.version.startswith("20261125T120000Z-")
    assert trained.trained_at == NOON and trained.seen == seen
    assert trained.counts["interactions"] == len(interactions)
    assert trained.counts["users"] == 80 and trained.counts["items"] == 40
    serving = trained.to_serving()
    assert (serving.version, serving.seen) == (trained.version, seen)


def test_the_same_seed_gives_the_same_model(planted: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    interactions, items = planted
    first = train(interactions, items, params=QUICK, seed=7, now=NOON).to_serving()
    second = train(interactions, items, params=QUICK, seed=7, now=NOON).to_serving()
    other = train(interactions, items, params=QUICK, seed=8, now=NOON).to_serving()
    assert first.version == second.version != other.version
    np.testing.assert_array_equal(first.item_embeddings, second.item_embeddings)
    np.testing.assert_array_equal(first.user_embeddings, second.user_embeddings)
    np.testing.assert_array_equal(first.feature_embeddings, second.feature_embeddings)
    assert not np.array_equal(first.item_embeddings, other.item_embeddings)


def test_other_data_gives_another_version(planted: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    interactions, items = planted
    one = train(interactions, items, params=QUICK, now=NOON)
    fewer = train(interactions.iloc[:-1], items, params=QUICK, now=NOON)
    assert one.version != fewer.version


def _assert_same(loaded: ServingModel, saved: ServingModel) -> None:
    for name in store.ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(saved, name))
    for name in store.LISTS:
        assert getattr(loaded, name) == getattr(saved, name)
    assert (loaded.version, loaded.trained_at, loaded.seen) == (
        saved.version,
        saved.trained_at,
        saved.seen,
    )
    assert loaded.content == saved.content
    user = saved.user_ids[0]
    assert loaded.recommend(user, 10) == saved.recommend(user, 10)
    assert loaded.similar(saved.item_ids[0], 5) == saved.similar(saved.item_ids[0], 5)


def test_a_saved_model_loads_whole(
    planted: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    interactions, items = planted
    saved = train(interactions, items, params=QUICK, seen={"orders.events:1": 5}).to_serving()
    folder = store.save(saved, tmp_path)
    assert folder == tmp_path / saved.version
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "model.json"]
    assert store.latest_version(tmp_path) == saved.version
    _assert_same(store.load(tmp_path), saved)


def test_latest_names_the_last_saved_version_and_older_ones_stay_loadable(
    planted: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    interactions, items = planted
    older = train(interactions, items, params=QUICK, now=NOON).to_serving()
    newer = train(interactions, items, params=QUICK, now=datetime.now(UTC)).to_serving()
    store.save(older, tmp_path)
    store.save(newer, tmp_path)
    assert store.load(tmp_path).version == newer.version
    assert store.load(tmp_path, older.version).version == older.version
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_loading_nothing_or_another_format_fails_clearly(
    planted: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    with pytest.raises(store.NoModel):
        store.load(tmp_path)
    with pytest.raises(store.NoModel):
        store.load(tmp_path, "20260101T000000Z-00000000")
    interactions, items = planted
    folder = store.save(train(interactions, items, params=QUICK).to_serving(), tmp_path)
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        store.load(tmp_path)
