"""Where interactions and items come from: the event log (envelopes or an export), the
Online Retail CSV, and the words and features made of a product's text."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import pyarrow.parquet as pq
import pytest

from eventmart.contracts import Envelope
from eventmart.export import jsonl_of, row_of, table_of
from eventmart.ml.event_log import read_events, read_export
from eventmart.ml.features import ContentFeatures, price_band
from eventmart.ml.interactions import Item, items_frame
from eventmart.ml.online_retail import read_online_retail
from eventmart.ml.words import words_of

NOON = datetime(2026, 11, 25, 12, tzinfo=UTC)


def uid(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"test:{name}")


def envelope(
    kind: str, aggregate: str, version: int, payload: dict[str, Any], minute: int
) -> Envelope:
    aggregate_id = uid(aggregate)
    return Envelope(
        event_id=uid(f"{aggregate}:{version}"),
        type=kind,
        schema_version=1,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        occurred_at=NOON + timedelta(minutes=minute),
        correlation_id=aggregate_id,
        payload=payload,
    )


MUG, LAMP = str(uid("mug")), str(uid("lamp"))
ANN, BOB = str(uid("ann")), str(uid("bob"))


def order(name: str, buyer: str, products: list[str], minute: int) -> Envelope:
    lines = [{"product_id": p, "quantity": 1, "unit_price": 100} for p in products]
    payload = {"order_id": str(uid(name)), "buyer_id": buyer, "lines": lines}
    return envelope("order.placed", name, 1, payload, minute)


SHOP_LOG = [
    envelope(
        "product.created",
        "mug",
        1,
        {"product_id": MUG, "seller_id": "s1", "sku": "MUG-1", "name": "Blue mug"}
        | {"description": "Stoneware", "category": "kitchen", "price_amount": 4900}
        | {"currency": "CNY"},
        0,
    ),
    envelope("product.updated", "mug", 2, {"product_id": MUG, "changes": {"name": "Big mug"}}, 1),
    envelope("product.price_changed", "mug", 3, {"product_id": MUG, "new_amount": 3900}, 2),
    envelope("behavior.viewed", "view-1", 1, {"product_id": MUG, "user_id": ANN}, 3),
    envelope("behavior.viewed", "view-2", 1, {"product_id": LAMP, "session_id": "s-9"}, 4),
    envelope("behavior.viewed", "view-3", 1, {"product_id": LAMP}, 5),  # nobody: skipped
    order("order-a", ANN, [MUG, LAMP], 6),
    envelope("order.confirmed", "order-a", 4, {"order_id": str(uid("order-a"))}, 9),
    order("order-b", BOB, [MUG], 7),  # never confirmed: no purchase
    envelope(
        "review.submitted", "review-1", 1, {"product_id": MUG, "user_id": ANN, "rating": 5}, 10
    ),
    envelope("review.edited", "review-1", 2, {"product_id": MUG, "user_id": ANN, "rating": 2}, 11),
]


def test_the_log_gives_views_confirmed_purchases_and_latest_ratings() -> None:
    data = read_events(SHOP_LOG)
    rows = {
        (r.user_id, r.item_id, r.kind, r.weight, r.datetime) for r in data.interactions.itertuples()
    }
    at = lambda minute: (NOON + timedelta(minutes=minute)).replace(tzinfo=None)
    assert rows == {
        (ANN, MUG, "view", 1.0, at(3)),
        ("session:s-9", LAMP, "view", 1.0, at(4)),
        (ANN, MUG, "purchase", 5.0, at(9)),
        (ANN, LAMP, "purchase", 5.0, at(9)),
        (ANN, MUG, "rating", 0.0, at(11)),  # edited down to 2 stars
    }


def test_the_log_gives_each_product_as_its_events_left_it() -> None:
    items = read_events(SHOP_LOG).items
    assert items.to_dict("records") == [
        {
            "item_id": MUG,
            "name": "Big mug",
            "description": "Stoneware",
            "category": "kitchen",
            "price": 3900.0,
            "seller_id": "s1",
        }
    ]


def test_a_republished_event_counts_once() -> None:
    once = read_events(SHOP_LOG).interactions
    twice = read_events([*SHOP_LOG, *SHOP_LOG[3:8]]).interactions
    assert len(twice) == len(once)


def test_a_record_without_the_needed_fields_is_skipped_and_counted() -> None:
    broken = envelope("behavior.viewed", "view-x", 1, {"user_id": ANN}, 12)  # no product
    data = read_events([*SHOP_LOG, broken, {"type": "order.placed"}])
    assert len(data.interactions) == len(read_events(SHOP_LOG).interactions)
    assert data.counts["malformed"] == 2


def test_an_export_reads_the_same_in_jsonl_and_parquet_and_records_offsets(tmp_path: Path) -> None:
    topic_of = {"product": "catalog.events", "behavior": "behavior.events"}
    topic_of |= {"order": "orders.events", "review": "reviews.events"}
    rows = [
        row_of(topic_of[e.type.split(".")[0]], 0, offset, e) for offset, e in enumerate(SHOP_LOG)
    ]
    jsonl_dir, parquet_dir = tmp_path / "jsonl", tmp_path / "parquet"
    jsonl_dir.mkdir(), parquet_dir.mkdir()
    for topic in set(topic_of.values()):
        mine = [row for row in rows if row["topic"] == topic]
        (jsonl_dir / f"{topic}.jsonl").write_bytes(jsonl_of(mine))
        pq.write_table(table_of(mine), parquet_dir / f"{topic}.parquet")
    direct = read_events(SHOP_LOG)
    for directory in (jsonl_dir, parquet_dir):
        data = read_events(read_export(directory))
        assert data.interactions.equals(direct.interactions)
        assert data.items.equals(direct.items)
        assert data.seen == {
            "catalog.events:0": 3,
            "behavior.events:0": 6,
            "orders.events:0": 9,
            "reviews.events:0": 11,
        }
    with pytest.raises(FileNotFoundError):
        list(read_export(tmp_path / "nothing-here"))


RETAIL_CSV = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01T08:26:00,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01T08:26:00,3.39,17850.0,United Kingdom
536366,71053,WHITE METAL LANTERN,2,2010-12-01T09:00:00,3.59,13047.0,United Kingdom
536367,22632,HAND WARMER RED POLKA DOT,6,2010-12-01T09:10:00,1.85,,United Kingdom
C536368,71053,WHITE METAL LANTERN,-1,2010-12-01T10:00:00,3.39,13047.0,United Kingdom
536369,POST,POSTAGE,1,2010-12-01T10:05:00,18.00,12583.0,France
536370,22728,"ALARM CLOCK BAKELIKE PINK, BOXED",24,2010-12-01T10:10:00,0,12583.0,France
"""


