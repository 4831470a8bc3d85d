"""`eventmart analyst`: rebuild read models, export, replay, time travel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from eventmart.cli.shared import console, event_topics, progress_bar
from eventmart.settings import get_settings

app = typer.Typer(
    help="For analysts: rebuild read models, export, replay, time travel.", no_args_is_help=True
)


@app.command("rebuild")
def analyst_rebuild(
    model: Annotated[str, typer.Argument(help="users, catalog, orders (or the group name).")],
) -> None:
    """Rebuild a read model from offset zero into shadow tables, then swap it in atomically."""
    from eventmart.groups import database_of
    from projections.rebuild import find_model, rebuild

    try:
        read_model = find_model(model)
    except KeyError as error:
        console.print(f"[red]{error.args[0]}[/]")
        raise typer.Exit(2) from error
    settings = get_settings()
    with progress_bar() as progress:
        task = progress.add_task(f"rebuilding {read_model.group}", total=None)
        job = asyncio.run(
            rebuild(
                read_model,
                database_of(read_model.group, settings),
                settings.bootstrap_servers,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        )
    console.print(
        f"swapped in {read_model.group}: {job.read:,} events read, {job.applied:,} applied, "
        f"{job.malformed} malformed skipped, {job.rate:,.0f} events/s"
    )
    console.print(
        "phases: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in job.phases.items())
    )


@app.command("export")
def analyst_export(
    out: Annotated[Path, typer.Option(help="Directory for one file per topic.")] = Path("exports"),
    topics: Annotated[
        str | None, typer.Option(help="Comma-separated; default every *.events topic.")
    ] = None,
    types: Annotated[
        str | None, typer.Option(help="Comma-separated event types; default all.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="ISO time, inclusive (occurred_at).")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time, exclusive (occurred_at).")] = None,
    output_format: Annotated[str, typer.Option("--format", help="parquet or jsonl.")] = "parquet",
) -> None:
    """Export the event log to Parquet or JSON Lines (envelope columns, payload as JSON)."""
    from eventmart.export import EventFilter, export_events, parse_time

    chosen = frozenset(t.strip() for t in types.split(",") if t.strip()) if types else frozenset()
    event_filter = EventFilter(chosen, parse_time(since), parse_time(until))
    settings = get_settings()
    with progress_bar() as progress:
        task = progress.add_task("exporting", total=None)
        result = asyncio.run(
            export_events(
                settings.bootstrap_servers,
                event_topics(topics),
                out,
                event_filter=event_filter,
                fmt=output_format,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        )
    console.print(
        f"{result.written:,} of {result.read:,} events written "
        f"({result.malformed} malformed skipped): {', '.join(map(str, result.paths))}"
    )


@app.command("replay")
def analyst_replay(
    group: Annotated[str, typer.Option(help="A NEW consumer group id (live groups are refused).")],
    topics: Annotated[
        str | None, typer.Option(help="Comma-separated; default every *.events topic.")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option(help="Start at offset zero, not where the group left off.")
    ] = False,
) -> None:
    """Replay topics into a new consumer group and count events by type."""
    from rich.table import Table

    from eventmart.replay import LiveGroup, replay

    settings = get_settings()
    with progress_bar() as progress:
        task = progress.add_task(f"replaying into {group}", total=None)
        try:
            result = asyncio.run(
                replay(
                    settings.bootstrap_servers,
                    group,
                    event_topics(topics),
                    from_beginning=from_beginning,
                    on_progress=lambda done, total, _: progress.update(
                        task, completed=done, total=total
                    ),
                )
            )
        except LiveGroup as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(2) from error
    table = Table("event type", "count")
    for event_type, count in sorted(result.counts.items()):
        table.add_row(event_type, f"{count:,}")
    Console().print(table)
    console.print(
        f"{result.read:,} events, {result.malformed} malformed; offsets committed for {group}"
    )


@app.command("as-of")
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
