"""Session fixtures: a real PostgreSQL and a real Kafka (embedded, or DATABASE_URL and
KAFKA_BOOTSTRAP_SERVERS), started once; worker processes; the API.

Nothing here skips: if the broker or the database cannot be started, every test
that needs them errors, and the run fails (CI=true or not)."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from entrypoints.stack import Infrastructure
from eventmart.settings import PROJECT_ROOT, Settings
from eventmart.wiring import SAGA_PARTICIPANTS
from tests.otlp import OtlpReceiver
from tests.support import (
    WorkerProcess,
    child_env,
    free_port,
    ports_free,
    stop_all,
    wait_for_groups_to_join,
    wait_until,
)


def _slot_ports(slot: int) -> tuple[int, int, int]:
    """PostgreSQL, Kafka and the Kafka controller ports of a test slot."""
    return 55432 + 20 * slot, 19092 + 20 * slot, 19093 + 20 * slot


def _choose_slot() -> int:
    """EVENTMART_TEST_SLOT=N runs a suite beside another (other ports, other state). Unset, the
    first slot whose ports are free is taken, so a second clone's run on the same machine does
    not fail on a port the first holds."""
    if "EVENTMART_TEST_SLOT" in os.environ:
        return int(os.environ["EVENTMART_TEST_SLOT"])
    for slot in range(16):
        if ports_free(*_slot_ports(slot)):
            return slot
    raise RuntimeError(
        "no test slot has its PostgreSQL and Kafka ports free (55432 + 20n, 19092 + 20n)"
    )


SLOT = _choose_slot()
TEST_STATE = PROJECT_ROOT / ".eventmart" / (f"test-{SLOT}" if SLOT else "test")


def make_test_settings(state_dir: Path = TEST_STATE, **overrides: object) -> Settings:
    postgres_port, kafka_port, controller_port = _slot_ports(SLOT)
    values: dict[str, object] = {
        "env": "test",
        "state_dir": state_dir,
        "postgres_port": postgres_port,
        "database_name": "eventmart_test",
        "kafka_port": kafka_port,
        "kafka_controller_port": controller_port,
        "bcrypt_rounds": 4,  # 12 in production; the tests check behaviour, not cost
        # Saga clocks shrunk so whole orders run in seconds (production: minutes to days).
        "payment_timeout_seconds": 20,
        # Longer than any payment deadline a test sets (the load tests' too): holds of
        # unpaid orders are released when the deadline cancels them, not by expiry.
        "reservation_ttl_seconds": 300,
        "carrier_step_seconds": 1.5,
        "auto_complete_seconds": 3,
        "saga_timer_seconds": 0.25,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return make_test_settings()


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    """A trace receiver every process of the suite exports to (docs/tracing.md): children
    through child_env, which copies this environment, the in-process API through it too."""
    receiver = OtlpReceiver().start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "500"  # ms; the SDK's default is 5 s
    try:
        yield receiver
    finally:
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        receiver.stop()


@pytest.fixture(scope="session")
def infrastructure(settings: Settings, otlp: OtlpReceiver) -> Iterator[Infrastructure]:
    """A fresh embedded database and Kafka log per session (external ones are used as they are)."""
    infra = Infrastructure(settings)
    try:
        infra.start(durable=False, fresh=True)
        yield infra
    finally:
        infra.stop()


@pytest.fixture(scope="session")
def worker_logs(infrastructure: Infrastructure) -> Path:
    path = TEST_STATE / "logs"
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.log"):
        old.unlink()
    return path


def _worker(name: str, args: list[str], settings: Settings, logs: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(name, args, child_env(settings), logs).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def relay(settings: Settings, worker_logs: Path) -> Iterator[WorkerProcess]:
    yield from _worker("relay", ["relay"], settings, worker_logs)


@pytest.fixture(scope="session")
def users_projection(settings: Settings, worker_logs: Path) -> Iterator[WorkerProcess]:
    yield from _worker("users-projection", ["worker", "users-projection"], settings, worker_logs)


@pytest.fixture(scope="session")
def api(
    infrastructure: Infrastructure,
    settings: Settings,
    relay: WorkerProcess,
    users_projection: WorkerProcess,
) -> Iterator[TestClient]:
    """The HTTP API in-process (ASGI), with the relay and the users projection running;
    composed with the operations console as `eventmart api` serves it."""
    from entrypoints.console import create_app

    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture()
def db(infrastructure: Infrastructure, settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def catalog_projection(settings: Settings, worker_logs: Path) -> Iterator[WorkerProcess]:
    yield from _worker(
        "catalog-projection", ["worker", "catalog-projection"], settings, worker_logs
    )


@pytest.fixture(scope="session")
def orders_projection(settings: Settings, worker_logs: Path) -> Iterator[WorkerProcess]:
    yield from _worker("orders-projection", ["worker", "orders-projection"], settings, worker_logs)


@pytest.fixture(scope="session")
def sales_projection(settings: Settings, worker_logs: Path) -> Iterator[WorkerProcess]:
    yield from _worker("sales-projection", ["worker", "sales-projection"], settings, worker_logs)


REVIEW_GROUPS = ["purchases", "reviews-projection", "ratings-projection", "review-classifier"]


@pytest.fixture(scope="session")
def review_workers(settings: Settings, worker_logs: Path) -> Iterator[WorkerProcess]:
    """The reviews context's groups, hosted by one worker process."""
    yield from _worker("reviews", ["worker", *REVIEW_GROUPS], settings, worker_logs)


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


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def api_server(
    settings: Settings, worker_logs: Path, relay: WorkerProcess, users_projection: WorkerProcess
) -> Iterator[str]:
    """The base URL of a real `eventmart api` process (uvicorn, httptools, the head limits):
    what tests of the wire itself need, which the in-process client cannot show."""
    port = free_port()
    server = WorkerProcess(
        "api-server", ["api", "--port", str(port)], child_env(settings), worker_logs
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _answers(url) or not server.running,
            timeout=60,
            message="the API server to answer",
        )
        assert server.running, server.log_tail()
        yield url
    finally:
        server.stop()
