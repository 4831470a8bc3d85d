"""What `eventmart analyst eval-recs` and `train-recs` share: reading a source into
interactions and items, and showing the evaluation."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from entrypoints.cli.shared import console, progress_bar

if TYPE_CHECKING:
    import pandas as pd

SOURCES = ("online-retail", "log")
SOURCE_HELP = (
    "online-retail: the Online Retail CSV given as PATH. "
    "log: the event log, from an `eventmart analyst export` directory given as PATH "
    "(JSON Lines or Parquet), or read from the broker when PATH is left out."
)
PATH_HELP = "The CSV (online-retail) or an export directory (log)."
SHORT_HEADERS = {"precision": "prec@10", "distinct_items": "items@10", "coverage": "cover@10"}


def load_source(
    source: str, path: Path | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(interactions, items, log offsets seen); exits with a clear message on bad input."""
    if source not in SOURCES:
        console.print(f"[red]--source must be one of {', '.join(SOURCES)}[/]")
        raise typer.Exit(2)
    if path is not None and not path.exists():
        console.print(f"[red]{path} does not exist[/]")
        raise typer.Exit(2)
    with console.status(f"reading {source}{f' from {path}' if path else ''}…"):
        try:
            if source == "online-retail":
                if path is None:
                    console.print("[red]--source online-retail needs the CSV's PATH[/]")
                    raise typer.Exit(2)
                from eventmart.ml.online_retail import read_online_retail

                interactions, items = read_online_retail(path)
                return interactions, items, {}
            from eventmart.ml.event_log import read_events, read_export

            if path is None:
                return _read_broker()
            data = read_events(read_export(path))
        except (ValueError, FileNotFoundError) as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(2) from error
    return data.interactions, data.items, data.seen


def _read_broker() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The log from the broker, through the export machinery into a temporary directory."""
    from eventmart.export import export_events
    from eventmart.ml.event_log import TOPICS, read_events, read_export
    from eventmart.settings import get_settings

    with tempfile.TemporaryDirectory(prefix="eventmart-recs-") as directory:
        with progress_bar() as progress:
            task = progress.add_task("reading the log", total=None)
            asyncio.run(
                export_events(
                    get_settings().bootstrap_servers,
                    list(TOPICS),
                    Path(directory),
                    fmt="jsonl",
                    on_progress=lambda done, total: progress.update(
                        task, completed=done, total=total
                    ),
                )
            )
        data = read_events(read_export(Path(directory)))
    return data.interactions, data.items, data.seen


def describe_input(interactions: pd.DataFrame, items: pd.DataFrame) -> None:
    kinds = ", ".join(
        f"{count:,} {kind}" for kind, count in interactions["kind"].value_counts().items()
    )
    console.print(
        f"{len(interactions):,} interactions ({kinds or 'none'}) by "
        f"{interactions['user_id'].nunique():,} users on {interactions['item_id'].nunique():,} "
        f"items; {len(items):,} items described"
    )


def epoch_progress() -> Any:
    """A progress bar for training (epochs, not events)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def show_evaluation(
    results: dict[str, dict[str, float]], figures: dict[str, int], cutoff: Any
) -> None:
    metrics = [name for name in next(iter(results.values())) if name != "train_seconds"]
    headers = [SHORT_HEADERS.get(name.split("@")[0], name) for name in metrics]
    table = Table("model", *headers, "train s", title=f"test period from {cutoff:%Y-%m-%d %H:%M}")
    for model, values in results.items():
        shown = [
            f"{values[m]:,.0f}" if m.startswith("distinct") else f"{values[m]:.4f}" for m in metrics
        ]
        table.add_row(model, *shown, f"{values['train_seconds']:.1f}")
    Console(width=max(Console().width, 110)).print(table)
    console.print(
        ", ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in figures.items())
    )
    console.print(
        "Scored: warm users' new items of the test period (cold test users get popularity "
        "in production and are counted above, not scored)."
    )
    hybrid, popular = results.get("lightfm_hybrid"), results.get("popular")
    if hybrid and popular:
        console.print(_targets(hybrid, popular))


def _targets(hybrid: dict[str, float], popular: dict[str, float]) -> str:
    gain = hybrid["ndcg@10"] / popular["ndcg@10"] - 1 if popular["ndcg@10"] else float("inf")
    breadth = (
        hybrid["distinct_items@10"] / popular["distinct_items@10"]
        if popular["distinct_items@10"]
        else float("inf")
    )
    ok_gain, ok_breadth = gain >= 0.2, breadth >= 5
    return (
        f"hybrid vs popular: NDCG@10 {gain:+.0%} ({'meets' if ok_gain else 'MISSES'} +20%), "
        f"distinct items {breadth:.1f}x ({'meets' if ok_breadth else 'MISSES'} 5x)"
    )


def trial_printer() -> Callable[[str, dict[str, Any], float], None]:
    def show(model: str, params: dict[str, Any], score: float) -> None:
        shown = ", ".join(f"{name}={value}" for name, value in params.items())
        console.print(f"  {model} {shown}: ndcg@10 {score:.4f}", highlight=False, soft_wrap=True)

    return show
