"""The saga's worker processes, started once per session beside the relay; the API
served by uvicorn as `eventmart api` serves it; the CLI; the API's patience for the load
tests; for tests that run consumer groups in their own process, an event loop thread and
a throwaway topic."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from entrypoints.cli import app as cli_app
from entrypoints.stack import Infrastructure
from eventmart.settings import Settings, get_settings
from tests.integration.consumer_support import Loop, make_topic
from tests.shop import Customer, Seller


@pytest.fixture(scope="module")
def seller(api: TestClient) -> Seller:
    """A registered seller with a token, one per test module."""
    return Seller(api)


@pytest.fixture(scope="module")
def customer(api: TestClient) -> Customer:
    """A registered customer with a token, one per test module."""
    return Customer(api)


@pytest.fixture()
def eventmart_cli(settings: Settings) -> Iterator[Callable[..., Any]]:
    """Runs `eventmart ...` in-process against the test broker and database, and checks
    its exit code (0 unless told otherwise); `env` adds variables."""
    runner = CliRunner()
    base = {
        "DATABASE_URL": settings.dsn,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "EVENTMART_STATE_DIR": str(settings.state_dir),
        "EVENTMART_BCRYPT_ROUNDS": "4",
    }

    def run(*args: str, exit_code: int = 0, env: dict[str, str] | None = None) -> Any:
        get_settings.cache_clear()
        try:
            result = runner.invoke(cli_app, list(args), env={**base, **(env or {})})
        finally:
            get_settings.cache_clear()
        assert result.exit_code == exit_code, f"{result.output}\n{result.exception!r}"
        return result

    yield run


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


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


@pytest.fixture
def topic(infrastructure: Infrastructure, settings: Settings) -> str:
    return make_topic(settings, "test.consumer")
