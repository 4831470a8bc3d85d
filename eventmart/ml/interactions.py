"""What the recommender learns from: interactions (who touched which product, how, when)
and items (what a product is), as pandas tables with rectools' column names.

Weights, documented once here (docs/recommendations.md repeats them):
- a view is 1: weak, plentiful evidence of interest;
- a purchase is 5: the strongest signal of taste a shop has;
- a rating is by its stars: 5 -> 5, 4 -> 3, 3 -> 1, 1 or 2 -> 0. A poor rating says
  nothing the purchase before it did not, and it must not make the product look liked.
Repeated interactions of one user with one product add up, and the model sees
log(1 + sum) (`pair_table`), so ten purchases of one mug do not outweigh ten products.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

VIEW, PURCHASE, RATING = "view", "purchase", "rating"
KINDS = (VIEW, PURCHASE, RATING)
VIEW_WEIGHT = 1.0
PURCHASE_WEIGHT = 5.0
RATING_WEIGHTS = {1: 0.0, 2: 0.0, 3: 1.0, 4: 3.0, 5: 5.0}

INTERACTION_COLUMNS = ["user_id", "item_id", "weight", "datetime", "kind"]
ITEM_COLUMNS = ["item_id", "name", "description", "category", "price", "seller_id"]


class InvalidInteractions(ValueError):
    """A table that is not interactions (or items) as this module defines them."""


@dataclass(frozen=True)
class Interaction:
    user_id: str
    item_id: str
    weight: float
    at: datetime
    kind: str

    @classmethod
    def view(cls, user_id: str, item_id: str, at: datetime) -> Interaction:
        return cls(user_id, item_id, VIEW_WEIGHT, at, VIEW)

    @classmethod
    def purchase(cls, user_id: str, item_id: str, at: datetime, quantity: int = 1) -> Interaction:
        """Quantity is ignored on purpose: ten mugs bought at once are one taste, not ten."""
        return cls(user_id, item_id, PURCHASE_WEIGHT, at, PURCHASE)

    @classmethod
    def rating(cls, user_id: str, item_id: str, at: datetime, stars: int) -> Interaction:
        if stars not in RATING_WEIGHTS:
            raise InvalidInteractions(f"a rating has 1 to 5 stars, not {stars!r}")
        return cls(user_id, item_id, RATING_WEIGHTS[stars], at, RATING)


@dataclass(frozen=True)
class Item:
    """What the content features are made of; every field but the id may be unknown.

    `price` is in the currency's minor units (cents, fen), as the catalogue stores it."""

    item_id: str
    name: str = ""
    description: str = ""
    category: str | None = None
    price: float | None = None
    seller_id: str | None = None


def interactions_frame(rows: Iterable[Interaction]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(r.user_id, r.item_id, r.weight, r.at, r.kind) for r in rows],
        columns=INTERACTION_COLUMNS,
    )
    return checked_interactions(frame)


def items_frame(rows: Iterable[Item]) -> pd.DataFrame:
    return checked_items(pd.DataFrame([astuple(item) for item in rows], columns=ITEM_COLUMNS))


def _utc_naive(values: pd.Series) -> pd.Series:
    """Datetimes as naive UTC, so times from different zones compare and sort as instants."""
    converted = pd.to_datetime(values, utc=True)
    return converted.dt.tz_convert(UTC).dt.tz_localize(None).astype("datetime64[ns]")


def checked_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with its columns typed, or InvalidInteractions saying what is wrong."""
    missing = [column for column in INTERACTION_COLUMNS if column not in frame.columns]
    if missing:
        raise InvalidInteractions(f"interactions lack the columns {', '.join(missing)}")
    table = frame[INTERACTION_COLUMNS].copy()
    unknown = set(table["kind"].unique()) - set(KINDS)
    if unknown:
        raise InvalidInteractions(f"unknown interaction kinds: {', '.join(map(str, unknown))}")
    table["weight"] = pd.to_numeric(table["weight"], errors="raise").astype("float64")
    if not np.isfinite(table["weight"]).all() or (table["weight"] < 0).any():
        raise InvalidInteractions("weights must be finite and not negative")
    if table[["user_id", "item_id"]].isna().any().any():
        raise InvalidInteractions("every interaction needs a user_id and an item_id")
    table["user_id"] = table["user_id"].astype(str)
    table["item_id"] = table["item_id"].astype(str)
    table["datetime"] = _utc_naive(table["datetime"])
    return table.reset_index(drop=True)


def checked_items(frame: pd.DataFrame) -> pd.DataFrame:
    """Items with every column present (unknown values as None), one row per item id."""
    if "item_id" not in frame.columns:
        raise InvalidInteractions("items need an item_id column")
    table = frame.reindex(columns=ITEM_COLUMNS).copy()
    table["item_id"] = table["item_id"].astype(str)
    for text in ("name", "description"):
        table[text] = table[text].fillna("").astype(str)
    for optional in ("category", "seller_id"):
        table[optional] = table[optional].astype(object).where(table[optional].notna(), None)
    table["price"] = pd.to_numeric(table["price"], errors="coerce")
    return table.drop_duplicates("item_id", keep="last").reset_index(drop=True)


def pair_table(interactions: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): weight log(1 + sum of weights), datetime the latest.
    Pairs whose weights sum to zero (only poor ratings) are left out: nothing was liked."""
    grouped = interactions.groupby(["user_id", "item_id"], sort=False, as_index=False).agg(
        weight=("weight", "sum"), datetime=("datetime", "max")
    )
    grouped = grouped[grouped["weight"] > 0].copy()
    grouped["weight"] = np.log1p(grouped["weight"])
    return grouped.reset_index(drop=True)


def item_popularity(interactions: pd.DataFrame) -> pd.Series:
    """How many distinct users liked each item (weight > 0): the popularity baseline's count."""
    liked = interactions[interactions["weight"] > 0]
    return liked.groupby("item_id")["user_id"].nunique()
