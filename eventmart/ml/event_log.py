"""The platform's own event log as interactions and items: what the recommender trains on
when it reads the log, as analysts do (by replay or from an export), never read models.

- views: `behavior.viewed` {product_id, user_id or session_id, source}; an anonymous
  visitor is the user "session:<session_id>";
- purchases: the lines of an `order.placed` whose order got `order.confirmed`, at the
  time of the confirmation (a rejected or unpaid order is no taste);
- ratings: `review.submitted` / `review.edited` {product_id, rating, user_id (or
  author_id)}; the latest rating of a user for a product counts;
- items: `product.created`, then `product.updated` and `product.price_changed`.

Ignored on purpose (`IGNORED`, counted but no interaction): `behavior.searched` (words
typed name no product, and what a search answered is the catalogue's ranking, not the
visitor's taste; the products a searcher then opens arrive as views with source
"search") and `behavior.recommendations_shown` (what the model itself showed: training
on it would feed the model its own output; it is for click-through figures).

Records may be `Envelope`s, envelope dicts, or rows of `eventmart analyst export` (the
payload as JSON text, with the record's topic, partition and offset). A re-published copy
of an event (same event_id) counts once; a record without the fields needed is skipped
and counted (`counts["malformed"]`). `LogData.seen` records the next offset of every
partition read, for the model's record of what it saw.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from eventmart.ml.interactions import Interaction, Item, interactions_frame, items_frame

VIEWED = "behavior.viewed"
IGNORED = frozenset({"behavior.searched", "behavior.recommendations_shown"})
REVIEW_TYPES = ("review.submitted", "review.edited")
TOPICS = ("catalog.events", "orders.events", "reviews.events", "behavior.events")


@dataclass
class LogData:
    interactions: pd.DataFrame
    items: pd.DataFrame
    seen: dict[str, int]
    counts: Counter[str] = field(default_factory=Counter)
    # Orders placed and not yet confirmed (order id -> buyer, products): what a follower
    # of the log after this point needs to turn a later confirmation into purchases.
    pending_orders: dict[str, tuple[str, list[str]]] = field(default_factory=dict)


@dataclass
class _Reading:
    views: list[Interaction] = field(default_factory=list)
    placed: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    confirmed: dict[str, datetime] = field(default_factory=dict)
    ratings: dict[tuple[str, str], tuple[datetime, int]] = field(default_factory=dict)
    product_events: list[tuple[str, int, str, dict[str, Any]]] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    seen: dict[str, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


def _as_dict(record: Any) -> dict[str, Any]:
    if isinstance(record, Mapping):
        data = dict(record)
    else:  # an Envelope
        data = record.model_dump(mode="json")
    if isinstance(data.get("payload"), str):
        data["payload"] = json.loads(data["payload"])
    occurred = data["occurred_at"]
    data["occurred_at"] = occurred if isinstance(occurred, datetime) else _time(occurred)
    return data


def _time(value: Any) -> datetime:
    moment: datetime = pd.Timestamp(value).to_pydatetime()
    return moment


def _read_one(reading: _Reading, data: dict[str, Any]) -> None:
    if data.get("topic") is not None and data.get("offset") is not None:
        position = f"{data['topic']}:{data['partition']}"
        reading.seen[position] = max(reading.seen.get(position, 0), int(data["offset"]) + 1)
    event_id = str(data["event_id"])
    if event_id in reading.event_ids:
        return
    reading.event_ids.add(event_id)
    kind, payload, at = data["type"], data["payload"], data["occurred_at"]
    reading.counts[kind] += 1
    if kind in IGNORED:
        return
    if kind == VIEWED:
        user = payload.get("user_id") or (
            f"session:{payload['session_id']}" if payload.get("session_id") else None
        )
        if user is not None:
            reading.views.append(Interaction.view(str(user), str(payload["product_id"]), at))
    elif kind == "order.placed":
        products = [str(line["product_id"]) for line in payload["lines"]]
        reading.placed[str(payload["order_id"])] = (str(payload["buyer_id"]), products)
    elif kind == "order.confirmed":
        reading.confirmed[str(payload["order_id"])] = at
    elif kind in REVIEW_TYPES:
        user = payload.get("user_id") or payload.get("author_id")
        key = (str(user), str(payload["product_id"]))
        rated = user is not None and payload.get("rating") is not None
        if rated and (key not in reading.ratings or reading.ratings[key][0] <= at):
            reading.ratings[key] = (at, int(payload["rating"]))
    elif kind.startswith("product."):
        version = int(data.get("aggregate_version") or 0)
        reading.product_events.append((str(data["aggregate_id"]), version, kind, payload))


def _items(product_events: list[tuple[str, int, str, dict[str, Any]]]) -> list[Item]:
    """Each product's state after its events, applied in aggregate-version order."""
    state: dict[str, dict[str, Any]] = {}
    for product_id, _, kind, payload in sorted(product_events, key=lambda e: (e[0], e[1])):
        if kind == "product.created":
            state[product_id] = {
                "name": payload["name"],
                "description": payload.get("description", ""),
                "category": payload.get("category"),
                "price": payload.get("price_amount"),
                "seller_id": payload.get("seller_id"),
            }
        elif product_id in state and kind == "product.updated":
            state[product_id].update(payload.get("changes", {}))
        elif product_id in state and kind == "product.price_changed":
            state[product_id]["price"] = payload["new_amount"]
    return [Item(item_id=product_id, **fields) for product_id, fields in state.items()]


