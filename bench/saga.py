"""Saga benchmark: drive orders through the HTTP API of a running local stack at a chosen
rate and report throughput to `confirmed`, placement->confirmed latency, projection lag
and each process's CPU share.

    EVENTMART_LOGIN_ATTEMPTS_PER_MINUTE=100000 ./run up --no-demo   # one shell (the bench logs
    .venv/bin/python bench/saga.py --rate 175 --seconds 30         # in many users from one address)

Latency is measured from the event store's own clocks (order.placed -> order.confirmed
occurred_at, read from orders.events); projection lag from the event's occurred_at to when
the orders read model shows the order confirmed, for a sample of the orders placed during
the run, polled in PostgreSQL every 20 ms with one query (polling the API per order would
load the stack it measures)."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import orjson
import psutil
import psycopg
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from eventmart.settings import Settings

console = Console()
CONFIRMED_OR_LATER = ("confirmed", "shipped", "delivered", "completed")
ADDRESS = {"name": "Bench", "line1": "1 Load St", "city": "Shanghai", "postal_code": "200000", "country": "CN"}


async def user(client: httpx.AsyncClient, role: str) -> dict[str, str]:
    email = f"bench-{role}-{uuid.uuid4().hex[:10]}@example.com"
    created = await client.post("/v1/users", json={"email": email, "password": "bench-password",
                                                    "display_name": role, "role": role})
    created.raise_for_status()
    token = await client.post("/v1/auth/token", json={"email": email, "password": "bench-password"})
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def setup(client: httpx.AsyncClient, products: int, customers: int, stock: int) -> tuple[list[str], list[dict]]:
    seller = await user(client, "seller")
    product_ids = []
    for n in range(products):
        answer = await client.post("/v1/products", headers=seller, json={
            "sku": f"BENCH-{uuid.uuid4().hex[:10]}", "name": f"Bench item {n}", "description": "load",
            "category": "bench", "price": {"amount": 100 + n, "currency": "CNY"}})
        answer.raise_for_status()
        product_id = answer.json()["product_id"]
        (await client.post(f"/v1/products/{product_id}/stock", headers=seller, json={"quantity": stock})).raise_for_status()
        product_ids.append(product_id)
    buyers = [await user(client, "customer") for _ in range(customers)]
    return product_ids, buyers


class ProjectionWatch:
    """When sampled orders appear confirmed (or later) in the orders read model."""

    interval = 0.02

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.watched: list[str] = []
        self.seen: dict[str, datetime] = {}

    async def follow(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            while not stop.is_set():
                pending = [order_id for order_id in self.watched if order_id not in self.seen]
                if pending:
                    cursor = await conn.execute(
                        "SELECT order_id::text FROM orders_view "
                        "WHERE order_id = ANY(%s::uuid[]) AND status = ANY(%s)",
                        (pending, list(CONFIRMED_OR_LATER)))
                    now = datetime.now(UTC)
                    for (order_id,) in await cursor.fetchall():
                        self.seen[order_id] = now
                await asyncio.sleep(self.interval)

    def lags(self, confirmed: dict[str, datetime]) -> list[float]:
        return [(self.seen[o] - confirmed[o]).total_seconds() for o in self.seen if o in confirmed]


class Timeline:
    """order.placed / order.confirmed times per order, read from orders.events."""

    def __init__(self) -> None:
        self.placed: dict[str, datetime] = {}
        self.confirmed: dict[str, datetime] = {}

    async def follow(self, bootstrap: str, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer("orders.events", bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                    enable_auto_commit=False, group_id=f"bench-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        event = orjson.loads(record.value)
                        at = datetime.fromisoformat(event["occurred_at"])
                        if event["type"] == "order.placed":
                            self.placed.setdefault(event["aggregate_id"], at)
                        elif event["type"] == "order.confirmed":
                            self.confirmed.setdefault(event["aggregate_id"], at)
        finally:
            await consumer.stop()


def listener(port: int) -> psutil.Process | None:
    pid = next((conn.pid for conn in psutil.net_connections("tcp")
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid), None)
    return None if pid is None else psutil.Process(pid)


def processes(api_port: int, postgres_port: int) -> dict[str, list[psutil.Process]]:
    """The stack's processes by role: everything under the `eventmart up` supervisor that
    runs the API on `api_port`, and the PostgreSQL server on `postgres_port` with its
    backends (other stacks and test runs on the machine are left out)."""
    api = listener(api_port)
    if api is None:
        raise SystemExit(f"nothing listens on port {api_port}: start the stack first")
    supervisor = api.parent()
    postmaster = listener(postgres_port)
    found: dict[str, list[psutil.Process]] = {}
    if postmaster is not None:
        found["postgres"] = [postmaster, *postmaster.children()]
    for process in supervisor.children(recursive=True):
        try:
            cmdline = " ".join(process.cmdline())
            name = process.name()
        except psutil.Error:
            continue
        if "kafka.Kafka" in cmdline:
            role = "kafka"
        elif name == "postgres":
            continue  # counted from the postmaster above
        elif "-m eventmart" in cmdline or "bin/eventmart" in cmdline:
            role = cmdline.split("eventmart", 1)[1].strip()
        else:
            role = name
        found.setdefault(role, []).append(process)
    return found


def cpu_seconds(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    totals = {}
    for name, group in procs.items():
        total = 0.0
        for process in group:
            try:
                total += sum(process.cpu_times()[:2])
            except psutil.Error:
                continue  # a PostgreSQL backend that ended meanwhile
        totals[name] = total
    return totals


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def main(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(base_url=args.api, timeout=30,
                                 limits=httpx.Limits(max_connections=args.concurrency)) as client:
        if (await client.get("/readyz")).status_code != 200:
            raise SystemExit(f"the stack at {args.api} is not ready; start it with ./run up")
        console.print("setting up sellers, products and customers…")
        product_ids, buyers = await setup(client, args.products, args.customers, args.stock)
        timeline, stop = Timeline(), asyncio.Event()
        follower = asyncio.create_task(timeline.follow(args.kafka, stop))
        watch = ProjectionWatch(Settings(postgres_port=args.postgres_port).dsn)
        watcher = asyncio.create_task(watch.follow(stop))
        total = int(args.rate * args.seconds)
        every = max(1, total // max(1, args.lag_samples))
        await asyncio.sleep(2)  # let the follower join at the log end before the first order
        procs = processes(urlsplit(args.api).port or 80, args.postgres_port)
        cpu_before, wall_before = cpu_seconds(procs), time.monotonic()
        placed: list[str] = []
        errors = 0
        semaphore = asyncio.Semaphore(args.concurrency)

        async def place() -> None:
            nonlocal errors
            async with semaphore:
                body = {"lines": [{"product_id": random.choice(product_ids), "quantity": 1}],
                        "shipping_address": ADDRESS, "payment": {"method": "card", "token": "tok_ok"}}
                try:
                    answer = await client.post("/v1/orders", json=body, headers=random.choice(buyers))
                except httpx.TransportError:
                    errors += 1
                    return
                if answer.status_code == 202:
                    placed.append(answer.json()["order_id"])
                    if len(placed) % every == 0:
                        watch.watched.append(placed[-1])
                else:
                    errors += 1

        tasks = []
        with Progress(console=console) as progress:
            bar = progress.add_task(f"placing {total} orders at {args.rate}/s", total=total)
            started = time.monotonic()
            for n in range(total):
                delay = started + n / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(place()))
                progress.advance(bar)
            await asyncio.gather(*tasks)
            place_seconds = time.monotonic() - started
            confirm = progress.add_task("waiting for confirmations", total=len(placed))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = sum(1 for order_id in placed if order_id in timeline.confirmed)
                progress.update(confirm, completed=done)
                if done == len(placed):
                    break
                await asyncio.sleep(0.2)
        wall = time.monotonic() - wall_before
        cpu_after = cpu_seconds(procs)

        latencies = [(timeline.confirmed[o] - timeline.placed[o]).total_seconds() * 1000
                     for o in placed if o in timeline.confirmed and o in timeline.placed]
        confirmed_times = sorted(timeline.confirmed[o] for o in placed if o in timeline.confirmed)
        span = (confirmed_times[-1] - confirmed_times[0]).total_seconds() if len(confirmed_times) > 1 else float("nan")

        # The sampled orders that were confirmed: wait (bounded) for the read model to show them.
        lag_deadline = time.monotonic() + 30
        while time.monotonic() < lag_deadline and any(
                o not in watch.seen for o in watch.watched if o in timeline.confirmed):
            await asyncio.sleep(0.1)
        lag_samples = watch.lags(timeline.confirmed)
        stop.set()
        await asyncio.gather(follower, watcher)

    table = Table(title=f"saga benchmark: {len(placed)} orders offered at {args.rate}/s for {args.seconds}s")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("orders placed (202) / errors", f"{len(placed)} / {errors}")
    table.add_row("placement rate achieved", f"{len(placed) / place_seconds:.0f}/s")
    table.add_row("orders confirmed", f"{len(latencies)}")
    table.add_row("confirmed throughput (first..last confirm)", f"{len(confirmed_times) / span:.0f}/s" if not math.isnan(span) else "n/a")
    for label, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        table.add_row(f"placed->confirmed {label}", f"{percentile(latencies, fraction):.0f} ms")
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        table.add_row(f"projection lag {label} ({len(lag_samples)} orders: confirmed -> read model)",
                      f"{percentile(lag_samples, fraction) * 1000:.0f} ms" if lag_samples else "n/a")
    console.print(table)
    cpu = Table(title=f"CPU share over {wall:.0f}s (100% = one core)")
    cpu.add_column("process")
    cpu.add_column("cpu", justify="right")
    cpu.add_column("CPU ms per order placed", justify="right")
    used = {name: cpu_after[name] - cpu_before[name] for name in procs}
    orders = max(len(placed), 1)
    for name in sorted(procs):
        cpu.add_row(name, f"{used[name] / wall * 100:.0f}%", f"{used[name] / orders * 1000:.1f}")
    total = sum(used.values())
    cpu.add_row("all", f"{total / wall * 100:.0f}%", f"{total / orders * 1000:.1f}")
    console.print(cpu)
    cores = os.cpu_count() or 1
    console.print(f"At {total / orders * 1000:.0f} ms of CPU per order (orders still past `confirmed` "
                  f"when the window closed count partly), {cores} cores carry at most "
                  f"~{cores / (total / orders):.0f} orders/s.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--postgres-port", type=int, default=5432, help="to count PostgreSQL's CPU")
    parser.add_argument("--rate", type=float, default=175, help="orders offered per second")
    parser.add_argument("--seconds", type=float, default=20, help="how long to offer them")
    parser.add_argument("--concurrency", type=int, default=64, help="HTTP requests in flight at most")
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--stock", type=int, default=100000)
    parser.add_argument("--lag-samples", type=int, default=200,
                        help="orders placed during the run whose projection lag is measured")
    asyncio.run(main(parser.parse_args()))
