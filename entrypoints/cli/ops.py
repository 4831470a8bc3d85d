"""`eventmart ops`: operate the running platform (consumer lag, dead letters)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console

from entrypoints.cli import relay, users
from entrypoints.cli.shared import console
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

    if group not in consumer_groups() and group != relay.GROUP:
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

    groups = [_known_group(group)] if group else [relay.GROUP, *consumer_groups()]
    settings = get_settings()
    messages = limit if show or as_json else 0
    summaries = [relay.summary(messages)] if relay.GROUP in groups else []
    if kafka_groups := [g for g in groups if g != relay.GROUP]:
        summaries += asyncio.run(
            dead_letter_summaries(
                settings.bootstrap_servers, settings.dsn, kafka_groups, messages=messages
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
        if summary["group"] == relay.GROUP and summary["messages"]:
            relay.print_messages(summary)
        elif summary["messages"]:
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


Application = Annotated[
    str | None, typer.Option(help="relay only: the application whose outbox holds it.")
]


@dlq_app.command("show")
def dlq_show(
    group: str,
    offset: Annotated[
        int, typer.Argument(help="The DLQ offset; for the relay, the notification id.")
    ],
    partition: Annotated[int, typer.Option()] = 0,
    application: Application = None,
) -> None:
    """One parked message: headers, value and the stack trace it failed with."""
    from eventmart.operations import dead_letter

    if _known_group(group) == relay.GROUP:
        relay.show(offset, application)
        return
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


NotificationId = Annotated[
    int | None, typer.Option(help="relay only: one parked event, by its notification id.")
]
Wait = Annotated[
    float,
    typer.Option(help="relay only: wait this long for the relay to act (0: don't wait)."),
]


@dlq_app.command("redrive")
def dlq_redrive(
    group: str,
    application: Application = None,
    notification_id: NotificationId = None,
    wait: Wait = 30.0,
) -> None:
    """Re-publish the group's pending dead letters to their original topics, each once.
    For `relay`: the relay publishes its parked events again (after a fix), each followed
    by the events of its aggregate held behind it; one that fails again stays parked."""
    from eventmart.operations import redrive_dead_letters

    if _known_group(group) == relay.GROUP:
        relay.redrive(application, notification_id, wait)
        return
    settings = get_settings()
    count = asyncio.run(
        redrive_dead_letters(settings.bootstrap_servers, settings.dsn, _known_group(group))
    )
    print(json.dumps({"group": group, "redriven": count}))


@dlq_app.command("skip")
def dlq_skip(
    group: Annotated[str, typer.Argument(help="Only `relay` parks events one can skip.")],
    application: Application = None,
    notification_id: NotificationId = None,
    wait: Wait = 30.0,
) -> None:
    """Give up on one event the relay parked: it is never published, and the events of
    its aggregate held behind it follow in order. For an event no fix can make valid."""
    if group != relay.GROUP:
        console.print("[red]only the relay's dead letters are skipped; a group's stay parked[/]")
        raise typer.Exit(2)
    relay.skip(application, notification_id, wait)


@app.command("relay")
def relay_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Is the relay alive, and how old is the oldest event not yet on the bus (waiting
    or parked)? Exits 1 when /readyz would say not ready."""
    relay.status(as_json)
