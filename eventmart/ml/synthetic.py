"""A generated shop with a planted taste structure, for tests and benchmarks: users in
groups, each group liking one cluster of items (its own category, words, price band and
sellers), plus a shop-wide taste for a few best sellers. A model that learns anything
ranks a user's own cluster first; popularity cannot."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from eventmart.ml.interactions import (
    PURCHASE,
    PURCHASE_WEIGHT,
    VIEW,
    VIEW_WEIGHT,
    checked_interactions,
    checked_items,
)

NOUNS = ["mug", "lamp", "scarf", "kettle", "notebook", "candle", "pillow", "teapot", "wallet"]
ADJECTIVES = ["red", "blue", "wooden", "silver", "vintage", "woolly", "ceramic", "linen"]
START = datetime(2026, 1, 1)


def planted_items(count: int, groups: int, seed: int = 0) -> pd.DataFrame:
    """Item i belongs to cluster i % groups: its category, nouns, price band and sellers."""
    random = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        group = index % groups
        noun = NOUNS[group % len(NOUNS)]
        extra = f"style{group}"
        adjective = ADJECTIVES[int(random.integers(len(ADJECTIVES)))]
        rows.append(
            {
                "item_id": f"item-{index:05d}",
                "name": f"{adjective} {noun} {extra}",
                "description": f"a {noun} in {extra}, {adjective}",
                "category": f"category-{group}",
                "price": float(2 ** (8 + group % 6) * (1 + random.random() * 0.9)),
                "seller_id": f"seller-{group}-{index % 3}",
            }
        )
    return checked_items(pd.DataFrame(rows))


def planted_log(
    *,
    users: int = 300,
    items: int = 200,
    groups: int = 5,
    per_user: int = 20,
    own_share: float = 0.8,
    purchase_share: float = 0.2,
    days: int = 90,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, items): user u is in group u % groups and spends `own_share` of its
    interactions on its group's cluster, the rest on shop-wide best sellers."""
    random = np.random.default_rng(seed)
    catalogue = planted_items(items, groups, seed)
    item_ids = catalogue["item_id"].to_numpy()
    clusters = [np.flatnonzero(np.arange(items) % groups == g) for g in range(groups)]
    shop_wide = 1.0 / np.arange(1, items + 1) ** 1.2  # a few best sellers, Zipf-like
    shop_wide /= shop_wide.sum()
    rows = []
    for user in range(users):
        cluster = clusters[user % groups]
        in_cluster = 1.0 / np.arange(1, len(cluster) + 1) ** 0.6
        in_cluster /= in_cluster.sum()
        for _ in range(per_user):
            if random.random() < own_share:
                item = int(random.choice(cluster, p=in_cluster))
            else:
                item = int(random.choice(items, p=shop_wide))
            bought = random.random() < purchase_share
            rows.append(
                (
                    f"user-{user:05d}",
                    item_ids[item],
                    PURCHASE_WEIGHT if bought else VIEW_WEIGHT,
                    START + timedelta(seconds=float(random.random() * days * 86400)),
                    PURCHASE if bought else VIEW,
                )
            )
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "weight", "datetime", "kind"])
    return checked_interactions(frame.sort_values("datetime", kind="stable")), catalogue


def planted_stream(
    count: int,
    *,
    users: int = 5000,
    items: int = 3000,
    groups: int = 20,
    own_share: float = 0.8,
    purchase_share: float = 0.2,
    start: datetime = START,
    seconds: float = 90 * 86400,
    seed: int = 0,
) -> pd.DataFrame:
    """`count` interactions of the same planted shop as `planted_log` (its catalogue is
    `planted_items(items, groups)`), drawn at once with numpy: a million in seconds, for
    benchmarks at log sizes the per-user loop of `planted_log` would take minutes to make."""
    random = np.random.default_rng(seed)
    user = random.integers(0, users, count)
    cluster_size = items // groups
    in_cluster = 1.0 / np.arange(1, cluster_size + 1) ** 0.6
    shop_wide = 1.0 / np.arange(1, items + 1) ** 1.2
    own = random.random(count) < own_share
    item = np.where(
        own,
        user % groups
        + groups * random.choice(cluster_size, count, p=in_cluster / in_cluster.sum()),
        random.choice(items, count, p=shop_wide / shop_wide.sum()),
    )
    bought = random.random(count) < purchase_share
    frame = pd.DataFrame(
        {
            "user_id": np.char.add("user-", np.char.zfill(user.astype(str), 5)),
            "item_id": np.char.add("item-", np.char.zfill(item.astype(str), 5)),
            "weight": np.where(bought, PURCHASE_WEIGHT, VIEW_WEIGHT),
            "datetime": pd.Timestamp(start)
            + pd.to_timedelta(np.sort(random.random(count)) * seconds, unit="s"),
            "kind": np.where(bought, PURCHASE, VIEW),
        }
    )
    return checked_interactions(frame)