def read_events(records: Iterable[Any]) -> LogData:
    """Interactions and items from envelopes (any order within the log's own guarantees)."""
    reading = _Reading()
    for record in records:
        try:
            _read_one(reading, _as_dict(record))
        except (KeyError, TypeError, ValueError):  # a payload without the fields we need
            reading.counts["malformed"] += 1
    purchases = [
        Interaction.purchase(buyer, product, reading.confirmed[order_id])
        for order_id, (buyer, products) in reading.placed.items()
        if order_id in reading.confirmed
        for product in products
    ]
    ratings = [
        Interaction.rating(user, product, at, stars)
        for (user, product), (at, stars) in reading.ratings.items()
    ]
    return LogData(
        interactions=interactions_frame([*reading.views, *purchases, *ratings]),
        items=items_frame(_items(reading.product_events)),
        seen=reading.seen,
        counts=reading.counts,
        pending_orders={
            order: placed
            for order, placed in reading.placed.items()
            if order not in reading.confirmed
        },
    )


ENDED = frozenset({"order.rejected", "order.cancelled"})  # no confirmation will follow


def follow_events(
    records: Iterable[Any], seen: dict[str, int], pending_orders: dict[str, tuple[str, list[str]]]
) -> tuple[list[Interaction], list[Item]]:
    """What records after a model's `seen` offsets add: its interactions, and the products
    created among them. Updates both mappings in place: `seen` to the next offsets, and
    `pending_orders` (placed, awaiting confirmation). Records before `seen` (already
    learnt) are skipped. Updates of products created before are left to the next full
    training, as are ratings (the recommender's group does not read reviews)."""
    reading = _Reading(placed=pending_orders)
    for record in records:
        try:
            data = _as_dict(record)
            position = f"{data['topic']}:{data['partition']}"
            if int(data["offset"]) < seen.get(position, 0):
                continue
            if data["type"] in ENDED:
                pending_orders.pop(str(data["payload"]["order_id"]), None)
            _read_one(reading, data)
        except (KeyError, TypeError, ValueError, AttributeError):
            reading.counts["malformed"] += 1
    seen.update(reading.seen)
    purchases = [
        Interaction.purchase(buyer, product, at)
        for order_id, at in reading.confirmed.items()
        if (placed := pending_orders.pop(order_id, None)) is not None
        for buyer, products in [placed]
        for product in products
    ]
    return [*reading.views, *purchases], _items(reading.product_events)


def read_export(directory: Path, topics: Iterable[str] = TOPICS) -> Iterator[dict[str, Any]]:
    """The rows of an `eventmart analyst export` directory (JSON Lines or Parquet files,
    one per topic), for `read_events`; topics without a file are skipped."""
    found = False
    for topic in topics:
        jsonl, parquet = directory / f"{topic}.jsonl", directory / f"{topic}.parquet"
        if jsonl.exists():
            found = True
            with jsonl.open("rb") as lines:
                yield from (json.loads(line) for line in lines if line.strip())
        elif parquet.exists():
            found = True
            yield from pq.read_table(parquet).to_pylist()
    if not found:
        raise FileNotFoundError(f"no export of {', '.join(topics)} in {directory}")
