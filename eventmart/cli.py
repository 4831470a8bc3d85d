"""The `eventmart` command: run the platform or any one of its processes."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from eventmart.settings import get_settings

app = typer.Typer(
    help="EventMart: an event-sourced shop on PostgreSQL, Kafka and Faust. "
    "`eventmart up` runs everything locally; the other commands run one process each.",
    no_args_is_help=True,
    add_completion=False,
)
topics_app = typer.Typer(help="The Kafka topic catalogue (kafka/topics.yaml).", no_args_is_help=True)
schemas_app = typer.Typer(help="Public event schemas.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
analyst_app = typer.Typer(help="For analysts: rebuild read models, export, replay, time travel.",
                          no_args_is_help=True)
app.add_typer(analyst_app, name="analyst")
ops_app = typer.Typer(help="Operate the running platform: consumer lag and dead letters.",
                      no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: what each group parked, and redriving it.", no_args_is_help=True)
app.add_typer(ops_app, name="ops")
ops_app.add_typer(dlq_app, name="dlq")
console = Console(stderr=True)

# The processes the stack runs; docker-compose.yml runs the same commands (a test checks it).
PROCESS_COMMANDS = ["api", "relay", "worker"]


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Seed demo users and print how to try them.")] = True,
) -> None:
    """Start PostgreSQL, Kafka, the relay, the workers and the API; Ctrl-C stops them all.

    Data lives in EVENTMART_STATE_DIR (default .eventmart/), so running it again
    resumes where it left off. DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS use external
    servers instead of the embedded ones."""
    from eventmart.stack import Stack

    Stack(get_settings()).run(seed_demo=demo)


@app.command()
def down() -> None:
    """Stop the stack that `eventmart up` started from this state directory."""
    from eventmart.stack import stop_running_stack

    if stop_running_stack(get_settings()):
        console.print("stopped")
    else:
        console.print("no running stack found")
        raise typer.Exit(1)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Defaults to EVENTMART_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Defaults to EVENTMART_API_PORT.")] = None,
    workers: Annotated[int | None, typer.Option(help="Defaults to EVENTMART_API_WORKERS.")] = None,
) -> None:
    """Run the HTTP API (uvicorn; with uvloop and httptools when installed)."""
    import uvicorn

    from api.main import create_app

    settings = get_settings()
    options: dict[str, Any] = {"host": host or settings.api_host, "port": port or settings.api_port,
                               "log_level": "warning", "access_log": False}
    workers = workers or settings.api_workers
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:  # each worker process builds its app from the same environment
        uvicorn.run("api.main:create_app", factory=True, workers=workers, **options)


@app.command()
def relay(log_level: Annotated[str, typer.Option()] = "info") -> None:
    """Run the outbox relay: every application's notification log -> its Kafka topic."""
    from workers.relay import run_relay

    _logging(log_level)
    run_relay(get_settings())


@app.command()
def worker(
    name: Annotated[str, typer.Argument(help="The worker, which is also its consumer group: "
                                             "a saga participant (inventory-saga, payments-saga, "
                                             "orders-saga, shipping-saga) or a projection "
                                             "(users-projection, …).")],
    log_level: Annotated[str, typer.Option(help="Faust log level: debug, info, warn, error.")] = "warn",
    replicas: Annotated[int, typer.Option(min=1, help="Run N child processes in the group and "
                                                      "supervise them; Ctrl-C/SIGTERM stops all.")] = 1,
) -> None:
    """Run one worker in its consumer group. N replicas split the partitions (6 per topic,
    so at most 6 replicas get work). EVENTMART_WORKER_METRICS_PORT=P serves the worker's
    Prometheus metrics on P (replica i on P+i)."""
    from eventmart.wiring import build_worker, worker_names
    from workers.consumer import run_worker

    if name not in worker_names():
        console.print(f"[red]unknown worker {name!r}[/]; choose from: {', '.join(worker_names())}")
        raise typer.Exit(2)
    if replicas > 1:
        raise typer.Exit(_supervise_replicas(name, replicas, log_level))
    from eventmart.metrics import start_worker_metrics_server

    start_worker_metrics_server()
    run_worker(build_worker(name, get_settings()), loglevel=log_level)


