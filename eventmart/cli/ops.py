"""`eventmart ops`: operate the running platform (consumer lag, dead letters)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console

from eventmart.cli import users
from eventmart.cli.shared import console
from eventmart.settings import get_settings

app = typer.Typer(
    help="Operate the running platform: consumer lag, dead letters and users.",
    no_args_is_help=True,
)
dlq_app = typer.Typer(
    help="Dead letters: what each group parked, and redriving it.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(users.app, name="users")


@app.command("lag")
def ops_lag(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
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
        table.add_row(
            row["group"],
            row["topic"],
            str(row["partition"]),
            str(row["committed"]),
            str(row["end"]),
            lag,
            str(row["members"]),
        )
    Console(width=160).print(table)


def _known_group(group: str) -> str:
    from eventmart.broker import consumer_groups

    if group not in consumer_groups():
        console.print(
            f"[red]unknown consumer group {group!r}[/]; choose from: {', '.join(consumer_groups())}"
        )
        raise typer.Exit(2)
    return group


@dlq_app.command("list")
def dlq_list(
    group: Annotated[str | None, typer.Argument(help="One consumer group; all by default.")] = None,
    show: Annotated[
        bool, typer.Option("--show", help="Also list the newest parked messages.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many messages --show lists per group.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Parked, redriven and pending dead letters per consumer group."""
    from rich.table import Table

    from eventmart.broker import consumer_groups
    from eventmart.operations import dead_letter_summaries

    groups = [_known_group(group)] if group else list(consumer_groups())
    settings = get_settings()
    summaries = asyncio.run(
        dead_letter_summaries(
            settings.bootstrap_servers,
            settings.dsn,
            groups,
            messages=limit if show or as_json else 0,
        )
    )
    if as_json:
        print(json.dumps(summaries, indent=2))
        return
    out = Console(width=200)
    counts = Table("group", "parked", "redriven", "pending")
    for summary in summaries:
        counts.add_row(
            summary["group"],
            str(summary["parked"]),
            str(summary["redriven"]),
            f"[red]{summary['pending']}[/]" if summary["pending"] else "0",
        )
    out.print(counts)
    for summary in summaries if show else []:
        if summary["messages"]:
            table = Table(
                "offset",
                "key",
                "original",
                "error",
                "tries",
                "parked at",
                "redriven",
                title=f"{summary['group']}.dlq",
            )
            for m in summary["messages"]:
                table.add_row(
                    str(m["offset"]),
                    m["key"] or "",
                    f"{m['original_topic']}[{m['original_partition']}]@{m['original_offset']}",
                    f"{m['error_type']}: {m['error_message']}",
                    str(m["tries"]),
                    m["parked_at"] or "",
                    "yes" if m["redriven"] else "no",
                )
            out.print(table)


@dlq_app.command("show")
def dlq_show(group: str, offset: int, partition: Annotated[int, typer.Option()] = 0) -> None:
    """One parked message: headers, value and the stack trace it failed with."""
    from eventmart.operations import dead_letter

    settings = get_settings()
    found = asyncio.run(
        dead_letter(
            settings.bootstrap_servers, settings.dsn, _known_group(group), offset, partition
        )
    )
    if found is None:
        console.print(f"[red]{group}.dlq has no retained offset {offset}[/]")
        raise typer.Exit(1)
    print(json.dumps(found, indent=2))


@dlq_app.command("redrive")
def dlq_redrive(group: str) -> None:
    """Re-publish the group's pending dead letters to their original topics, each once."""
    from eventmart.operations import redrive_dead_letters

    settings = get_settings()
    count = asyncio.run(
        redrive_dead_letters(settings.bootstrap_servers, settings.dsn, _known_group(group))
    )
    print(json.dumps({"group": group, "redriven": count}))
