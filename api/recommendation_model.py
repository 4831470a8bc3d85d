"""The recommender model this API process serves: the newest stored one, switched without
a restart."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from eventmart.ml import store
from eventmart.ml.serving import ServingModel

log = logging.getLogger("eventmart.api.recommendations")


class ModelHolder:
    """The model this process serves: the store's LATEST version, looked for every
    `reload_seconds` and loaded off the event loop; requests read `current` (one reference
    swap, so a request scores with one model from start to end)."""

    def __init__(self, directory: Path, reload_seconds: float) -> None:
        self.directory = directory
        self.reload_seconds = reload_seconds
        self.current: ServingModel | None = None
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> bool:
        """Load LATEST if it is not the model served; True if the model changed."""
        latest = store.latest_version(self.directory)
        if latest is None or (self.current is not None and self.current.version == latest):
            return False
        try:
            self.current = store.load(self.directory, latest)
        except (store.NoModel, ValueError, OSError) as error:
            log.warning("recommender model %s not loaded: %s", latest, error)
            return False
        log.info("serving recommender model %s", latest)
        return True

    async def start(self) -> None:
        await asyncio.to_thread(self.refresh)
        self._task = asyncio.create_task(self._watch(), name="recommender-model-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_seconds)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("looking for a new recommender model failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
