"""Serving from memory: the caller's exclusions always hold, cold users get popularity,
items without interactions get neighbours by their content, and every item says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eventmart.ml.interactions import Item, items_frame
from eventmart.ml.recommender import HybridParams, TrainedModel, train
from eventmart.ml.serving import POPULAR, ServingModel, UnknownItem
from eventmart.ml.synthetic import planted_log

GROUPS = 5
# Cluster 1 of the planted shop: lamps in "style1", category-1, an octave of prices.
COLD_LAMP = Item("cold-lamp", "linen lamp style1", "a lamp in style1", "category-1", 700.0, None)


def cluster(item_id: str) -> int:
    return int(item_id.removeprefix("item-")) % GROUPS


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    interactions, items = planted_log(users=200, items=100, groups=GROUPS, per_user=20, seed=5)
    catalogue = pd.concat([items, items_frame([COLD_LAMP])], ignore_index=True)
    return train(interactions, catalogue, params=HybridParams(epochs=30), seed=0)


@pytest.fixture(scope="module")
def serving(trained: TrainedModel) -> ServingModel:
    return trained.to_serving()


def test_a_known_user_gets_its_own_cluster_with_reasons(serving: ServingModel) -> None:
    user = "user-00002"  # group 2
    found = serving.recommend(user, 10)
    assert len(found) == 10
    assert sum(cluster(r.item_id) == 2 for r in found if r.item_id.startswith("item-")) >= 7
    assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)
    for r in found:
        assert r.reason.startswith("because you ") and r.because_of not in (None, r.item_id)
        assert serving.item_names[serving.item_ids.index(r.because_of)] in r.reason


def test_exclusions_are_never_returned(serving: ServingModel) -> None:
    user = "user-00002"
    first = [r.item_id for r in serving.recommend(user, 10)]
    excluded = set(first[:5]) | {"not-in-the-model"}
    again = [r.item_id for r in serving.recommend(user, 10, exclude=excluded)]
    assert len(again) == 10 and not excluded & set(again)
    assert again[:5] == first[5:]  # the rest keep their order
    similar = serving.similar("item-00007", 10, exclude=excluded)
    assert not excluded & {r.item_id for r in similar}
    popular = serving.popular(10, exclude=excluded)
    assert not excluded & {r.item_id for r in popular}


def test_excluding_the_whole_catalogue_leaves_nothing(serving: ServingModel) -> None:
    assert serving.recommend("user-00002", 10, exclude=set(serving.item_ids)) == []
    assert serving.popular(10, exclude=set(serving.item_ids)) == []


def test_a_cold_user_gets_popular_items(serving: ServingModel) -> None:
    found = serving.recommend("a-new-user", 5)
    assert [r.reason for r in found] == [POPULAR] * 5
    counts = [r.score for r in found]
    assert counts == sorted(counts, reverse=True) and counts[0] == serving.item_popularity.max()


def test_a_cold_user_gets_the_popular_items_of_the_categories_viewed_first(
    serving: ServingModel,
) -> None:
    found = serving.recommend("a-new-user", 30, categories=["category-3"])
    categories = [serving.item_categories[serving.item_ids.index(r.item_id)] for r in found]
    in_category = categories.count("category-3")
    assert in_category == 20  # all 20 liked items of cluster 3, then the rest
    assert categories[:in_category] == ["category-3"] * in_category
    assert all(r.reason == POPULAR for r in found)


def test_similar_items_are_of_the_same_cluster_and_never_the_item_itself(
    serving: ServingModel,
) -> None:
    found = serving.similar("item-00007", 10)  # cluster 2
    assert "item-00007" not in {r.item_id for r in found}
    assert sum(cluster(r.item_id) == 2 for r in found if r.item_id.startswith("item-")) >= 8
    assert all(r.because_of == "item-00007" and r.reason.startswith("similar to") for r in found)
    with pytest.raises(UnknownItem):
        serving.similar("no-such-item")


def test_an_item_without_interactions_gets_neighbours_by_its_content(
    serving: ServingModel,
) -> None:
    assert serving.item_popularity[serving.item_ids.index("cold-lamp")] == 0
    found = serving.similar("cold-lamp", 10)
    assert sum(cluster(r.item_id) == 1 for r in found) >= 8


def test_a_product_created_after_training_is_embedded_from_its_features(
    serving: ServingModel,
) -> None:
    brand_new = Item("brand-new", "woolly lamp style1", "a lamp", "category-1", 650.0, None)
    found = serving.similar_to_new(brand_new, 10)
    assert sum(cluster(r.item_id) == 1 for r in found if r.item_id.startswith("item-")) >= 8
    assert all(r.reason == "similar to woolly lamp style1" for r in found)


def test_serving_embeds_a_featured_item_exactly_as_lightfm_does(serving: ServingModel) -> None:
    """The content path of serving and LightFM's own representation of a cold item agree."""
    index = serving.item_ids.index("cold-lamp")
    embedded = serving.embed(COLD_LAMP)
    assert embedded is not None
    vector, bias = embedded
    np.testing.assert_allclose(vector, serving.item_embeddings[index], rtol=1e-5, atol=1e-6)
    assert bias == pytest.approx(float(serving.item_biases[index]), abs=1e-5)


def test_a_product_known_only_by_its_category_gets_that_category(serving: ServingModel) -> None:
    stranger = Item("stranger", "zzz qqq", "", "category-4", None, None)
    found = serving.similar_to_new(stranger, 5)
    assert {serving.item_categories[serving.item_ids.index(r.item_id)] for r in found} == {
        "category-4"
    }


def test_a_product_with_no_known_feature_gets_popular_items(serving: ServingModel) -> None:
    stranger = Item("stranger", "zzz qqq", "", "garden", None, "seller-nobody-knows")
    found = serving.similar_to_new(stranger, 5)
    assert [r.item_id for r in found] == [r.item_id for r in serving.popular(5)]
    assert all(r.reason == POPULAR for r in found)


def test_serving_ranks_as_rectools_does(trained: TrainedModel, serving: ServingModel) -> None:
    users = ["user-00000", "user-00011", "user-00123"]
    reco = trained.model.recommend(users, trained.dataset, k=10, filter_viewed=False)
    for user in users:
        expected = reco[reco["user_id"] == user]["item_id"].tolist()
        assert [r.item_id for r in serving.recommend(user, 10)] == expected
