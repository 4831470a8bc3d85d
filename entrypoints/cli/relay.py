"""The relay's side of `eventmart ops`: its dead letters (group `relay` of `ops dlq`),
redriving and skipping them, and `ops relay`: is it alive, how far behind is it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from entrypoints.cli.shared import console
from eventmart.settings import get_settings

GROUP = "relay"  # eventmart.relay_operations.RELAY_GROUP, without importing psycopg at startup


def _connected(work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
    with psycopg.connect(get_settings().dsn, autocommit=True) as conn:
        return work(conn)


def summary(messages: int) -> dict[str, Any]:
    from eventmart.relay_operations import dead_letter_summary

    return _connected(lambda conn: dead_letter_summary(conn, messages=messages))  # type: ignore[no-any-return]


def print_messages(summary: dict[str, Any]) -> None:
    table = Table(
        "application",
        "notification",
        "aggregate",
        "version",
        "error",
        "tries",
        "status",
        title="relay (events the relay could not publish)",
    )
    for m in summary["messages"]:
        error = f"{m['error_type']}: {m['error_message']}"
        table.add_row(
            m["application"],
            str(m["notification_id"]),
            m["aggregate_id"],
            str(m["aggregate_version"]),
            error,
            str(m["tries"]),
            m["status"] + (f" ({m['requested']} asked)" if m["requested"] else ""),
        )
    Console(width=200).print(table)


def show(notification_id: int, application: str | None) -> None:
    from eventmart.relay_operations import dead_letter

    if application is None:
        console.print("[red]--application is needed for the relay (its outbox)[/]")
        raise typer.Exit(2)
    found = _connected(lambda conn: dead_letter(conn, application, notification_id))
    if found is None:
        console.print(
            f"[red]the relay parked no notification {notification_id} of {application}[/]"
        )
        raise typer.Exit(1)
    print(json.dumps(found, indent=2))


def redrive(application: str | None, notification_id: int | None, wait: float) -> None:
    from eventmart.relay_operations import request_redrive

    count = _connected(lambda conn: request_redrive(conn, application, notification_id))
    _wait_for_the_relay(wait)
    print(json.dumps({"group": "relay", "redriven": count}))


def skip(application: str | None, notification_id: int | None, wait: float) -> None:
    from eventmart.relay_operations import request_skip

    if application is None or notification_id is None:
        console.print("[red]skip needs --application and --notification-id (one event)[/]")
        raise typer.Exit(2)
    count = _connected(lambda conn: request_skip(conn, application, notification_id))
    if count == 0:
        console.print(f"[red]no parked notification {notification_id} of {application}[/]")
        raise typer.Exit(1)
    _wait_for_the_relay(wait)
    print(json.dumps({"group": "relay", "skipped": count}))


def _wait_for_the_relay(seconds: float) -> None:
    """Until the relay has acted on every request (it does within a poll interval)."""
    from eventmart.relay_operations import requests_outstanding

    deadline = time.monotonic() + seconds
    while seconds and _connected(requests_outstanding):
        if time.monotonic() > deadline:
            console.print("[yellow]the relay has not acted yet; is it running?[/]")
            raise typer.Exit(1)
        time.sleep(0.2)


def status(as_json: bool) -> None:
    from eventmart.relay_operations import relay_health
    from eventmart.wiring import build_applications

    settings = get_settings()
    applications = build_applications(settings, pool_size=1, prompt_seconds=2)
    try:
        health = _connected(lambda conn: relay_health(conn, applications.all(), settings))
    finally:
        for application in applications.all():
            application.close()
    if as_json:
        print(json.dumps(health, indent=2))
    else:
        verdict = (
            "[green]ready[/]" if health["ready"] else f"[red]not ready: {health['problem']}[/]"
        )
        console.print(
            f"relay {verdict}; heartbeat {health['heartbeat_age_seconds']}s ago, progress "
            f"{health['progress_age_seconds']}s ago; oldest unpublished event "
            f"{health['oldest_unpublished_age_seconds']}s (limit {health['max_lag_seconds']}s)"
        )
        table = Table("application", "position", "unpublished", "parked", "oldest (s)")
        for o in health["outboxes"]:
            table.add_row(
                o["application"],
                str(o["position"]),
                str(o["unpublished"]),
                f"[red]{o['parked']}[/]" if o["parked"] else "0",
                str(o["oldest_age_seconds"] or ""),
            )
        Console().print(table)
    if not health["ready"]:
        raise typer.Exit(1)