def test_online_retail_keeps_customers_purchases_of_real_products(tmp_path: Path) -> None:
    path = tmp_path / "retail.csv.gz"
    with gzip.open(path, "wt") as file:
        file.write(RETAIL_CSV)
    interactions, items = read_online_retail(path)
    assert interactions[["user_id", "item_id"]].values.tolist() == [
        ["17850", "85123A"],
        ["17850", "71053"],
        ["13047", "71053"],
    ]
    assert set(interactions["kind"]) == {"purchase"}
    lantern = items.set_index("item_id").loc["71053"]
    assert lantern["name"] == "WHITE METAL LANTERN" and lantern["price"] == pytest.approx(349)


def test_other_files_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not the Online Retail CSV"):
        read_online_retail(path)


def test_words_of_english_and_chinese_text() -> None:
    assert words_of("The Blue Mugs, set of 2 (stoneware)") == ["blue", "mug", "stoneware"]
    assert words_of("蓝色陶瓷马克杯 的 Blue mugs") == ["蓝色", "陶瓷", "马克杯", "blue", "mug"]


def test_price_bands_are_octaves() -> None:
    assert [price_band(p) for p in (255, 256, 511, 512, None, 0)] == [
        "7",
        "8",
        "8",
        "9",
        None,
        None,
    ]


def test_the_vocabulary_keeps_shared_words_and_drops_rare_and_everywhere_words() -> None:
    names = [f"gift {colour} lantern" for colour in ["red"] * 3 + ["blue"] * 2 + ["green"]]
    names += [f"gift {colour} {n}" for n, colour in enumerate(["red"] * 14)]
    items = items_frame([Item(f"i{n}", name) for n, name in enumerate(names)])
    content = ContentFeatures.build(items)
    assert "lantern" in content.words and "blue" in content.words
    assert "green" not in content.words  # one item only
    assert "gift" not in content.words and "red" not in content.words  # in too many
    assert len(ContentFeatures.build(items, max_words=1).words) == 1


def test_an_items_features_are_weighted_by_group() -> None:
    content = ContentFeatures(frozenset({"blue", "mug"}))
    features = content.features_of(Item("i", "Blue mug", "", "kitchen", 4900.0, "seller-1"))
    assert features[:3] == [
        ("category", "kitchen", 1.0),
        ("price", "12", 1.0),
        ("seller", "seller-1", 1.0),
    ]
    assert [(g, v) for g, v, _ in features[3:]] == [("word", "blue"), ("word", "mug")]
    assert sum(w for _, _, w in features[3:]) == pytest.approx(2 / 2**0.5)
