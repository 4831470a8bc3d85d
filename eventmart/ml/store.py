"""Serving models on disk, one folder per version, and a LATEST file naming the current one:

    <directory>/<version>/arrays.npz   the embeddings, biases, popularity, histories
    <directory>/<version>/model.json   ids, names, categories, vocabulary, what it saw
    <directory>/LATEST                 the version to serve
    <directory>/state-<version>/       what incremental training resumes from
    <directory>/STATE                  the current state's folder

A version's folder is written beside its final name and renamed into place, and LATEST is
replaced atomically after it, so a reader polling `latest_version` never sees half a model.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import sparse

from eventmart.ml.features import ContentFeatures
from eventmart.ml.incremental import (
    BIAS_ARRAYS,
    EMBEDDING_ARRAYS,
    IncrementalModel,
    UpdateParams,
    restored_lightfm,
)
from eventmart.ml.interactions import Item
from eventmart.ml.recommender import HybridParams
from eventmart.ml.serving import ServingModel

FORMAT = 1
ARRAYS = (
    "item_embeddings",
    "item_biases",
    "item_popularity",
    "user_embeddings",
    "user_biases",
    "history_starts",
    "history_items",
    "history_kinds",
    "feature_embeddings",
    "feature_biases",
)
LISTS = ("item_ids", "item_names", "item_categories", "user_ids", "feature_keys")


class NoModel(FileNotFoundError):
    """No serving model has been saved in that directory (or not that version)."""


def save(model: ServingModel, directory: Path) -> Path:
    """Write the model as its version's folder, then make it LATEST; returns the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / model.version
    staging = directory / f".{model.version}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    np.savez(staging / "arrays.npz", **{name: getattr(model, name) for name in ARRAYS})
    meta = {
        "format": FORMAT,
        "version": model.version,
        "trained_at": model.trained_at.isoformat(),
        "seen": model.seen,
        "details": model.details,
        "content": model.content.to_json() if model.content is not None else None,
        **{name: getattr(model, name) for name in LISTS},
    }
    (staging / "model.json").write_text(json.dumps(meta, ensure_ascii=False, default=str))
    if final.exists():  # the same version saved again: same data, parameters and time
        shutil.rmtree(final)
    staging.rename(final)
    pointer = directory / f".LATEST.{os.getpid()}.tmp"
    pointer.write_text(model.version + "\n")
    os.replace(pointer, directory / "LATEST")
    return final


def latest_version(directory: Path) -> str | None:
    """The version LATEST names, or None: cheap enough to poll for a new model."""
    try:
        return (directory / "LATEST").read_text().strip() or None
    except FileNotFoundError:
        return None


def load(directory: Path, version: str | None = None) -> ServingModel:
    """The LATEST model of `directory`, or the given version; NoModel if there is none."""
    chosen = version or latest_version(directory)
    if chosen is None:
        raise NoModel(f"no serving model saved in {directory}")
    folder = directory / chosen
    try:
        meta = json.loads((folder / "model.json").read_text())
        with np.load(folder / "arrays.npz", allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in ARRAYS}
    except FileNotFoundError as error:
        raise NoModel(f"no serving model {chosen} in {directory}") from error
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder} is format {meta.get('format')}, this code reads {FORMAT}")
    content = meta["content"]
    return ServingModel(
        version=meta["version"],
        trained_at=datetime.fromisoformat(meta["trained_at"]),
        seen={key: int(value) for key, value in meta["seen"].items()},
        details=meta["details"],
        content=ContentFeatures.from_json(content) if content is not None else None,
        **{name: meta[name] for name in LISTS},
        **arrays,
    )


# The incremental trainer's state: one folder per model version it belongs to, and a STATE
# file naming the current one (replaced atomically, as LATEST is); older folders removed.
STATE_FORMAT = 1
STATE = "STATE"


