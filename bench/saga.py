"""Saga benchmark: drive orders through the HTTP API of a running local stack at a chosen
rate and report throughput to `confirmed`, placement->confirmed latency, projection lag
and each process's CPU share.

    ./run up --no-demo                                             # one shell
    .venv/bin/python bench/saga.py --rate 175 --seconds 30         # another (its many logins
                                                                   # from one address succeed,
                                                                   # and successes never count)

Latency is measured from the event store's own clocks (order.placed -> order.confirmed
occurred_at, read from orders.events); projection lag from the event's occurred_at to when
the orders read model shows the order confirmed, for a sample of the orders placed during
the run, polled in PostgreSQL every 20 ms with one query (polling the API per order would
load the stack it measures). Ten seconds of orders at the same rate come first, unmeasured
(`--warmup`): a freshly started broker spends much of its CPU in its JIT compiler.

    .venv/bin/python bench/saga.py --backlog 3000 --rate 20   # the ceiling with full batches

`--backlog N` measures what the saga can do at best: N orders are placed while the
process hosting the inventory saga is suspended (SIGSTOP; with `worker sagas`, all four
participants), then it is resumed and the time and CPU it takes
the stack to bring them all to `confirmed` are reported; every batch is full. (Stopped
with Ctrl-C it resumes the saga; if the bench is killed, `kill -CONT` the process.)"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import orjson
import psutil
import psycopg
from aiokafka import AIOKafkaConsumer
from rawhttp import Connection
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from eventmart.settings import Settings

console = Console()
CONFIRMED_OR_LATER = ("confirmed", "shipped", "delivered", "completed")
# The participant the backlog mode holds back (with whatever else its process hosts): it
# reacts to order.placed, so orders pile up on orders.events before anything else happens.
FIRST_PARTICIPANT = "inventory-saga"
LOAD_GENERATOR = "(this benchmark, not in `all`)"
ADDRESS = {
    "name": "Bench",
    "line1": "1 Load St",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}


async def user(client: httpx.AsyncClient, role: str) -> dict[str, str]:
    email = f"bench-{role}-{uuid.uuid4().hex[:10]}@example.com"
    created = await client.post(
        "/v1/users",
        json={"email": email, "password": "bench-password", "display_name": role, "role": role},
    )
    created.raise_for_status()
    token = await client.post("/v1/auth/token", json={"email": email, "password": "bench-password"})
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def setup(
    client: httpx.AsyncClient, products: int, customers: int, stock: int
) -> tuple[list[str], list[dict], dict]:
    seller = await user(client, "seller")
    product_ids = []
    for n in range(products):
        answer = await client.post(
            "/v1/products",
            headers=seller,
            json={
                "sku": f"BENCH-{uuid.uuid4().hex[:10]}",
                "name": f"Bench item {n}",
                "description": "load",
                "category": "bench",
                "price": {"amount": 100 + n, "currency": "CNY"},
            },
        )
        answer.raise_for_status()
        product_id = answer.json()["product_id"]
        (
            await client.post(
                f"/v1/products/{product_id}/stock", headers=seller, json={"quantity": stock}
            )
        ).raise_for_status()
        product_ids.append(product_id)
    buyers = [await user(client, "customer") for _ in range(customers)]
    return product_ids, buyers, seller


async def unlimited_coupon(client: httpx.AsyncClient, seller: dict) -> str:
    """A 5%-off coupon on the seller's products that never runs out, so every order with it
    locks, then redeems, one use (the pricing step of the saga, measured by --coupons)."""
    now = datetime.now(UTC)
    answer = await client.post(
        "/v1/coupons",
        headers=seller,
        json={
            "percent_off": 5,
            "starts_at": now.isoformat(),
            "ends_at": now.replace(year=now.year + 1).isoformat(),
            "total_uses": 10**9,
            "per_user_uses": 10**6,
        },
    )
    answer.raise_for_status()
    return str(answer.json()["code"])


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
                        (pending, list(CONFIRMED_OR_LATER)),
                    )
                    now = datetime.now(UTC)
                    for (order_id,) in await cursor.fetchall():
                        self.seen[order_id] = now
                await asyncio.sleep(self.interval)

    def lags(self, confirmed: dict[str, datetime]) -> list[float]:
        return [(self.seen[o] - confirmed[o]).total_seconds() for o in self.seen if o in confirmed]


class Timeline:
    """order.placed / order.confirmed / order.completed times per order, read from
    orders.events."""

    def __init__(self) -> None:
        self.placed: dict[str, datetime] = {}
        self.confirmed: dict[str, datetime] = {}
        self.completed: dict[str, datetime] = {}

    async def follow(self, bootstrap: str, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            "orders.events",
            bootstrap_servers=bootstrap,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            group_id=f"bench-{uuid.uuid4().hex[:6]}",
        )
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
                        elif event["type"] == "order.completed":
                            self.completed.setdefault(event["aggregate_id"], at)
        finally:
            await consumer.stop()


def listener(port: int) -> psutil.Process | None:
    pid = next(
        (
            conn.pid
            for conn in psutil.net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid
        ),
        None,
    )
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
        elif command := re.search(r"(?:-m |bin/)(?:eventmart|entrypoints)\s+(.*)", cmdline):
            role = without_options(command.group(1))  # e.g. "worker sagas"
        else:
            role = name
        found.setdefault(role, []).append(process)
    # Not the stack's, but on the same cores: shown, and left out of the totals.
    found[LOAD_GENERATOR] = [psutil.Process()]
    return found


def without_options(command: str) -> str:
    """`worker sagas --log-level warn` -> `worker sagas`: replicas' children and their
    supervisor count as one role."""
    return re.split(r"\s+--", f" {command.strip()}", maxsplit=1)[0].strip()


def hosting(procs: dict[str, list[psutil.Process]], group: str) -> tuple[str, list[psutil.Process]]:
    """The worker role whose processes host `group` (by name or by a set that holds it)."""
    from eventmart.groups import UnknownGroup, resolve

    for role, group_processes in procs.items():
        words = role.split()
        if words[:1] != ["worker"]:
            continue
        try:
            names = [name for word in words[1:] for name in word.split(",")]
            if group in {spec.name for spec in resolve(names)}:
                return role, group_processes
        except UnknownGroup:
            continue
    raise SystemExit(f"no worker process hosting {group} found under the stack's supervisor")


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


def error_code(answer: bytes) -> str:
    """The machine code of an API error answer (API.md), or '' if it has none."""
    try:
        return str(orjson.loads(answer)["error"]["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return ""


class Placer:
    """Places one-line orders through the API on at most `concurrency` keep-alive
    connections (raw HTTP/1.1, see rawhttp: httpx would cost more CPU than the API)."""

    def __init__(
        self,
        api: str,
        product_ids: list[str],
        buyers: list[dict],
        concurrency: int,
        coupon_code: str | None = None,
    ) -> None:
        parts = urlsplit(api)
        self.coupon_code = coupon_code
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.product_ids, self.buyers = product_ids, buyers
        self.semaphore = asyncio.Semaphore(concurrency)
        self.idle: list[Connection] = []
        self.placed: list[str] = []
        self.placed_by: dict[str, dict] = {}  # order id -> the buyer's headers
        self.failures: Counter[str] = Counter()  # what went wrong, e.g. "409 conflict"

    @property
    def errors(self) -> str:
        return f"{sum(self.failures.values())}" + (
            f" ({', '.join(f'{what} x{n}' for what, n in self.failures.most_common())})"
            if self.failures
            else ""
        )

    async def place(self) -> str | None:
        async with self.semaphore:
            body = {
                "lines": [{"product_id": random.choice(self.product_ids), "quantity": 1}],
                "shipping_address": ADDRESS,
                "payment": {"method": "card", "token": "tok_ok"},
                **({"coupon_code": self.coupon_code} if self.coupon_code else {}),
            }
            connection = self.idle.pop() if self.idle else Connection(self.host, self.port)
            buyer = random.choice(self.buyers)
            try:
                status, answer = await connection.request(
                    "POST", "/v1/orders", orjson.dumps(body), buyer
                )
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                connection.close()
                self.failures[type(error).__name__] += 1
                return None
            self.idle.append(connection)
            if status != 202:
                self.failures[f"{status} {error_code(answer)}".strip()] += 1
                return None
            order_id = orjson.loads(answer)["order_id"]
            self.placed.append(order_id)
            self.placed_by[order_id] = buyer
            return order_id

    def close(self) -> None:
        for connection in self.idle:
            connection.close()

    async def at_rate(
        self,
        rate: float,
        seconds: float,
        progress: Progress,
        label: str,
        on_placed: Callable[[str], None] = lambda order_id: None,
    ) -> float:
        """Offer `rate` orders/s for `seconds` (open loop); the seconds it took them all."""

        async def one() -> None:
            order_id = await self.place()
            if order_id is not None:
                on_placed(order_id)

        total = int(rate * seconds)
        bar = progress.add_task(f"{label} {total} orders at {rate}/s", total=total)
        tasks = []
        started = time.monotonic()
        for n in range(total):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
            progress.advance(bar)
        await asyncio.gather(*tasks)
        return time.monotonic() - started


async def wait_for(
    progress: Progress, label: str, orders: list[str], seen: dict[str, datetime], timeout: float
) -> None:
    """Until every order in `orders` is in `seen`, or `timeout` seconds have passed."""
    bar = progress.add_task(label, total=len(orders))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(1 for order_id in orders if order_id in seen)
        progress.update(bar, completed=done)
        if done == len(orders):
            return
        await asyncio.sleep(0.2)


def cpu_table(title: str, used: dict[str, float], wall: float, orders: int) -> Table:
    cpu = Table(title=title)
    cpu.add_column("process")
    cpu.add_column("cpu", justify="right")
    cpu.add_column("CPU ms per order", justify="right")
    for name in sorted(set(used) - {LOAD_GENERATOR}):
        cpu.add_row(
            name, f"{used[name] / wall * 100:.0f}%", f"{used[name] / max(orders, 1) * 1000:.1f}"
        )
    total = stack_seconds(used)
    cpu.add_row("all", f"{total / wall * 100:.0f}%", f"{total / max(orders, 1) * 1000:.1f}")
    if LOAD_GENERATOR in used:
        cpu.add_row(LOAD_GENERATOR, f"{used[LOAD_GENERATOR] / wall * 100:.0f}%", "")
    return cpu


def stack_seconds(used: dict[str, float]) -> float:
    """CPU seconds of the stack's processes, the load generator's left out."""
    return sum(seconds for name, seconds in used.items() if name != LOAD_GENERATOR)


def ceiling(used: dict[str, float], orders: int) -> str:
    per_order = stack_seconds(used) / max(orders, 1)
    cores = os.cpu_count() or 1
    return f"At {per_order * 1000:.0f} ms of CPU per order, {cores} cores carry at most ~{cores / per_order:.0f} orders/s."


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


async def main(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(
        base_url=args.api, timeout=30, limits=httpx.Limits(max_connections=args.concurrency)
    ) as client:
        if (await client.get("/readyz")).status_code != 200:
            raise SystemExit(f"the stack at {args.api} is not ready; start it with ./run up")
        console.print("setting up sellers, products and customers…")
        product_ids, buyers, seller = await setup(client, args.products, args.customers, args.stock)
        code = await unlimited_coupon(client, seller) if args.coupons else None
        timeline, stop = Timeline(), asyncio.Event()
        follower = asyncio.create_task(timeline.follow(args.kafka, stop))
        watch = ProjectionWatch(Settings(postgres_port=args.postgres_port).dsn)
        watcher = asyncio.create_task(watch.follow(stop))
        await asyncio.sleep(2)  # let the follower join at the log end before the first order
        procs = processes(urlsplit(args.api).port or 80, args.postgres_port)
        placers: list[Placer] = []
        try:
            with Progress(console=console) as progress:
                if args.warmup > 0:
                    # Not measured: the broker's JIT compiler, PostgreSQL's buffers and the
                    # workers' caches warm up, and the run starts with orders in flight.
                    warm = Placer(args.api, product_ids, buyers, args.concurrency, code)
                    placers.append(warm)
                    await warm.at_rate(args.rate, args.warmup, progress, "warming up with")
                    if args.backlog:  # the backlog is timed on a quiet saga
                        await wait_for(
                            progress,
                            "warm-up orders confirming",
                            warm.placed,
                            timeline.confirmed,
                            timeout=120,
                        )
                placer = Placer(args.api, product_ids, buyers, args.concurrency, code)
                placers.append(placer)
                if args.backlog:
                    await backlog_run(args, placer, procs, timeline, progress)
                else:
                    await rate_run(args, placer, procs, timeline, watch, progress)
        finally:
            for each in placers:
                each.close()
            stop.set()
            await asyncio.gather(follower, watcher)


async def rate_run(
    args: argparse.Namespace,
    placer: Placer,
    procs: dict[str, list[psutil.Process]],
    timeline: Timeline,
    watch: ProjectionWatch,
    progress: Progress,
) -> None:
    total = int(args.rate * args.seconds)
    every = max(1, total // max(1, args.lag_samples))

    def sample(order_id: str) -> None:
        if len(placer.placed) % every == 0:
            watch.watched.append(order_id)

    cpu_before, wall_before = cpu_seconds(procs), time.monotonic()
    place_seconds = await placer.at_rate(args.rate, args.seconds, progress, "placing", sample)
    placed = placer.placed
    await wait_for(progress, "waiting for confirmations", placed, timeline.confirmed, timeout=120)
    if args.whole_life:
        await wait_for(progress, "waiting for completions", placed, timeline.completed, timeout=600)
    wall = time.monotonic() - wall_before
    used = spent(cpu_before, cpu_seconds(procs))

    latencies = [
        (timeline.confirmed[o] - timeline.placed[o]).total_seconds() * 1000
        for o in placed
        if o in timeline.confirmed and o in timeline.placed
    ]
    confirmed_times = sorted(timeline.confirmed[o] for o in placed if o in timeline.confirmed)
    span = (
        (confirmed_times[-1] - confirmed_times[0]).total_seconds()
        if len(confirmed_times) > 1
        else float("nan")
    )

    # The sampled orders that were confirmed: wait (bounded) for the read model to show them.
    lag_deadline = time.monotonic() + 30
    while time.monotonic() < lag_deadline and any(
        o not in watch.seen for o in watch.watched if o in timeline.confirmed
    ):
        await asyncio.sleep(0.1)
    lag_samples = watch.lags(timeline.confirmed)

    table = Table(
        title=f"saga benchmark: {len(placed)} orders offered at {args.rate}/s for {args.seconds}s"
        + (f" after {args.warmup:.0f}s of warm-up" if args.warmup > 0 else "")
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("orders placed (202) / errors", f"{len(placed)} / {placer.errors}")
    table.add_row("placement rate achieved", f"{len(placed) / place_seconds:.0f}/s")
    table.add_row("orders confirmed", f"{len(latencies)}")
    table.add_row(
        "confirmed throughput (first..last confirm)",
        f"{len(confirmed_times) / span:.0f}/s" if not math.isnan(span) else "n/a",
    )
    for label, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        table.add_row(f"placed->confirmed {label}", f"{percentile(latencies, fraction):.0f} ms")
    if args.whole_life:
        life = [
            (timeline.completed[o] - timeline.placed[o]).total_seconds()
            for o in placed
            if o in timeline.completed and o in timeline.placed
        ]
        completed_times = sorted(timeline.completed[o] for o in placed if o in timeline.completed)
        table.add_row("orders completed", f"{len(life)}")
        if len(completed_times) > 1:
            life_span = (completed_times[-1] - completed_times[0]).total_seconds()
            table.add_row(
                "completed throughput (first..last completion)",
                f"{len(completed_times) / life_span:.0f}/s",
            )
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            table.add_row(f"placed->completed {label}", f"{percentile(life, fraction):.1f} s")
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        table.add_row(
            f"projection lag {label} ({len(lag_samples)} orders: confirmed -> read model)",
            f"{percentile(lag_samples, fraction) * 1000:.0f} ms" if lag_samples else "n/a",
        )
    console.print(table)
    console.print(
        cpu_table(
            f"CPU share over {wall:.0f}s (100% = one core), per order placed",
            used,
            wall,
            len(placed),
        )
    )
    console.print(
        f"{stack_seconds(used) / max(len(placed), 1) * 1000:.0f} ms "
        "of CPU per order at this rate. Idle cores let every process wake for each event, so "
        "CPU per order falls as the rate rises and batches fill: find the ceiling by raising "
        "--rate until confirmations fall behind, or bound it with --backlog."
    )


async def backlog_run(
    args: argparse.Namespace,
    placer: Placer,
    procs: dict[str, list[psutil.Process]],
    timeline: Timeline,
    progress: Progress,
) -> None:
    """The saga's ceiling with full batches: `--backlog` orders are placed while the first
    participant (inventory) is suspended, then it is resumed and the stack drains them."""
    role, held = hosting(procs, FIRST_PARTICIPANT)
    for process in held:
        process.suspend()
    try:
        cpu_before, started = cpu_seconds(procs), time.monotonic()
        bar = progress.add_task(
            f"placing {args.backlog} orders, `{role}` suspended", total=args.backlog
        )

        async def one() -> None:
            await placer.place()
            progress.advance(bar)

        await asyncio.gather(*(one() for _ in range(args.backlog)))
        place_seconds = time.monotonic() - started
        placing = spent(cpu_before, cpu_seconds(procs))
        # Everything placed is on orders.events before the clock starts.
        await wait_for(
            progress, "relaying order.placed", placer.placed, timeline.placed, timeout=120
        )
    finally:
        for process in held:
            process.resume()
    cpu_before, resumed, resumed_at = cpu_seconds(procs), time.monotonic(), datetime.now(UTC)
    await wait_for(
        progress, "draining to confirmed", placer.placed, timeline.confirmed, timeout=600
    )
    wall = time.monotonic() - resumed
    draining = spent(cpu_before, cpu_seconds(procs))
    confirmed = sorted(timeline.confirmed[o] for o in placer.placed if o in timeline.confirmed)
    if not confirmed:
        raise SystemExit("no order was confirmed within 10 minutes of resuming")
    from_resume = (confirmed[-1] - resumed_at).total_seconds()
    span = (confirmed[-1] - confirmed[0]).total_seconds()

    table = Table(
        title=f"saga backlog: {len(placer.placed)} orders placed with `{role}` suspended, then drained"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("orders placed (202) / errors", f"{len(placer.placed)} / {placer.errors}")
    table.add_row(
        f"placement rate (API alone, {args.concurrency} in flight)",
        f"{len(placer.placed) / place_seconds:.0f}/s",
    )
    table.add_row(
        "CPU per order placed: API / whole stack",
        f"{placing.get('api', 0) / max(len(placer.placed), 1) * 1000:.1f} / "
        f"{stack_seconds(placing) / max(len(placer.placed), 1) * 1000:.1f} ms",
    )
    table.add_row("orders confirmed", f"{len(confirmed)}")
    table.add_row(
        "drain: resume -> last confirmed",
        f"{from_resume:.1f} s ({len(confirmed) / from_resume:.0f}/s)",
    )
    table.add_row(
        "drain: first..last confirmed",
        f"{span:.1f} s ({len(confirmed) / span:.0f}/s)" if span > 0 else "n/a",
    )
    console.print(table)
    console.print(
        cpu_table(
            f"CPU share while placing, {place_seconds:.0f}s (100% = one core), per order placed",
            placing,
            place_seconds,
            len(placer.placed),
        )
    )
    console.print(
        cpu_table(
            f"CPU share while draining, {wall:.0f}s (100% = one core), per order confirmed",
            draining,
            wall,
            len(confirmed),
        )
    )
    both = {name: placing[name] + draining[name] for name in draining}
    console.print(
        ceiling(both, len(confirmed)) + " (placing and draining; shipping's work for "
        "these orders goes on after the window and counts partly)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--postgres-port", type=int, default=5432, help="to count PostgreSQL's CPU")
    parser.add_argument("--rate", type=float, default=175, help="orders offered per second")
    parser.add_argument("--seconds", type=float, default=20, help="how long to offer them")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="HTTP requests in flight at most"
    )
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument(
        "--coupons", action="store_true", help="every order with a coupon (the pricing step)"
    )
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--stock", type=int, default=100000)
    parser.add_argument(
        "--lag-samples",
        type=int,
        default=200,
        help="orders placed during the run whose projection lag is measured",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=10,
        help="seconds of orders at --rate before measuring: a fresh broker spends "
        "much of its CPU compiling (JIT) at first; 0 to measure a cold stack",
    )
    parser.add_argument(
        "--whole-life",
        action="store_true",
        help="also wait for every order to be completed and report that throughput and "
        "latency; run the stack with EVENTMART_CARRIER_STEP_SECONDS=5 and "
        "EVENTMART_AUTO_COMPLETE_SECONDS=5 so an order's life fits in a minute",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="instead of a rate: place this many orders with the process hosting the "
        "inventory saga suspended, then time the stack draining them (its ceiling with "
        "full batches)",
    )
    asyncio.run(main(parser.parse_args()))
