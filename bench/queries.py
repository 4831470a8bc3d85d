"""Query benchmark: requests/s and latency of `GET /v1/products/{id}` and
`GET /v1/products?category=` against a running stack, driven from separate processes.

    ./run up --no-demo                                                # one shell
    .venv/bin/python bench/queries.py --seconds 20 --rate 1000        # another

It seeds products first (a seller, --products across --categories, each with stock,
through the HTTP API; reused on later runs), then runs each endpoint for --seconds at the
highest rate the generators reach (closed loop: every connection sends its next request
when the answer arrives) and at --rate (open loop: requests are due on a fixed schedule
and their latency counts from when they were due, so a stall is not hidden).

The load generators are --processes separate processes, each with --connections
keep-alive HTTP/1.1 connections written with asyncio streams (a few microseconds per
request, far cheaper than an HTTP library). Their CPU share is printed beside the
server's: a generator near 100% of a core would be the bottleneck, not the API.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from rawhttp import Connection
from rich.console import Console
from rich.table import Table

console = Console(width=160)
CATEGORY_PREFIX = "bench-category-"
GRACE_SECONDS = 5.0  # at a fixed rate, requests still unsent this long after the end are dropped


async def seed(api: str, products: int, categories: int, stock: int) -> list[str]:
    """Product ids of the bench categories, listing more through the API until there are enough."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        if (await client.get("/readyz")).status_code != 200:
            raise SystemExit(f"the stack at {api} is not ready; start it with ./run up")
        existing = await listed(client, categories)
        missing = products - len(existing)
        if missing > 0:
            console.print(f"seeding {missing} products in {categories} categories through the API…")
            seller = await register_seller(client)
            semaphore = asyncio.Semaphore(16)

            async def one(n: int) -> None:
                sku = f"QB-{uuid.uuid4().hex[:12]}"
                body = {
                    "sku": sku,
                    "name": f"Bench product {n}",
                    "description": f"Query benchmark product {n}, {random.choice(WORDS)}",
                    "category": f"{CATEGORY_PREFIX}{n % categories}",
                    "price": {"amount": random.randint(100, 100_000), "currency": "CNY"},
                }
                async with semaphore:
                    created = await retried(
                        client, "/v1/products", body, {**seller, "Idempotency-Key": sku}
                    )
                    await retried(
                        client,
                        f"/v1/products/{created['product_id']}/stock",
                        {"quantity": stock},
                        {**seller, "Idempotency-Key": f"{sku}-stock"},
                    )

            started = time.monotonic()
            await asyncio.gather(*(one(n) for n in range(len(existing), products)))
            console.print(
                f"seeded in {time.monotonic() - started:.0f}s; waiting for the read model…"
            )
            deadline = time.monotonic() + 300
            while len(existing := await listed(client, categories)) < products:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(existing)} of {products} products became visible")
                await asyncio.sleep(1)
        return existing


WORDS = ["stoneware", "cotton", "steel", "bamboo", "glass", "walnut", "linen", "copper"]


async def retried(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    tries: int = 5,
) -> Any:
    """A command, sent again (same Idempotency-Key) when the connection breaks under load."""
    for attempt in range(tries):
        try:
            answer = await client.post(path, json=body, headers=headers)
            answer.raise_for_status()
            return answer.json()
        except httpx.TransportError:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(1 + attempt)
    raise AssertionError("unreachable")


