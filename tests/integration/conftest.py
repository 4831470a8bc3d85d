"""The saga's worker processes, started once per session beside the relay; for tests that
run consumer groups in their own process, an event loop thread and a throwaway topic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventmart.settings import Settings
from eventmart.stack import Infrastructure
from eventmart.wiring import SAGA_PARTICIPANTS
from tests.integration.consumer_support import Loop, make_topic
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


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


@pytest.fixture
def topic(infrastructure: Infrastructure, settings: Settings) -> str:
    return make_topic(settings, "test.consumer")