def _supervise_replicas(name: str, replicas: int, log_level: str) -> int:
    """Run `replicas` children of `eventmart worker NAME`, restart any that die, and stop
    them all on SIGINT/SIGTERM; returns the exit code."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    stopping = threading.Event()
    base_port = os.environ.get("EVENTMART_WORKER_METRICS_PORT")

    def spawn(index: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        if base_port:
            env["EVENTMART_WORKER_METRICS_PORT"] = str(int(base_port) + index)
        return subprocess.Popen([sys.executable, "-m", "eventmart", "worker", name,
                                 "--log-level", log_level], env=env)

    def stop(signum: int, _: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    children = [spawn(index) for index in range(replicas)]
    console.print(f"{name}: {replicas} replicas, pids {', '.join(str(c.pid) for c in children)}")
    try:
        while not stopping.wait(0.5):
            for index, child in enumerate(children):
                if child.poll() is not None:
                    console.print(f"[yellow]{name} replica {index} exited with {child.returncode}; "
                                  "restarting[/]")
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


@ops_app.command("lag")
def ops_lag(as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False) -> None:
    """Consumer lag per group and partition (committed vs end offsets) and live members."""
    from rich.table import Table

    from eventmart.broker import consumer_groups
    from eventmart.operations import consumer_group_lag

    rows = asyncio.run(consumer_group_lag(get_settings().bootstrap_servers, consumer_groups()))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("group", "topic", "partition", "committed", "end", "lag", "members")
    for row in rows:
        lag = f"[red]{row['lag']}[/]" if row["lag"] else "0"
        table.add_row(row["group"], row["topic"], str(row["partition"]), str(row["committed"]),
                      str(row["end"]), lag, str(row["members"]))
    Console(width=160).print(table)


def _known_group(group: str) -> str:
    from eventmart.broker import consumer_groups

    if group not in consumer_groups():
        console.print(f"[red]unknown consumer group {group!r}[/]; choose from: {', '.join(consumer_groups())}")
        raise typer.Exit(2)
    return group


@dlq_app.command("list")
def dlq_list(
    group: Annotated[str | None, typer.Argument(help="One consumer group; all by default.")] = None,
    show: Annotated[bool, typer.Option("--show", help="Also list the newest parked messages.")] = False,
    limit: Annotated[int, typer.Option(help="How many messages --show lists per group.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Parked, redriven and pending dead letters per consumer group."""
    from rich.table import Table

    from eventmart.broker import consumer_groups
    from eventmart.operations import dead_letter_summaries

    groups = [_known_group(group)] if group else list(consumer_groups())
    settings = get_settings()
    summaries = asyncio.run(dead_letter_summaries(settings.bootstrap_servers, settings.dsn, groups,
                                                  messages=limit if show or as_json else 0))
    if as_json:
        print(json.dumps(summaries, indent=2))
        return
    out = Console(width=200)
    counts = Table("group", "parked", "redriven", "pending")
    for summary in summaries:
        counts.add_row(summary["group"], str(summary["parked"]), str(summary["redriven"]),
                       f"[red]{summary['pending']}[/]" if summary["pending"] else "0")
    out.print(counts)
    for summary in summaries if show else []:
        if summary["messages"]:
            table = Table("offset", "key", "original", "error", "tries", "parked at", "redriven",
                          title=f"{summary['group']}.dlq")
            for m in summary["messages"]:
                table.add_row(str(m["offset"]), m["key"] or "",
                              f"{m['original_topic']}[{m['original_partition']}]@{m['original_offset']}",
                              f"{m['error_type']}: {m['error_message']}", str(m["tries"]),
                              m["parked_at"] or "", "yes" if m["redriven"] else "no")
            out.print(table)


@dlq_app.command("show")
def dlq_show(group: str, offset: int, partition: Annotated[int, typer.Option()] = 0) -> None:
    """One parked message: headers, value and the stack trace it failed with."""
    from eventmart.operations import dead_letter

    settings = get_settings()
    found = asyncio.run(dead_letter(settings.bootstrap_servers, settings.dsn, _known_group(group),
                                    offset, partition))
    if found is None:
        console.print(f"[red]{group}.dlq has no retained offset {offset}[/]")
        raise typer.Exit(1)
    print(json.dumps(found, indent=2))


@dlq_app.command("redrive")
def dlq_redrive(group: str) -> None:
    """Re-publish the group's pending dead letters to their original topics, each once."""
    from eventmart.operations import redrive_dead_letters

    settings = get_settings()
    count = asyncio.run(redrive_dead_letters(settings.bootstrap_servers, settings.dsn, _known_group(group)))
    print(json.dumps({"group": group, "redriven": count}))


@topics_app.command("create")
def topics_create() -> None:
    """Create the catalogue's missing topics (existing ones are left alone)."""
    from eventmart.broker import create_topics

    created = asyncio.run(create_topics(get_settings().bootstrap_servers))
    console.print(f"created: {', '.join(created) or 'nothing, all exist'}")


@topics_app.command("list")
def topics_list() -> None:
    """Print the catalogue."""
    from rich.table import Table

    from eventmart.broker import topic_specs

    table = Table("topic", "partitions", "key", "retention ms", "schema version")
    for spec in topic_specs():
        table.add_row(spec.name, str(spec.partitions), spec.key, str(spec.retention_ms), str(spec.schema_version))
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


