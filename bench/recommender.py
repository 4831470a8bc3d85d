"""Recommender benchmark: training time per 100,000 interactions, the CPU of an incremental
update of 1,000 new interactions at three log sizes (10k, 100k, 1M: it should not grow with
the log), serving latency from memory (p50/p99 per call), and the `eventmart analyst
eval-recs` table on the real Online Retail data set.

    .venv/bin/python bench/recommender.py
    .venv/bin/python bench/recommender.py --skip-eval --calls 5000
    .venv/bin/python bench/recommender.py --only-updates

The updates run on a generated shop (eventmart/ml/synthetic.py `planted_stream`: 5,000
users, 3,000 items) whose state at each log size comes from a one-epoch full training
(the state's size is what matters to an update, not its quality); each update brings
1,000 interactions, one in twenty from a new user, with the documented update parameters.

Training runs on a generated shop (eventmart/ml/synthetic.py: 5,000 users, 3,000 items
in 20 taste clusters, 100,000 views and purchases) with the documented hyperparameters,
one thread (reproducible) and two. Latency is measured in this process on the serving
model of that shop, each call timed alone, with a realistic exclusion set (20 items).
The evaluation is the real command, run as its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from eventmart.ml import store
from eventmart.ml.incremental import IncrementalModel
from eventmart.ml.interactions import Item
from eventmart.ml.recommender import HybridParams, train
from eventmart.ml.serving import ServingModel
from eventmart.ml.synthetic import planted_items, planted_log, planted_stream

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "online-retail-sample.csv.gz"
console = Console()


def time_training(threads: int) -> tuple[float, float, ServingModel, int]:
    """Wall and CPU seconds per 100,000 interactions: on a shared machine the CPU time
    says what the training costs, the wall time what it took there and then."""
    interactions, items = planted_log(users=5000, items=3000, groups=20, per_user=20, seed=0)
    started, cpu_started = time.perf_counter(), time.process_time()
    trained = train(interactions, items, threads=threads)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    per_100k = 100_000 / len(interactions)
    return wall * per_100k, cpu * per_100k, trained.to_serving(), len(interactions)


def update_table(sizes: list[int], repeats: int = 3) -> Table:
    """CPU ms of an update of 1,000 new interactions (median of `repeats`), and of making
    and storing what it publishes (serving model and state), at each log size."""
    catalogue = planted_items(3000, 20)
    table = Table(
        "log interactions",
        "pairs",
        "update CPU ms (fit)",
        "publish CPU ms (serving model + state saved)",
        title="incremental update of 1,000 new interactions (median of 3)",
    )
    with tempfile.TemporaryDirectory(prefix="bench-recs-") as folder:
        for size in sizes:
            log = planted_stream(size, seed=size)
            model = IncrementalModel.from_trained(
                train(log, catalogue, params=HybridParams(epochs=1))
            )
            fits, publishes = [], []
            for repeat in range(repeats):
                new = planted_stream(1000, seed=size + repeat + 1, start=log["datetime"].max())
                newcomers = new.index % 20 == 0
                new.loc[newcomers, "user_id"] = [
                    f"new-{repeat}-{n}" for n in range(newcomers.sum())
                ]
                started = time.process_time()
                model.update(new)
                fits.append(time.process_time() - started)
                started = time.process_time()
                store.save(model.to_serving(), Path(folder))
                store.save_state(model, Path(folder))
                publishes.append(time.process_time() - started)
            table.add_row(
                f"{size:,}",
                f"{len(model.pair_keys):,}",
                f"{np.median(fits) * 1000:,.0f}",
                f"{np.median(publishes) * 1000:,.0f}",
            )
    return table


def percentiles(call: Callable[[int], object], calls: int) -> tuple[float, float, float]:
    """p50 and p99 wall microseconds of `call(i)` for i in range(calls), each timed alone,
    and the mean CPU microseconds per call (what a call costs when the machine is shared:
    a p99 then includes the time the process waited for a core)."""
    for i in range(min(calls, 200)):  # warm caches and lazy imports
        call(i)
    timings = np.empty(calls)
    cpu_started = time.process_time()
    for i in range(calls):
        started = time.perf_counter_ns()
        call(i)
        timings[i] = (time.perf_counter_ns() - started) / 1000
    cpu = (time.process_time() - cpu_started) / calls * 1e6
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 99)), cpu


def latency_table(model: ServingModel, calls: int) -> Table:
    random = np.random.default_rng(0)
    users = random.choice(model.user_ids, calls)
    items = random.choice(model.item_ids, calls)
    excluded = [set(random.choice(model.item_ids, 20)) for _ in range(calls)]
    new_item = Item("brand-new", "woolly lamp style1", "a lamp in style1", "category-1", 650.0)
    cases: dict[str, Callable[[int], object]] = {
        "recommend (known user, 20 excluded)": lambda i: model.recommend(
            users[i], 10, exclude=excluded[i]
        ),
        "recommend (cold user -> popular in category)": lambda i: model.recommend(
            f"new-{i}", 10, exclude=excluded[i], categories=["category-3"]
        ),
        "similar items (20 excluded)": lambda i: model.similar(items[i], 10, exclude=excluded[i]),
        "similar to a new product (content)": lambda i: model.similar_to_new(new_item, 10),
    }
    table = Table(
        "call",
        "p50 µs",
        "p99 µs",
        "mean CPU µs",
        title=f"serving from memory: {len(model.item_ids):,} items, "
        f"{len(model.user_ids):,} users, {model.item_embeddings.shape[1]} components, "
        f"{calls:,} calls each",
    )
    for name, call in cases.items():
        p50, p99, cpu = percentiles(call, calls)
        table.add_row(name, f"{p50:,.0f}", f"{p99:,.0f}", f"{cpu:,.0f}")
    return table


def evaluation_table(dataset: Path) -> Table:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "entrypoints", "analyst", "eval-recs"]
        + ["--source", "online-retail", str(dataset), "--json"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    results = json.loads(completed.stdout)
    metrics = ["precision@10", "recall@10", "ndcg@10", "map@10", "coverage@10"]
    table = Table(
        "model",
        *metrics,
        "distinct items",
        "train s",
        title=f"eval-recs on {dataset.name} ({time.perf_counter() - started:.0f} s)",
    )
    for model, figures in results.items():
        table.add_row(
            model,
            *(f"{figures[m]:.4f}" for m in metrics),
            f"{figures['distinct_items@10']:,.0f}",
            f"{figures['train_seconds']:.1f}",
        )
    hybrid, popular = results["lightfm_hybrid"], results["popular"]
    table.caption = (
        f"hybrid vs popular: NDCG@10 {hybrid['ndcg@10'] / popular['ndcg@10'] - 1:+.0%}, "
        f"distinct items {hybrid['distinct_items@10'] / popular['distinct_items@10']:.1f}x"
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per serving case")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--skip-eval", action="store_true", help="leave out the eval-recs table")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="training thread counts to time"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="log sizes"
    )
    parser.add_argument("--only-updates", action="store_true", help="only the update table")
    args = parser.parse_args()
    console.print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    console.print(update_table(args.sizes))
    if args.only_updates:
        console.print(f"load average after: {os.getloadavg()[0]:.1f}")
        return

    training = Table(
        "threads",
        "interactions",
        "wall s per 100,000",
        "CPU s per 100,000",
        title="training (LightFM hybrid, documented parameters)",
    )
    model: ServingModel | None = None
    for threads in args.threads:
        wall, cpu, serving, count = time_training(threads)
        model = model or serving
        training.add_row(str(threads), f"{count:,}", f"{wall:.1f}", f"{cpu:.1f}")
    console.print(training)
    assert model is not None
    console.print(latency_table(model, args.calls))
    if not args.skip_eval:
        console.print(evaluation_table(args.dataset))
    console.print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
