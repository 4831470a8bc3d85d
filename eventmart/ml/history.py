"""Each user's recent items, kept in the serving model so a recommendation can say why:
"because you bought X" names the item of the user's history nearest to it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from eventmart.ml.interactions import PURCHASE, RATING, VIEW

# Codes stored in the arrays; a pair's kind is its strongest (a bought item is "bought"
# even if it was viewed again afterwards).
KIND_CODES = {VIEW: 0, RATING: 1, PURCHASE: 2}
VERBS = {0: "viewed", 1: "rated", 2: "bought"}
HISTORY_LENGTH = 20


def recent_pairs(interactions: pd.DataFrame, item_index: dict[str, int]) -> pd.DataFrame:
    """Each user's HISTORY_LENGTH latest liked items (user_id, index, code, datetime), most
    recent first; a pair's code is its strongest kind, its time its latest."""
    table = interactions[interactions["weight"] > 0]
    table = table.assign(
        code=table["kind"].map(KIND_CODES),
        index=table["item_id"].map(item_index),
    ).dropna(subset=["index"])
    pairs = table.groupby(["user_id", "index"], as_index=False, sort=False).agg(
        code=("code", "max"), datetime=("datetime", "max")
    )
    pairs = pairs.sort_values(["user_id", "datetime", "index"], ascending=[True, False, True])
    return pairs.groupby("user_id", sort=False).head(HISTORY_LENGTH)


def user_histories(
    interactions: pd.DataFrame, user_ids: list[str], item_index: dict[str, int]
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """CSR-like arrays: user i's history is items[starts[i]:starts[i+1]] (most recent
    first, at most HISTORY_LENGTH) with their kind codes."""
    pairs = recent_pairs(interactions, item_index)
    by_user = dict(tuple(pairs.groupby("user_id", sort=False)))
    starts = np.zeros(len(user_ids) + 1, dtype=np.int64)
    chunks_items: list[NDArray[Any]] = []
    chunks_kinds: list[NDArray[Any]] = []
    for position, user in enumerate(user_ids):
        rows = by_user.get(user)
        length = 0 if rows is None else len(rows)
        starts[position + 1] = starts[position] + length
        if rows is not None:
            chunks_items.append(rows["index"].to_numpy(dtype=np.int32))
            chunks_kinds.append(rows["code"].to_numpy(dtype=np.int8))
    items = np.concatenate(chunks_items) if chunks_items else np.zeros(0, dtype=np.int32)
    kinds = np.concatenate(chunks_kinds) if chunks_kinds else np.zeros(0, dtype=np.int8)
    return starts, items, kinds
