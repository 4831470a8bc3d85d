"""What `analyst train-classifier` and `analyst classify` do, kept out of the command
declarations: streaming JSON Lines through the model, and the figures as tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from eventmart.ml.feedback import ASPECTS, SENTIMENTS, FeedbackModel, read_jsonl

BATCH = 512
TABLE_WIDTH = 120  # the figures tables' natural width; piped output would get 80


def wide_console() -> Console:
    return Console(width=max(Console().width, TABLE_WIDTH))


class BadInput(ValueError):
    """A line the command cannot use; the message names the line."""


@contextmanager
def open_source(source: str) -> Iterator[TextIO]:
    """The file named, or standard input for `-`."""
    if source == "-":
        yield sys.stdin
        return
    with Path(source).open(encoding="utf-8") as handle:
        yield handle


def classify_stream(model: FeedbackModel, lines: Iterable[str], out: TextIO) -> int:
    """Write each record back with `lang`, `aspects` and `sentiment` set; other fields kept."""
    written = 0
    for batch in _batches(_records_with_text(lines)):
        found = model.classify([record["text"] for record in batch])
        for record, classification in zip(batch, found, strict=True):
            record.update(classification.as_labels())
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    return written


def _records_with_text(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    try:
        for number, record in enumerate(read_jsonl(lines), 1):
            if not isinstance(record.get("text"), str):
                raise BadInput(f"record {number}: needs a string `text` field")
            yield record
    except ValueError as error:
        raise BadInput(str(error)) from error


def _batches(records: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(records, BATCH)):
        yield batch


def figures_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    """One row per (name, language): aspect F1s and macro-F1, sentiment accuracy and macro-F1."""
    table = Table(title=title)
    short = {"quality": "qual F1", "shipping": "ship F1", "price": "price F1", "service": "serv F1"}
    columns = ("", "lang", "n", *short.values(), "aspect macro-F1", "sent acc", "sent macro-F1")
    for column in columns:
        table.add_column(column, justify="left" if column in ("", "lang") else "right")
    for name, report in rows.items():
        parts = [*report["by_language"].items(), ("all", report["overall"])]
        for language, figures in parts:
            table.add_row(
                name,
                language,
                str(figures["count"]),
                *(f"{figures['aspects'][a]['f1']:.3f}" for a in ASPECTS),
                f"[bold]{figures['aspect_macro_f1']:.3f}[/]",
                f"{figures['sentiment_accuracy']:.3f}",
                f"[bold]{figures['sentiment_macro_f1']:.3f}[/]",
            )
    return table


def aspect_table(report: dict[str, Any]) -> Table:
    table = Table(title="aspects: precision/recall/F1 (labelled)")
    table.add_column("lang")
    for aspect in ASPECTS:
        table.add_column(aspect, justify="right")
    for language, figures in [*report["by_language"].items(), ("all", report["overall"])]:
        cells = [
            "{precision:.2f}/{recall:.2f}/{f1:.2f} ({support})".format(**figures["aspects"][a])
            for a in ASPECTS
        ]
        table.add_row(language, *cells)
    return table


def confusion_table(report: dict[str, Any]) -> Table:
    table = Table(title="sentiment confusion (rows: label, columns: predicted)")
    table.add_column("lang")
    table.add_column("label")
    for predicted in SENTIMENTS:
        table.add_column(predicted, justify="right")
    for language, figures in [*report["by_language"].items(), ("all", report["overall"])]:
        for label in SENTIMENTS:
            row = figures["sentiment_confusion"][label]
            table.add_row(language, label, *(str(row[p]) for p in SENTIMENTS))
    return table


def print_report(console: Console, report: dict[str, Any], title: str) -> None:
    console.print(figures_table(title, {"model": report}))
    console.print(aspect_table(report))
    console.print(confusion_table(report))