def save_state(model: IncrementalModel, directory: Path) -> Path:
    """Write what incremental training resumes from, beside the serving models."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"state-{model.version}"
    staging = directory / f".{name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    lightfm = model.lightfm
    histories = [
        (user, item, code, at)
        for user, entries in model.histories.items()
        for item, code, at in entries
    ]
    history = np.array(histories, dtype=np.int64).reshape(-1, 4)
    content = model.item_content.tocsr()
    np.savez(
        staging / "state.npz",
        pair_keys=model.pair_keys,
        pair_sums=model.pair_sums,
        history=history,
        content_data=content.data,
        content_indices=content.indices,
        content_indptr=content.indptr,
        **{
            f"{side}_{array}": getattr(lightfm, f"{side}_{array}")
            for side in ("user", "item")
            for array in (*EMBEDDING_ARRAYS, *BIAS_ARRAYS)
        },
    )
    meta = {
        "format": STATE_FORMAT,
        "version": model.version,
        "trained_at": model.trained_at.isoformat(),
        "full_version": model.full_version,
        "full_trained_at": model.full_trained_at.isoformat(),
        "params": asdict(model.params),
        "updates": asdict(model.updates),
        "seed": model.seed,
        "interactions": model.interactions,
        "interactions_at_full": model.interactions_at_full,
        "seen": model.seen,
        "pending_orders": model.pending_orders,
        "user_ids": model.user_ids,
        "item_ids": model.item_ids,
        "items": [asdict(item) for item in model.items.values()],
        "content": model.content.to_json() if model.content is not None else None,
        "feature_keys": model.feature_keys,
    }
    (staging / "state.json").write_text(json.dumps(meta, ensure_ascii=False))
    final = directory / name
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    pointer = directory / f".{STATE}.{os.getpid()}.tmp"
    pointer.write_text(name + "\n")
    os.replace(pointer, directory / STATE)
    for old in directory.glob("state-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(directory: Path) -> IncrementalModel | None:
    """The incremental trainer's latest state, or None if there is none (or it is of
    another format: then the next training is a full one)."""
    try:
        folder = directory / (directory / STATE).read_text().strip()
        meta = json.loads((folder / "state.json").read_text())
        with np.load(folder / "state.npz", allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (FileNotFoundError, NotADirectoryError):
        return None
    if meta.get("format") != STATE_FORMAT:
        return None
    params, seed = HybridParams(**meta["params"]), int(meta["seed"])
    histories: dict[int, list[tuple[int, int, int]]] = {}
    for user, item, code, at in arrays["history"].tolist():
        histories.setdefault(user, []).append((item, code, at))
    n_items = len(meta["item_ids"])
    content = meta["content"]
    return IncrementalModel(
        lightfm=restored_lightfm(params, seed, arrays),
        params=params,
        seed=seed,
        user_ids=list(meta["user_ids"]),
        item_ids=list(meta["item_ids"]),
        items={row["item_id"]: Item(**row) for row in meta["items"]},
        content=ContentFeatures.from_json(content) if content is not None else None,
        feature_keys=list(meta["feature_keys"]),
        item_content=sparse.csr_matrix(
            (arrays["content_data"], arrays["content_indices"], arrays["content_indptr"]),
            shape=(n_items, len(meta["feature_keys"])),
        ),
        pair_keys=arrays["pair_keys"],
        pair_sums=arrays["pair_sums"],
        histories=histories,
        version=meta["version"],
        trained_at=datetime.fromisoformat(meta["trained_at"]),
        full_version=meta["full_version"],
        full_trained_at=datetime.fromisoformat(meta["full_trained_at"]),
        interactions=int(meta["interactions"]),
        interactions_at_full=int(meta["interactions_at_full"]),
        seen={key: int(value) for key, value in meta["seen"].items()},
        pending_orders={
            order: (buyer, list(products))
            for order, (buyer, products) in meta["pending_orders"].items()
        },
        updates=UpdateParams(**meta["updates"]),
    )


def prune(directory: Path, keep: int = 5) -> None:
    """Remove serving versions but the `keep` newest and LATEST: an update every few
    seconds must not fill the disk. (API processes hold the version they serve in memory.)"""
    latest = latest_version(directory)
    versions = sorted(
        (folder for folder in directory.iterdir() if (folder / "model.json").exists()),
        key=lambda folder: folder.stat().st_mtime,
    )
    for folder in versions[:-keep]:
        if folder.name != latest:
            shutil.rmtree(folder, ignore_errors=True)


FULL_REQUEST = "FULL_RETRAIN_REQUESTED"


def request_full_retrain(directory: Path) -> Path:
    """Ask the recommender worker for a full training at its next tick (`eventmart analyst
    train-recs --full`): it trains in its own process, at its priority, giving way to sagas."""
    directory.mkdir(parents=True, exist_ok=True)
    request = directory / FULL_REQUEST
    request.write_text(datetime.now(UTC).isoformat() + "\n")
    return request


def state_version(directory: Path) -> str | None:
    """The model version the current state belongs to (cheap: one small file)."""
    try:
        return (directory / STATE).read_text().strip().removeprefix("state-") or None
    except FileNotFoundError:
        return None
