"""Feedback classifier benchmark: reviews classified per second on one core, in batches
and one at a time, what the sentence encoder costs of it, what a topic refresh costs
(eventmart.ml.topics over one product's reviews), and the figures beside the baselines
on the held-out split and the independently written sets.

    .venv/bin/python bench/classifier.py               # throughput + held-out figures
    .venv/bin/python bench/classifier.py --reviews 20000 --no-figures

The process pins itself to one CPU (the target is ≥ 500 reviews/s per core). The texts
are the shipped reviews of both languages, cycled; the model is the shipped default
(built into the cache on first use, which is not timed). CPU time is reported beside wall
time, since a busy machine stretches the wall clock.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from itertools import cycle, islice

from rich.console import Console
from rich.table import Table

from entrypoints.cli.classifier import figures_table, wide_console
from eventmart.ml.feedback import Example, FeedbackModel, encoder, load_default, shipped_examples
from eventmart.ml.feedback.report import held_out_report
from eventmart.ml.topics import Document, find_topics


def timed(work: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def throughput(model: FeedbackModel, texts: list[str], batch: int) -> tuple[float, float]:
    def run() -> None:
        for start in range(0, len(texts), batch):
            model.classify(texts[start : start + batch])

    wall, cpu = timed(run)
    return len(texts) / wall, len(texts) / cpu


def topic_refresh_table(model: FeedbackModel, examples: list[Example]) -> Table:
    """One refresh = the topic model over a scope's reviews (labels already stored)."""
    table = Table(title="topic refresh: one scope's reviews, both languages")
    for column in ("reviews", "refresh (CPU ms)", "µs per review (CPU)", "topics"):
        table.add_column(column, justify="right")
    labels = model.classify([e.text for e in examples])
    documents = [
        Document(f"{index:06d}", e.text, label.sentiment)
        for index, (e, label) in enumerate(zip(examples, labels, strict=True))
    ]
    for size in (50, 200, 1000, 4000):
        chosen = list(islice(cycle(documents), size))
        chosen = [Document(f"{i:06d}", d.text, d.sentiment) for i, d in enumerate(chosen)]
        started = time.process_time()
        found = find_topics(chosen)
        cpu = time.process_time() - started
        table.add_row(f"{size:,}", f"{1e3 * cpu:,.0f}", f"{1e6 * cpu / size:,.0f}", str(len(found)))
    return table


def main(args: argparse.Namespace) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    console = Console()
    model = load_default()
    examples = shipped_examples("all")
    texts = list(islice(cycle(e.text for e in examples), args.reviews))
    model.classify(texts[:200])  # warm: jieba's dictionary, the lexicons
    table = Table(title=f"{model.version}: {args.reviews:,} reviews on one core")
    for column in ("mode", "reviews/s (wall)", "reviews/s (CPU)", "µs per review (CPU)"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for label, batch in (("batches of 256", 256), ("one at a time", 1)):
        wall_rate, cpu_rate = throughput(model, texts, batch)
        table.add_row(label, f"{wall_rate:,.0f}", f"{cpu_rate:,.0f}", f"{1e6 / cpu_rate:,.0f}")
    by_language = {
        language: [e.text for e in examples if e.lang == language] for language in ("zh", "en")
    }
    for language, chosen in by_language.items():
        sample = list(islice(cycle(chosen), args.reviews // 2))
        wall_rate, cpu_rate = throughput(model, sample, 256)
        table.add_row(
            f"batches, {language} only", f"{wall_rate:,.0f}", f"{cpu_rate:,.0f}",
            f"{1e6 / cpu_rate:,.0f}",
        )  # fmt: skip
    wall, cpu = timed(lambda: [encoder.encode([text]) for text in texts])
    table.add_row(
        "of which the encoder", f"{len(texts) / wall:,.0f}", f"{len(texts) / cpu:,.0f}",
        f"{1e6 * cpu / len(texts):,.0f}",
    )  # fmt: skip
    console.print(table)
    console.print(topic_refresh_table(model, examples))
    if args.figures:
        report = held_out_report(with_toolkits=args.toolkits)
        title = f"held-out split: {report.held_out_count} reviews (trained on {report.train_count})"
        wide_console().print(figures_table(title, report.figures))
        title = f"independently written half: {report.outside_count} reviews (never trained on)"
        wide_console().print(figures_table(title, report.outside))
        title = f"fresh set, another hand: {report.fresh_count} reviews (never trained on)"
        wide_console().print(figures_table(title, report.fresh))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reviews", type=int, default=10_000, help="texts per measurement")
    parser.add_argument("--no-figures", dest="figures", action="store_false")
    parser.add_argument(
        "--no-toolkits", dest="toolkits", action="store_false", help="skip VADER/snownlp"
    )
    main(parser.parse_args())
