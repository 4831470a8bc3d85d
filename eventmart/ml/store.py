"""Serving models on disk, one folder per version, and a LATEST file naming the current one:

    <directory>/<version>/arrays.npz   the embeddings, biases, popularity, histories
    <directory>/<version>/model.json   ids, names, categories, vocabulary, what it saw
    <directory>/LATEST                 the version to serve

A version's folder is written beside its final name and renamed into place, and LATEST is
replaced atomically after it, so a reader polling `latest_version` never sees half a model.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np

from eventmart.ml.features import ContentFeatures
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
