"""The `eventmart` command: run the platform or any one of its processes.

Operators' commands are in `entrypoints.cli.ops`, analysts' in `entrypoints.cli.analyst`."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from entrypoints.cli import analyst, demo, ops
from entrypoints.cli.shared import console
from eventmart.settings import Settings, get_settings

app = typer.Typer(
    help="EventMart: an event-sourced shop on PostgreSQL, Kafka and Faust. "
    "`eventmart up` runs everything locally; the other commands run one process each.",
    no_args_is_help=True,
    add_completion=False,
)
topics_app = typer.Typer(
    help="The Kafka topic catalogue (kafka/topics.yaml).", no_args_is_help=True
)
schemas_app = typer.Typer(help="Public event schemas.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(analyst.app, name="analyst")
app.add_typer(ops.app, name="ops")
app.add_typer(demo.app, name="demo")

# The processes the stack runs; docker-compose.yml runs the same commands (a test checks it).
PROCESS_COMMANDS = ["api", "relay", "worker"]


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Seed demo users and print how to try them.")] = True,
    workers: Annotated[
        str | None,
        typer.Option(
            help="The worker processes, separated by spaces, each a comma-separated list of "
            "consumer groups or sets: `sagas projections classifiers recommender` (the default), `all` (one process), "
            "`inventory-saga,payments-saga orders-saga …`. Defaults to "
            "EVENTMART_WORKER_PROCESSES.",
            show_default=False,
        ),
    ] = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            help="Kafka nodes to run (1, or 3 for a local cluster: replication 3, min ISR 2). "
            "Defaults to EVENTMART_KAFKA_BROKERS.",
            show_default=False,
        ),
    ] = None,
    tracing: Annotated[
        bool,
        typer.Option(
            help="Also run a local Jaeger (built once with go) and export every process's "
            "spans to it over OTLP; its UI address is printed with the others."
        ),
    ] = False,
) -> None:
    """Start PostgreSQL, Kafka, the relay, the workers and the API, and keep them running
    (a process that dies is restarted); Ctrl-C stops them all.

    Data lives in EVENTMART_STATE_DIR (default .eventmart/), so running it again
    resumes where it left off. DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS use external
    servers instead of the embedded ones."""
    from entrypoints.jaeger import JaegerUnavailable
    from entrypoints.stack import Stack
    from eventmart.groups import UnknownGroup

    if brokers is not None:
        import os

        from pydantic import ValidationError

        os.environ["EVENTMART_KAFKA_BROKERS"] = str(brokers)  # the children read it too
        try:
            get_settings()
        except ValidationError as error:
            console.print(f"[red]{error.errors()[0]['msg']}[/]")
            raise typer.Exit(2) from error
    settings = get_settings()
    if workers is not None:
        settings = settings.model_copy(update={"worker_processes": workers})
    try:
        stack = Stack(settings, tracing=tracing)
    except UnknownGroup as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    try:
        stack.run(seed_demo=demo)
    except JaegerUnavailable as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error


@app.command()
def down() -> None:
    """Stop the stack that `eventmart up` started from this state directory."""
    from entrypoints.stack import stop_running_stack

    if stop_running_stack(get_settings()):
        console.print("stopped")
    else:
        console.print("no running stack found")
        raise typer.Exit(1)


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="The supervisor's state as JSON.")
    ] = False,
) -> None:
    """Each process `eventmart up` runs from this state directory: pid, uptime, restarts
    and health. Exit 1: no stack runs here; 3: something is down or crash-looping."""
    from rich.table import Table

    from eventmart.supervision import read_state, trouble

    state = read_state(get_settings().state_dir)
    if state is None:
        console.print("no running stack found (`eventmart up` starts one)")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(state, indent=1))
    else:
        table = Table("process", "pid", "uptime", "restarts", "last min", "state", "health")
        for process in state["processes"]:
            uptime = process["uptime_seconds"]
            table.add_row(
                process["name"],
                str(process["pid"] or "-"),
                "-" if uptime is None else _duration(uptime),
                str(process["restarts"]),
                str(process["restarts_last_minute"]),
                process["state"],
                process["health"],
            )
        Console().print(table)
    problems = trouble(state)
    if problems:
        console.print(f"[red]not all up: {', '.join(problems)}[/]")
        raise typer.Exit(3)


def _duration(seconds: float) -> str:
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h{minute:02d}m{second:02d}s" if hours else f"{minute}m{second:02d}s"


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Defaults to EVENTMART_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Defaults to EVENTMART_API_PORT.")] = None,
    workers: Annotated[int | None, typer.Option(help="Defaults to EVENTMART_API_WORKERS.")] = None,
) -> None:
    """Run the HTTP API and the operations console at /console (uvicorn; with uvloop and
    httptools when installed)."""
    import uvicorn

    from entrypoints.console import create_app

    settings = get_settings()
    options = api_options(settings, host, port)
    workers = workers or settings.api_workers
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:  # each worker process builds its app from the same environment
        uvicorn.run("entrypoints.console:create_app", factory=True, workers=workers, **options)


def api_options(settings: Settings, host: str | None, port: int | None) -> dict[str, Any]:
    """uvicorn's options for the API process."""
    from api.server import uvicorn_options

    return {
        "host": host or settings.api_host,
        "port": port or settings.api_port,
        **uvicorn_options(settings),
        # uvicorn's default (5 s) is shorter than most clients' idle pools: a client sending
        # on a connection the server is closing meets a reset. Shedding is ShedLoad's.
        "timeout_keep_alive": settings.api_keepalive_seconds,
    }


