"""The saga's worker processes, started once per session beside the relay; the API's
patience for the load tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from eventmart.wiring import SAGA_PARTICIPANTS
from tests.support import WorkerProcess, child_env, stop_all, wait_for_groups_to_join


@pytest.fixture(scope="session")
def saga_workers(
    settings: Settings, worker_logs: Path, relay: WorkerProcess
) -> Iterator[dict[str, WorkerProcess]]:
    workers = {
        name: WorkerProcess(name, ["worker", name], child_env(settings), worker_logs).start()
        for name in SAGA_PARTICIPANTS
    }
    # Started is not consuming: on a loaded machine a worker takes tens of seconds to join,
    # and an order placed before that would meet its payment deadline first.
    wait_for_groups_to_join(settings.bootstrap_servers, SAGA_PARTICIPANTS, timeout=180)
    yield workers
    stop_all(list(workers.values()))


# The payment deadline of orders the load tests place. Long enough that no worker kill or
# rebalance on a busy machine delays a payment past it: there, a paid order cancelled for
# timing out can only mean a lost event.
LOAD_TEST_PAYMENT_TIMEOUT = 60


@pytest.fixture(scope="module")
def patient_api(api: TestClient) -> Iterator[TestClient]:
    """The API, placing orders with LOAD_TEST_PAYMENT_TIMEOUT until the module ends."""
    services = api.app.state.services  # type: ignore[attr-defined]
    usual = services.settings
    services.settings = usual.model_copy(
        update={"payment_timeout_seconds": LOAD_TEST_PAYMENT_TIMEOUT}
    )
    yield api
    services.settings = usual
