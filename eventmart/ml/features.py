"""Content features of an item: category, price band, seller and the words of its name and
description, with a capped vocabulary. The same object turns a training catalogue into
rectools' flat feature table and, at serving time, a brand-new product into the same
features, so a product nobody has touched yet can still be embedded."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from eventmart.ml.interactions import Item
from eventmart.ml.words import words_of

FEATURE_GROUPS = ("category", "price", "seller", "word")
FLAT_COLUMNS = ["id", "feature", "value", "weight"]


def price_band(price: float | None) -> str | None:
    """Bands an octave wide (each twice the price of the one below), in minor units: no
    state to keep, and the same for a mug and a sofa in any currency's cents."""
    if price is None or not math.isfinite(price) or price <= 0:
        return None
    return str(math.floor(math.log2(price)))


@dataclass(frozen=True)
class ContentFeatures:
    """The vocabulary the model was trained with, and how an item's features are weighted.

    Category, price band and seller weigh 1 each; the words share `words_weight` as
    1/sqrt(n) each, so a long description does not drown the rest."""

    words: frozenset[str]
    words_weight: float = 1.0

    @classmethod
    def build(
        cls,
        items: pd.DataFrame,
        *,
        max_words: int = 2000,
        min_items: int = 2,
        max_share: float = 0.3,
        words_weight: float = 1.0,
    ) -> ContentFeatures:
        """Keep words found in at least `min_items` items (a word of one item cannot link
        two), in at most `max_share` of them (when there are 20 or more: "gift" says
        nothing in a gift shop), the `max_words` most frequent at most."""
        counts: Counter[str] = Counter()
        for name, description in zip(items["name"], items["description"], strict=True):
            counts.update(words_of(f"{name} {description}"))
        ceiling = max_share * len(items) if len(items) >= 20 else math.inf
        eligible = [(word, n) for word, n in counts.items() if min_items <= n <= ceiling]
        eligible.sort(key=lambda pair: (-pair[1], pair[0]))
        return cls(frozenset(word for word, _ in eligible[:max_words]), words_weight)

    def features_of(self, item: Item) -> list[tuple[str, str, float]]:
        """(group, value, weight) of every feature the item has in this vocabulary."""
        features: list[tuple[str, str, float]] = []
        if item.category:
            features.append(("category", item.category, 1.0))
        band = price_band(item.price)
        if band is not None:
            features.append(("price", band, 1.0))
        if item.seller_id:
            features.append(("seller", item.seller_id, 1.0))
        known = [w for w in words_of(f"{item.name} {item.description}") if w in self.words]
        features.extend(("word", word, self.words_weight / math.sqrt(len(known))) for word in known)
        return features

    def flat_table(self, items: pd.DataFrame) -> pd.DataFrame:
        """rectools' flattened feature table (id, feature, value, weight) of the catalogue."""
        rows = [
            (item.item_id, group, value, weight)
            for item in items_of(items)
            for group, value, weight in self.features_of(item)
        ]
        return pd.DataFrame(rows, columns=FLAT_COLUMNS)

    def to_json(self) -> dict[str, Any]:
        return {"words": sorted(self.words), "words_weight": self.words_weight}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContentFeatures:
        return cls(frozenset(data["words"]), float(data["words_weight"]))


def _present(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def items_of(items: pd.DataFrame) -> Iterable[Item]:
    for row in items.itertuples(index=False):
        yield Item(
            item_id=str(row.item_id),
            name=str(row.name or ""),
            description=str(row.description or ""),
            category=_present(row.category),
            price=_present(row.price),
            seller_id=_present(row.seller_id),
        )


def feature_key(group: str, value: str) -> str:
    """One string per feature, as the serving model stores them: "word=mug"."""
    return f"{group}={value}"
