"""`eventmart analyst eval-recs` and `train-recs` on an export of a generated shop log with a
planted taste structure, as an analyst runs them (no broker: the export is a directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from entrypoints.cli import app
from eventmart.ml import store
from eventmart.ml.evaluation import HYBRID, MODELS, POPULAR
from eventmart.ml.synthetic import planted_log


def _uid(name: str) -> str:
    return str(uuid5(NAMESPACE_URL, f"planted:{name}"))


def _row(topic: str, offset: int, kind: str, aggregate: str, at: Any, payload: dict[str, Any]):
    return {
        "topic": topic,
        "partition": 0,
        "offset": offset,
        "event_id": _uid(f"{kind}:{aggregate}"),
        "type": kind,
        "schema_version": 1,
        "aggregate_id": aggregate,
        "aggregate_version": 1,
        "occurred_at": pd.Timestamp(at).tz_localize("UTC").isoformat(),
        "correlation_id": aggregate,
        "causation_id": None,
        "payload": orjson.dumps(payload).decode(),
    }


def write_export(directory: Path, interactions: pd.DataFrame, items: pd.DataFrame) -> None:
    """The planted log as `eventmart analyst export --format jsonl` writes it."""
    topics: dict[str, list[dict[str, Any]]] = {"catalog.events": [], "orders.events": []}
    topics["behavior.events"] = []
    product = {item: _uid(item) for item in items["item_id"]}
    for item in items.itertuples():
        payload = {"product_id": product[item.item_id], "seller_id": item.seller_id}
        payload |= {"name": item.name, "description": item.description, "sku": item.item_id}
        payload |= {"category": item.category, "price_amount": int(item.price), "currency": "CNY"}
        rows = topics["catalog.events"]
        rows.append(
            _row(
                "catalog.events",
                len(rows),
                "product.created",
                payload["product_id"],
                "2025-12-01",
                payload,
            )
        )
    for n, event in enumerate(interactions.itertuples()):
        user, item = _uid(event.user_id), product[event.item_id]
        if event.kind == "view":
            rows = topics["behavior.events"]
            payload = {"product_id": item, "user_id": user, "source": "direct"}
            rows.append(
                _row(
                    "behavior.events",
                    len(rows),
                    "behavior.viewed",
                    _uid(f"v{n}"),
                    event.datetime,
                    payload,
                )
            )
        else:
            order, rows = _uid(f"order{n}"), topics["orders.events"]
            line = {"product_id": item, "quantity": 1, "unit_price": 100}
            placed = {"order_id": order, "buyer_id": user, "lines": [line]}
            rows.append(
                _row("orders.events", len(rows), "order.placed", order, event.datetime, placed)
            )
            rows.append(
                _row(
                    "orders.events",
                    len(rows),
                    "order.confirmed",
                    order,
                    event.datetime,
                    {"order_id": order},
                )
            )
    for topic, rows in topics.items():
        (directory / f"{topic}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("export")
    write_export(directory, *planted_log(users=250, items=150, groups=5, per_user=20, seed=11))
    return directory


def test_eval_recs_prints_every_model_and_metric_as_json(export: Path) -> None:
    result = CliRunner().invoke(
        app, ["analyst", "eval-recs", "--source", "log", str(export), "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert tuple(figures) == MODELS
    assert {"precision@10", "recall@10", "ndcg@10", "map@10", "coverage@10"} <= set(figures[HYBRID])
    assert figures[HYBRID]["ndcg@10"] >= 1.5 * figures[POPULAR]["ndcg@10"]


def test_eval_recs_shows_a_table_with_the_targets(export: Path) -> None:
    result = CliRunner().invoke(app, ["analyst", "eval-recs", "--source", "log", str(export)])
    assert result.exit_code == 0, result.output
    assert "lightfm_hybrid" in result.output and "item_knn" in result.output
    assert "hybrid vs popular: NDCG@10" in result.output


def test_train_recs_saves_a_loadable_versioned_model(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    result = CliRunner().invoke(
        app, ["analyst", "train-recs", "--source", "log", str(export), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    model = store.load(out)
    assert model.version in result.output
    assert model.seen["orders.events:0"] > 0 and model.seen["behavior.events:0"] > 0
    assert len(model.recommend(model.user_ids[0], 10)) == 10


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--source", "nowhere"], "--source must be one of"),
        (["--source", "online-retail"], "needs the CSV"),
        (["--source", "log", "/no/such/export"], "does not exist"),
    ],
)
def test_bad_sources_are_refused_clearly(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["analyst", "eval-recs", *arguments])
    assert result.exit_code == 2
    assert message in result.output