def _progress() -> Any:
    """A rich progress bar that also shows events per second."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class EventsPerSecond(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed or 0:,.0f} events/s", style="cyan")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    EventsPerSecond(), TimeElapsedColumn(), console=console)


def _topics(topics: str | None) -> list[str]:
    from eventmart.broker import topic_specs

    if topics:
        return [topic.strip() for topic in topics.split(",") if topic.strip()]
    return [spec.name for spec in topic_specs() if spec.name.endswith(".events")]


@analyst_app.command("rebuild")
def analyst_rebuild(
    model: Annotated[str, typer.Argument(help="users, catalog, orders (or the group name).")],
) -> None:
    """Rebuild a read model from offset zero into shadow tables, then swap it in atomically."""
    from projections.rebuild import find_model, rebuild

    try:
        read_model = find_model(model)
    except KeyError as error:
        console.print(f"[red]{error.args[0]}[/]")
        raise typer.Exit(2) from error
    settings = get_settings()
    with _progress() as progress:
        task = progress.add_task(f"rebuilding {read_model.group}", total=None)
        job = asyncio.run(rebuild(read_model, settings.dsn, settings.bootstrap_servers,
                                  on_progress=lambda done, total: progress.update(task, completed=done, total=total)))
    console.print(f"swapped in {read_model.group}: {job.read:,} events read, {job.applied:,} applied, "
                  f"{job.malformed} malformed skipped, {job.rate:,.0f} events/s")
    console.print("phases: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in job.phases.items()))


@analyst_app.command("export")
def analyst_export(
    out: Annotated[Path, typer.Option(help="Directory for one file per topic.")] = Path("exports"),
    topics: Annotated[str | None, typer.Option(help="Comma-separated; default every *.events topic.")] = None,
    types: Annotated[str | None, typer.Option(help="Comma-separated event types; default all.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time, inclusive (occurred_at).")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time, exclusive (occurred_at).")] = None,
    output_format: Annotated[str, typer.Option("--format", help="parquet or jsonl.")] = "parquet",
) -> None:
    """Export the event log to Parquet or JSON Lines (envelope columns, payload as JSON)."""
    from eventmart.export import EventFilter, export_events, parse_time

    chosen = frozenset(t.strip() for t in types.split(",") if t.strip()) if types else frozenset()
    event_filter = EventFilter(chosen, parse_time(since), parse_time(until))
    settings = get_settings()
    with _progress() as progress:
        task = progress.add_task("exporting", total=None)
        result = asyncio.run(export_events(
            settings.bootstrap_servers, _topics(topics), out, event_filter=event_filter, fmt=output_format,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total)))
    console.print(f"{result.written:,} of {result.read:,} events written "
                  f"({result.malformed} malformed skipped): {', '.join(map(str, result.paths))}")


@analyst_app.command("replay")
def analyst_replay(
    group: Annotated[str, typer.Option(help="A NEW consumer group id (live groups are refused).")],
    topics: Annotated[str | None, typer.Option(help="Comma-separated; default every *.events topic.")] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at offset zero, not where the group left off.")] = False,
) -> None:
    """Replay topics into a new consumer group and count events by type."""
    from rich.table import Table

    from eventmart.replay import LiveGroup, replay

    settings = get_settings()
    with _progress() as progress:
        task = progress.add_task(f"replaying into {group}", total=None)
        try:
            result = asyncio.run(replay(
                settings.bootstrap_servers, group, _topics(topics), from_beginning=from_beginning,
                on_progress=lambda done, total, _: progress.update(task, completed=done, total=total)))
        except LiveGroup as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(2) from error
    table = Table("event type", "count")
    for event_type, count in sorted(result.counts.items()):
        table.add_row(event_type, f"{count:,}")
    Console().print(table)
    console.print(f"{result.read:,} events, {result.malformed} malformed; offsets committed for {group}")


@analyst_app.command("as-of")
def analyst_as_of(
    kind: Annotated[str, typer.Argument(help="order, stock (by product id) or user.")],
    known_id: Annotated[str, typer.Argument(metavar="ID")],
    at: Annotated[str, typer.Option(help="ISO time; without a zone, UTC.")],
) -> None:
    """The state of an order, a product's stock or a user as of a time, from the event store."""
    from uuid import UUID

    from eventmart.export import parse_time
    from eventmart.timetravel import KINDS, NotYetExisting, application_for, as_of

    if kind not in KINDS:
        console.print(f"[red]kind must be one of {', '.join(KINDS)}[/]")
        raise typer.Exit(2)
    moment = parse_time(at)
    assert moment is not None
    try:
        state = as_of(application_for(kind, get_settings()), kind, UUID(known_id), moment)
    except NotYetExisting as error:
        console.print(f"[yellow]{error}[/]")
        raise typer.Exit(1) from error
    print(json.dumps(state, indent=2, default=str))


def main() -> None:
    app()