@app.command()
def relay(log_level: Annotated[str, typer.Option()] = "info") -> None:
    """Run the outbox relay: every application's notification log -> its Kafka topic."""
    from workers.relay import run_relay

    _logging(log_level)
    run_relay(get_settings())


@app.command()
def worker(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Consumer groups to host in this process, or sets of them: `sagas` (the five "
            "saga participants), `projections` (the read models), `all`; or single groups "
            "(inventory-saga, orders-projection, …). `eventmart worker --list` names them.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="Faust log level: debug, info, warn, error.")
    ] = "warn",
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            help="Run N child processes, each hosting the same groups, and supervise them; "
            "Ctrl-C/SIGTERM stops all.",
        ),
    ] = 1,
    list_groups: Annotated[
        bool, typer.Option("--list", help="List the consumer groups and sets, then exit.")
    ] = False,
) -> None:
    """Run consumer groups in one process, each with its own consumer, offsets, tracking,
    dead-letter topic, retries and metrics. N replicas split each group's partitions (6 per
    topic, so at most 6 replicas of a group get work). EVENTMART_WORKER_METRICS_PORT=P serves
    every hosted group's Prometheus metrics on P (replica i on P+i)."""
    from eventmart.groups import UnknownGroup, resolve

    if list_groups:
        _print_groups()
        return
    if not names:
        console.print("[red]name at least one consumer group or set[/] (see --list)")
        raise typer.Exit(2)
    try:
        resolve(names)  # refuse a typo here, not in each replica
    except UnknownGroup as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    if replicas > 1:
        raise typer.Exit(_supervise_replicas(names, replicas, log_level))
    from eventmart.metrics import start_worker_metrics_server
    from workers.consumer import run_worker
    from workers.host import build_host

    start_worker_metrics_server()
    run_worker(build_host(names, get_settings()), loglevel=log_level)


def _print_groups() -> None:
    from rich.table import Table

    from eventmart.groups import GROUPS
    from workers.groups import topics_of

    table = Table("group", "topics", "database of", "sets")
    for spec in GROUPS:
        table.add_row(
            spec.name, ", ".join(topics_of(spec)), spec.context, ", ".join(sorted(spec.sets))
        )
    Console().print(table)
    Console().print("`all` is every group.")


def _supervise_replicas(names: list[str], replicas: int, log_level: str) -> int:
    """Run `replicas` children of `eventmart worker NAMES…`, restart any that die, and stop
    them all on SIGINT/SIGTERM; returns the exit code."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    stopping = threading.Event()
    base_port = os.environ.get("EVENTMART_WORKER_METRICS_PORT")
    label = " ".join(names)

    def spawn(index: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        if base_port:
            env["EVENTMART_WORKER_METRICS_PORT"] = str(int(base_port) + index)
        return subprocess.Popen(
            [sys.executable, "-m", "entrypoints", "worker", *names, "--log-level", log_level],
            env=env,
        )

    def stop(signum: int, _: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    children = [spawn(index) for index in range(replicas)]
    console.print(f"{label}: {replicas} replicas, pids {', '.join(str(c.pid) for c in children)}")
    try:
        while not stopping.wait(0.5):
            for index, child in enumerate(children):
                if child.poll() is not None:
                    console.print(
                        f"[yellow]{label} replica {index} exited with {child.returncode}; "
                        "restarting[/]"
                    )
                    children[index] = spawn(index)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


@app.command()
def prepare(
    topics: Annotated[
        bool,
        typer.Option(
            help="Also create the catalogue's missing topics; --no-topics where an operator "
            "makes them (Strimzi's KafkaTopics, deploy/k8s/)."
        ),
    ] = True,
) -> None:
    """Create every database's tables (and the topics): what `up` does before it starts a
    process, for stacks that `up` does not run (docker-compose.yml, deploy/k8s/).
    Idempotent; runs at the same time wait for each other."""
    from entrypoints.stack import prepare_database

    settings = get_settings()
    if topics:
        from eventmart.broker import create_topics

        created = asyncio.run(create_topics(settings.bootstrap_servers))
        console.print(f"topics created: {', '.join(created) or 'nothing, all exist'}")
    prepare_database(settings)
    console.print("databases prepared")


@topics_app.command("create")
def topics_create() -> None:
    """Create the catalogue's missing topics (existing ones are left alone)."""
    from eventmart.broker import create_topics

    settings = get_settings()
    created = asyncio.run(
        create_topics(settings.bootstrap_servers, mode=settings.kafka_replication_mode)
    )
    console.print(f"created: {', '.join(created) or 'nothing, all exist'}")


@topics_app.command("list")
def topics_list() -> None:
    """Print the catalogue."""
    from rich.table import Table

    from eventmart.broker import topic_specs

    mode = get_settings().kafka_replication_mode
    table = Table(
        "topic", "partitions", f"replicas/min ISR ({mode})", "key", "retention ms", "schema version"
    )
    for spec in topic_specs(mode):
        table.add_row(
            spec.name,
            str(spec.partitions),
            f"{spec.replication_factor}/{spec.min_insync_replicas}",
            spec.key,
            str(spec.retention_ms),
            str(spec.schema_version),
        )
    Console().print(table)


@schemas_app.command("export")
def schemas_export(
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Export the envelope's and every event type's JSON Schema, with examples."""
    from eventmart.contracts import json_schemas

    text = json.dumps(json_schemas(), indent=2, default=str)
    if out is None:
        print(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


def main() -> None:
    app()
