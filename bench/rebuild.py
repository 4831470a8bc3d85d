"""Rebuild benchmark: replay rate of a full rebuild of each read model from a log of at
least a million events, through the real `eventmart analyst rebuild MODEL` command.

    .venv/bin/python bench/rebuild.py                    # generate (first time) + rebuild all
    .venv/bin/python bench/rebuild.py --models orders --profile /tmp/prof   # py-spy flame graph

It starts its own embedded PostgreSQL and Kafka (state in --state-dir, ports below), and
no workers: a saga worker would react to the synthetic orders. The first run writes a
synthetic shop history (bench/shoplog.py: valid envelopes of every event type, consistent
versions and stock, the saga's event mix, a few re-published copies) straight to the
topics with a fast producer instead of through the HTTP API, which would take hours;
later runs reuse the log. Each rebuild runs as its own process, exactly as an analyst
runs it, timed from start to swap.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shoplog import shop_history

from entrypoints.stack import Infrastructure
from eventmart.broker import kafka_state_dir, port_open
from eventmart.database import pgdata_dir
from eventmart.export import partitions_of
from eventmart.settings import PROJECT_ROOT, Settings
from eventmart.wiring import worker_names
from projections.rebuild import find_model, tables_of
from projections.registry import READ_MODELS

console = Console(width=140)
EVENT_TOPICS = [
    "users.events",
    "catalog.events",
    "inventory.events",
    "orders.events",
    "payments.events",
    "shipping.events",
]
SWAPPED = re.compile(
    r"swapped in \S+: ([\d,]+) events read, ([\d,]+) applied, (\d+) malformed\s+"
    r"skipped, ([\d,]+) events/s"
)
PHASES = re.compile(r"phases: .*")


async def log_size(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Events on each topic (end minus beginning offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topics)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        sizes = dict.fromkeys(topics, 0)
        for tp in partitions:
            sizes[tp.topic] += ends[tp] - starts[tp]
        return sizes
    finally:
        await consumer.stop()


async def live_groups(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        groups = {group for group, _ in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    return sorted(groups & set(worker_names()))


async def produce(bootstrap: str, events: int, seed: int) -> int:
    """Write a synthetic history of about `events` envelopes, keyed by aggregate id."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    written = 0
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("producing the synthetic shop log", total=events)
            pending = []
            for topic, key, value in shop_history(events, seed=seed):
                pending.append(await producer.send(topic, value, key=key))
                written += 1
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    progress.update(task, completed=written)
            await asyncio.gather(*pending)
            progress.update(task, completed=written)
    finally:
        await producer.stop()
    return written


def server_cpu_seconds(settings: Settings) -> dict[str, float]:
    """CPU time so far of this benchmark's PostgreSQL (with its exited backends) and Kafka."""
    totals = {"postgres": 0.0, "kafka": 0.0}
    try:
        postmaster = psutil.Process(
            int((pgdata_dir(settings) / "postmaster.pid").read_text().split()[0])
        )
        for process in [postmaster, *postmaster.children()]:
            times = process.cpu_times()
            totals["postgres"] += (
                times.user + times.system + times.children_user + times.children_system
            )
    except (OSError, ValueError, psutil.Error):
        pass
    for process in psutil.process_iter(["cmdline"]):
        if str(kafka_state_dir(settings)) in " ".join(process.info["cmdline"] or []):
            try:
                times = process.cpu_times()
                totals["kafka"] += times.user + times.system
            except psutil.Error:
                continue
    return totals


def rebuild(
    name: str, settings: Settings, env: dict[str, str], profile: Path | None
) -> dict[str, Any]:
    """Run `eventmart analyst rebuild NAME` as its own process; its figures and CPU use."""
    command = [sys.executable, "-m", "entrypoints", "analyst", "rebuild", name]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        command = [
            py_spy,
            "record",
            "--rate",
            "200",
            "--format",
            "speedscope",
            "-o",
            str(profile / f"rebuild-{name}.speedscope.json"),
            "--",
            *command,
        ]
    servers_before = server_cpu_seconds(settings)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        command,
        env={**env, "COLUMNS": "200"},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    servers = server_cpu_seconds(settings)
    found = SWAPPED.search(done.stderr + done.stdout)
    if done.returncode != 0 or found is None:
        console.print(done.stderr[-3000:])
        raise SystemExit(f"rebuild {name} failed ({done.returncode})")
    read, applied, malformed, rate = (int(group.replace(",", "")) for group in found.groups())
    if phases := PHASES.search(done.stderr + done.stdout):
        console.print(f"  {name}: {phases.group(0)}")
    return {
        "read": read,
        "applied": applied,
        "malformed": malformed,
        "rate": rate,
        "seconds": seconds,
        "cpu": children.ru_utime
        + children.ru_stime
        - children_before.ru_utime
        - children_before.ru_stime,
        "postgres_cpu": servers["postgres"] - servers_before["postgres"],
        "kafka_cpu": servers["kafka"] - servers_before["kafka"],
    }