async def register_seller(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"bench-seller-{uuid.uuid4().hex[:10]}@example.com"
    (
        await client.post(
            "/v1/users",
            json={
                "email": email,
                "password": "bench-password",
                "display_name": "Bench seller",
                "role": "seller",
            },
        )
    ).raise_for_status()
    token = await client.post("/v1/auth/token", json={"email": email, "password": "bench-password"})
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def listed(client: httpx.AsyncClient, categories: int) -> list[str]:
    ids = []
    for category in range(categories):
        cursor = None
        while True:
            params: dict[str, Any] = {"category": f"{CATEGORY_PREFIX}{category}", "limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/products", params=params)).json()
            ids += [item["product_id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    return ids


# --- the load generator (runs in child processes) ---------------------------------------------


@dataclass
class Outcome:
    latencies_ms: list[float]  # of every request sent, answered well or not
    failed: int  # sent, but not answered 200
    unsent: int  # at a fixed rate: due, but the server was so far behind it was never sent
    cpu_seconds: float
    seconds: float  # from the first request due to the last answer


async def drive(
    url: str,
    paths: list[str],
    seconds: float,
    connections: int,
    rate: float | None,
    seed_value: int,
) -> Outcome:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rng = random.Random(seed_value)
    latencies: list[float] = []
    failed = unsent = 0
    started = time.perf_counter()
    stop_at = started + seconds
    due: asyncio.Queue[float] = asyncio.Queue()

    async def worker() -> None:
        nonlocal failed, unsent
        connection = Connection(host, port)
        while True:
            if rate is None:
                if time.perf_counter() >= stop_at:
                    return
                scheduled = time.perf_counter()
            else:
                scheduled = await due.get()
                if scheduled < 0:
                    return
                if time.perf_counter() > stop_at + GRACE_SECONDS:
                    unsent += 1
                    continue
            try:
                status = await connection.get(rng.choice(paths))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status, connection = 0, Connection(host, port)
            if status != 200:
                failed += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

    async def schedule() -> None:
        assert rate is not None
        n = 0
        while (at := started + n / rate) < stop_at:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait(at)
            n += 1
        for _ in range(connections):
            due.put_nowait(-1.0)

    cpu_before = time.process_time()
    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    if rate is not None:
        tasks.append(asyncio.create_task(schedule()))
    await asyncio.gather(*tasks)
    return Outcome(
        latencies, failed, unsent, time.process_time() - cpu_before, time.perf_counter() - started
    )


def generator_process(
    url: str,
    paths: list[str],
    seconds: float,
    connections: int,
    rate: float | None,
    seed_value: int,
    results: Any,
) -> None:
    results.put(asyncio.run(drive(url, paths, seconds, connections, rate, seed_value)))


# --- measuring -------------------------------------------------------------------------------


def listening(port: int) -> psutil.Process | None:
    for connection in psutil.net_connections("tcp"):
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr.port == port
            and connection.pid
        ):
            return psutil.Process(connection.pid)
    return None


def server_processes(api_port: int, postgres_port: int) -> dict[str, list[psutil.Process]]:
    """The API (the process listening on its port, with its worker processes) and
    PostgreSQL (the server on its port, with its backends)."""
    found: dict[str, list[psutil.Process]] = {"api": [], "postgres": []}
    if (api := listening(api_port)) is not None:
        parent = api.parent()
        if parent is not None and " api" in " ".join(parent.cmdline()):
            api = parent  # uvicorn's supervisor of several worker processes
        found["api"] = [api, *api.children(recursive=True)]
    if (postmaster := listening(postgres_port)) is not None:
        found["postgres"] = [postmaster, *postmaster.children()]
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace, name: str, paths: list[str], rate: float | None) -> list[str]:
    servers = server_processes(urlsplit(args.api).port or 80, args.postgres_port)
    before = {role: cpu_seconds(processes) for role, processes in servers.items()}
    results: Any = multiprocessing.Queue()
    share = None if rate is None else rate / args.processes
    children = [
        multiprocessing.Process(
            target=generator_process,
            args=(args.api, paths, args.seconds, args.connections, share, n, results),
        )
        for n in range(args.processes)
    ]
    started = time.monotonic()
    for child in children:
        child.start()
    outcomes: list[Outcome] = [results.get() for _ in children]
    wall = time.monotonic() - started
    for child in children:
        child.join()
    after = {role: cpu_seconds(processes) for role, processes in servers.items()}
    latencies = sorted(latency for outcome in outcomes for latency in outcome.latencies_ms)
    failed = sum(outcome.failed for outcome in outcomes)
    unsent = sum(outcome.unsent for outcome in outcomes)
    generator_cpu = max(outcome.cpu_seconds / outcome.seconds for outcome in outcomes) * 100
    return [
        name,
        "max" if rate is None else f"{rate:,.0f}/s",
        f"{len(latencies):,}",
        f"{failed:,} / {unsent:,}",
        f"{(len(latencies) - failed) / max(outcome.seconds for outcome in outcomes):,.0f}",
        *(f"{percentile(latencies, fraction):.1f}" for fraction in (0.5, 0.95, 0.99)),
        f"{latencies[-1] if latencies else float('nan'):.0f}",
        f"{generator_cpu:.0f}%",
        f"{(after['api'] - before['api']) / wall * 100:.0f}%",
        f"{(after['postgres'] - before['postgres']) / wall * 100:.0f}%",
        f"{(after['api'] - before['api']) / max(1, len(latencies)) * 1e6:.0f}",
        f"{(after['postgres'] - before['postgres']) / max(1, len(latencies)) * 1e6:.0f}",
    ]


# The columns of the table each row of `run` fills.
COLUMNS = (
    "endpoint",
    "offered",
    "sent",
    "failed / unsent",
    "answered/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "busiest generator CPU",
    "API CPU",
    "postgres CPU",
    "API CPU µs/req",
    "postgres CPU µs/req",
)


def main(args: argparse.Namespace) -> None:
    product_ids = asyncio.run(seed(args.api, args.products, args.categories, args.stock))
    console.print(
        f"{len(product_ids):,} products in {args.categories} categories; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    if args.seed_only:
        return
    detail = [f"/v1/products/{product_id}" for product_id in product_ids]
    listing = [f"/v1/products?category={CATEGORY_PREFIX}{n}" for n in range(args.categories)]
    table = Table(
        title=f"GET, {args.seconds:.0f}s per run, {args.processes} generator processes x "
        f"{args.connections} keep-alive connections"
    )
    for column in COLUMNS:
        table.add_column(
            column,
            justify="left" if column == "endpoint" else "right",
            no_wrap=column == "endpoint",
        )
    for name, paths in (("detail /{id}", detail), ("list ?category=", listing)):
        for rate in (None, args.rate):
            console.print(f"{name} at {'max rate' if rate is None else f'{rate:,.0f}/s'}…")
            table.add_row(*run(args, name, paths, rate))
    console.print(table)
    load = os.getloadavg()
    console.print(
        f"load average (1/5/15 min) at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
        "CPU columns: 100% = one core ; "
        "target: detail >= 2,000 req/s with p99 <= 25 ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--postgres-port", type=int, default=5432, help="for its CPU share")
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--categories", type=int, default=12)
    parser.add_argument("--stock", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=1000, help="the fixed rate of the second run")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--connections", type=int, default=16, help="per generator process")
    parser.add_argument(
        "--seed-only", action="store_true", help="seed the products, measure nothing"
    )
    main(parser.parse_args())
