"""The saga's worker processes, started once per session beside the relay; and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eventmart.cli import app as cli_app
from eventmart.settings import Settings, get_settings
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