def row_counts(settings: Settings, name: str) -> str:
    import psycopg

    with psycopg.connect(settings.dsn) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            for table in tables_of(find_model(name))
        }
    return ", ".join(f"{table} {row[0] if row else 0:,}" for table, row in counts.items())


def main(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {
        "state_dir": args.state_dir,
        "postgres_port": args.postgres_port,
        "kafka_port": args.kafka_port,
        "kafka_controller_port": args.kafka_port + 1,
    }
    if port_open("127.0.0.1", args.kafka_port):  # left running by --keep
        options["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{args.kafka_port}"
    settings = Settings(**options)
    infrastructure = Infrastructure(settings)
    infrastructure.start(fresh=args.fresh)
    try:
        bootstrap = settings.bootstrap_servers
        if groups := asyncio.run(live_groups(bootstrap)):
            raise SystemExit(
                f"workers have consumed from {bootstrap} ({', '.join(groups)}); they would "
                "react to the synthetic orders: use a state dir of its own"
            )
        sizes = asyncio.run(log_size(bootstrap, EVENT_TOPICS))
        if sum(sizes.values()) < args.events:
            missing = args.events - sum(sizes.values())
            started = time.monotonic()
            written = asyncio.run(produce(bootstrap, missing, seed=sum(sizes.values())))
            console.print(
                f"produced {written:,} synthetic events in {time.monotonic() - started:.0f}s"
            )
            sizes = asyncio.run(log_size(bootstrap, EVENT_TOPICS))
        console.print(
            f"log: {sum(sizes.values()):,} events (synthetic envelopes produced straight "
            f"to the topics, not through the API): "
            + ", ".join(f"{topic} {count:,}" for topic, count in sizes.items())
        )
        load_before = os.getloadavg()
        table = Table(
            title=f"full rebuild from offset zero, {os.cpu_count()} cores, load average "
            f"{load_before[0]:.1f} at start"
        )
        for column in (
            "read model",
            "topics' events",
            "read",
            "applied",
            "events/s",
            "command s",
            "CPU s: rebuild / postgres / kafka",
            "events per rebuild CPU s",
        ):
            table.add_column(column, justify="left" if column == "read model" else "right")
        total_read, total_seconds, total_cpu = 0, 0.0, 0.0
        counts = []
        for name in args.models.split(","):
            model = find_model(name)
            console.print(f"rebuilding {model.group}…")
            figures = rebuild(name, settings, infrastructure.child_env(), args.profile)
            total_read += figures["read"]
            total_seconds += figures["read"] / figures["rate"]
            total_cpu += figures["cpu"]
            table.add_row(
                model.group,
                f"{sum(sizes[topic] for topic in model.topics):,}",
                f"{figures['read']:,}",
                f"{figures['applied']:,}",
                f"{figures['rate']:,}",
                f"{figures['seconds']:.1f}",
                f"{figures['cpu']:.1f} / {figures['postgres_cpu']:.1f} / {figures['kafka_cpu']:.1f}",
                f"{figures['read'] / figures['cpu']:,.0f}",
            )
            counts.append(f"{model.group}: {row_counts(settings, name)}")
        table.add_row(
            "all",
            "",
            f"{total_read:,}",
            "",
            f"{total_read / total_seconds:,.0f}",
            "",
            f"{total_cpu:.1f} / - / -",
            f"{total_read / total_cpu:,.0f}",
        )
        console.print(table)
        console.print(
            "events/s: events read / time from the rebuild's start to its swap, as the "
            "command reports it; command s: the whole command, with interpreter start"
        )
        for line in counts:
            console.print(f"rows after the swap, {line}")
        load_after = os.getloadavg()
        console.print(
            f"load average (1/5/15 min) at the end: {load_after[0]:.1f} / {load_after[1]:.1f} "
            f"/ {load_after[2]:.1f}; target: at least 20,000 events/s per model"
        )
    finally:
        if not args.keep:
            infrastructure.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="at least this many in the log"
    )
    parser.add_argument(
        "--models",
        default=",".join(model.split("-")[0] for model in READ_MODELS),
        help="comma-separated; default: every read model",
    )
    parser.add_argument("--state-dir", type=Path, default=Path("/tmp/eventmart-bench-rebuild"))
    parser.add_argument("--postgres-port", type=int, default=55610)
    parser.add_argument(
        "--kafka-port", type=int, default=19610, help="and the next one for its controller"
    )
    parser.add_argument("--fresh", action="store_true", help="empty the database and the log first")
    parser.add_argument("--keep", action="store_true", help="leave PostgreSQL and Kafka running")
    parser.add_argument(
        "--profile", type=Path, help="record each rebuild with py-spy into this directory"
    )
    main(parser.parse_args())
