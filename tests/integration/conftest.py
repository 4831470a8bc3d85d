"""The saga's worker processes, started once per session beside the relay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventmart.settings import Settings
from eventmart.wiring import SAGA_PARTICIPANTS
from tests.support import WorkerProcess, child_env, stop_all


@pytest.fixture(scope="session")
def saga_workers(
    settings: Settings, worker_logs: Path, relay: WorkerProcess
) -> Iterator[dict[str, WorkerProcess]]:
    workers = {
        name: WorkerProcess(name, ["worker", name], child_env(settings), worker_logs).start()
        for name in SAGA_PARTICIPANTS
    }
    yield workers
    stop_all(list(workers.values()))
