"""What each console page shows, read through the functions the API and the CLI already use
(eventmart.operations, eventmart.relay_operations, projections) and the model stores."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api.deps import Services
from eventmart.broker import consumer_groups
from eventmart.ml import store as recommender_store
from eventmart.operations import (
    consumer_group_lag,
    consumer_group_members,
    dead_letter_summaries,
)
from eventmart.relay_operations import dead_letter_summary, relay_health
from projections.orders import stuck_sagas
from projections.rebuild import live_positions, shadow_schema
from projections.registry import READ_MODELS

DEAD_LETTERS_SHOWN = 50


async def consumer_groups_panel(services: Services) -> dict[str, Any]:
    """Lag per group and partition, each group's total, and the processes hosting it."""
    bootstrap = services.settings.bootstrap_servers
    groups = consumer_groups()
    rows, members = await asyncio.gather(
        consumer_group_lag(bootstrap, groups), consumer_group_members(bootstrap, list(groups))
    )
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[row["group"]].append(row)
    summary = [
        {
            "group": group,
            "lag": sum(row["lag"] for row in by_group[group]),
            "partitions": by_group[group],
            "members": members.get(group, []),
        }
        for group in groups
    ]
    return {"groups": summary, "total_lag": sum(group["lag"] for group in summary)}


def _relay_summary(services: Services) -> dict[str, Any]:
    with services.pool.connection() as conn:
        return dead_letter_summary(conn, messages=DEAD_LETTERS_SHOWN)


async def dead_letters_panel(services: Services) -> list[dict[str, Any]]:
    """Every group's dead letters, the relay's parked events first; only the messages still
    pending are listed (a redriven or skipped one has left the queue)."""
    relay = await asyncio.to_thread(_relay_summary, services)
    relay["messages"] = [m for m in relay["messages"] if m.get("status") == "parked"]
    summaries = await dead_letter_summaries(
        services.settings.bootstrap_servers,
        services.settings.dsn,
        list(consumer_groups()),
        messages=DEAD_LETTERS_SHOWN,
    )
    for summary in summaries:
        summary["messages"] = [m for m in summary["messages"] if not m["redriven"]]
    return [relay, *summaries]


def sagas_panel(services: Services) -> list[dict[str, Any]]:
    with services.read_pool("orders-projection").connection() as conn:
        return stuck_sagas(
            conn,
            datetime.now(UTC),
            auto_complete_after=timedelta(seconds=services.settings.auto_complete_seconds),
            limit=DEAD_LETTERS_SHOWN,
        )


def relay_panel(services: Services) -> dict[str, Any]:
    with services.pool.connection() as conn:
        health = relay_health(conn, services.applications.all(), services.settings)
        parked = dead_letter_summary(conn, messages=DEAD_LETTERS_SHOWN)
    parked["messages"] = [m for m in parked["messages"] if m.get("status") == "parked"]
    return {"health": health, "parked": parked}


def _positions(services: Services, group: str, schema: str) -> tuple[bool, int]:
    """Whether the schema holds the group's tracking, and the offsets it has applied."""
    with services.read_pool(group).connection() as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.consumer_positions",)
        ).fetchone()
        if not exists or not exists[0]:
            return False, 0
        return True, sum(live_positions(conn, group, schema).values())


async def read_models_panel(services: Services) -> list[dict[str, Any]]:
    """Per read model: what the live model applied of its topics' events, and, while
    `eventmart rebuild` runs, what its shadow (projections.rebuild) has applied so far."""
    groups = {name: model.topics for name, model in READ_MODELS.items()}
    rows = await consumer_group_lag(services.settings.bootstrap_servers, groups)
    ends: dict[str, int] = defaultdict(int)
    for row in rows:
        ends[row["group"]] += row["end"]

    def read() -> list[dict[str, Any]]:
        found = []
        for group in READ_MODELS:
            _, live = _positions(services, group, "public")
            rebuilding, shadow = _positions(services, group, shadow_schema(READ_MODELS[group]))
            end = ends[group]
            found.append(
                {
                    "group": group,
                    "end": end,
                    "live": live,
                    "live_percent": _percent(live, end),
                    "rebuilding": rebuilding,
                    "shadow": shadow,
                    "shadow_percent": _percent(shadow, end) if rebuilding else None,
                }
            )
        return found

    return await asyncio.to_thread(read)


def _percent(part: int, whole: int) -> float:
    return 100.0 if whole <= 0 else round(min(100.0, 100.0 * part / whole), 1)


def models_panel(services: Services) -> dict[str, Any]:
    return {
        "recommender": recommender_versions(services.settings.models_dir),
        "classifier": classifier_versions(services),
    }


def recommender_versions(directory: Path) -> dict[str, Any]:
    """The recommender's saved versions (eventmart.ml.store), newest first, with what each
    saw and the parameters and counts it was trained with."""
    latest = recommender_store.latest_version(directory)
    versions = []
    for meta_path in sorted(directory.glob("*/model.json"), reverse=True):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        versions.append(
            {
                "version": meta.get("version"),
                "trained_at": meta.get("trained_at"),
                "seen": meta.get("seen") or {},
                "details": meta.get("details") or {},
                "serving": meta.get("version") == latest,
            }
        )
    return {"directory": str(directory), "latest": latest, "versions": versions}


def classifier_versions(services: Services) -> dict[str, Any]:
    """The review classifier's versions: those the reviews read model says classified
    reviews (the worker stores its model's version with each), and the artifacts trained
    into this machine's cache (eventmart.ml.feedback.store: one file per version, written
    when trained)."""
    from eventmart.ml.feedback import default_cache_dir

    with services.read_pool("reviews-projection").connection() as conn:
        in_use = [
            {"version": version, "reviews": count, "first": first, "last": last}
            for version, count, first, last in conn.execute(
                "SELECT model_version, count(*), min(classified_at), max(classified_at) "
                "FROM reviews_view WHERE model_version IS NOT NULL "
                "GROUP BY model_version ORDER BY max(classified_at) DESC"
            ).fetchall()
        ]
    folder = default_cache_dir()
    trained = [
        {
            "version": path.stem,
            "trained_at": datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(),
        }
        for path in sorted(folder.glob("feedback-*.json"), key=lambda p: -p.stat().st_mtime)
    ]
    return {"in_use": in_use, "trained": trained, "cache": str(folder)}
