"""Behaviour and recommendations benchmark against a running stack: views accepted per
second (each a 202 only once Kafka acknowledged it), then recommendations and similar
items, requests per second with p50/p99, at the highest rate and at a fixed one.

    ./run up --no-demo                                          # one shell
    .venv/bin/python bench/behavior.py --seconds 15 --rate 500  # another

It seeds products through the API (bench/queries.py's, reused on later runs) and
--customers customers, posts views for --seconds (half of them signed in, half anonymous),
waits for the recommender worker to train on them and the API to serve that model, then
drives `GET /v1/users/me/recommendations` (as the customers, all known to the model) and
`GET /v1/products/{id}/similar`. Load generators are separate processes with keep-alive
connections (bench/rawhttp.py); closed loop at "max", open loop (latency counted from when
a request was due) at --rate.
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
import orjson
import uvloop
from queries import cpu_seconds, percentile, seed, server_processes
from rawhttp import Connection
from rich.console import Console
from rich.table import Table

console = Console(width=160)
GRACE_SECONDS = 5.0
Request = tuple[str, str, bytes, dict[str, str]]  # method, path, body, headers


@dataclass
class Outcome:
    latencies_ms: list[float]  # of every request sent
    failed: int  # sent, but not answered with the expected status
    unsent: int  # at a fixed rate: due, but so far behind schedule it was never sent
    seconds: float
    cpu_seconds: float  # the generator's own


async def drive(
    url: str,
    requests: list[Request],
    seconds: float,
    connections: int,
    rate: float | None,
    seed_value: int,
    ok: int,
) -> Outcome:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rng = random.Random(seed_value)
    cpu_started = time.process_time()
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
            method, path, body, headers = rng.choice(requests)
            try:
                status, _ = await connection.request(method, path, body, headers)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status, connection = 0, Connection(host, port)
            if status != ok:
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

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    if rate is not None:
        tasks.append(asyncio.create_task(schedule()))
    await asyncio.gather(*tasks)
    return Outcome(
        latencies,
        failed,
        unsent,
        time.perf_counter() - started,
        time.process_time() - cpu_started,
    )


def generator(
    url: str,
    requests: list[Request],
    seconds: float,
    connections: int,
    rate: float | None,
    n: int,
    ok: int,
    results: Any,
) -> None:
    # uvloop: the generators share the two cores with the stack, so their cost is its loss.
    results.put(uvloop.run(drive(url, requests, seconds, connections, rate, n, ok)))


def run(
    args: argparse.Namespace, name: str, requests: list[Request], rate: float | None, ok: int = 200
) -> list[str]:
    servers = server_processes(urlsplit(args.api).port or 80, args.postgres_port)
    before = {role: cpu_seconds(processes) for role, processes in servers.items()}
    results: Any = multiprocessing.Queue()
    share = None if rate is None else rate / args.processes
    children = [
        multiprocessing.Process(
            target=generator,
            args=(args.api, requests, args.seconds, args.connections, share, n, ok, results),
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
    return [
        name,
        "max" if rate is None else f"{rate:,.0f}/s",
        f"{len(latencies):,}",
        f"{failed:,} / {unsent:,}",
        f"{(len(latencies) - failed) / max(outcome.seconds for outcome in outcomes):,.0f}",
        *(f"{percentile(latencies, fraction):.1f}" for fraction in (0.5, 0.99)),
        f"{(after['api'] - before['api']) / wall * 100:.0f}%",
        f"{(after['api'] - before['api']) / max(1, len(latencies)) * 1e6:.0f}",
        f"{sum(outcome.cpu_seconds for outcome in outcomes) / max(1, len(latencies)) * 1e6:.0f}",
    ]


async def customers(api: str, count: int) -> list[dict[str, str]]:
    """Headers of `count` new customers."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        headers = []
        for _ in range(count):
            email = f"bench-customer-{uuid.uuid4().hex[:10]}@example.com"
            body = {
                "email": email,
                "password": "bench-password",
                "display_name": "Bench",
                "role": "customer",
            }
            (await client.post("/v1/users", json=body)).raise_for_status()
            token = await client.post(
                "/v1/auth/token", json={"email": email, "password": "bench-password"}
            )
            token.raise_for_status()
            headers.append({"Authorization": f"Bearer {token.json()['access_token']}"})
        return headers


def served_version(api: str) -> str | None:
    model = httpx.get(f"{api}/v1/recommendations/popular", timeout=10).json()["model"]
    return model["version"] if model else None


def main(args: argparse.Namespace) -> None:
    product_ids = asyncio.run(seed(args.api, args.products, args.categories, args.stock))
    users = asyncio.run(customers(args.api, args.customers))
    console.print(
        f"{len(product_ids):,} products, {len(users)} customers; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    views: list[Request] = []
    for n, product_id in enumerate(product_ids):
        body = {"product_id": product_id, "source": "category"}
        views.append(
            (
                "POST",
                "/v1/events/view",
                orjson.dumps({**body, "session_id": f"bench-{n % 500}"}),
                {},
            )
        )
        views.append(("POST", "/v1/events/view", orjson.dumps(body), users[n % len(users)]))
    table = Table(
        title=f"{args.seconds:.0f}s per run, {args.processes} generator processes x {args.connections} connections"
    )
    for column in (
        "endpoint",
        "offered",
        "sent",
        "failed / unsent",
        "answered/s",
        "p50 ms",
        "p99 ms",
        "API CPU",
        "API CPU µs/req",
        "bench CPU µs/req",
    ):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    before = served_version(args.api)
    if args.only in (None, "views"):
        console.print("POST /v1/events/view at max rate…")
        table.add_row(*run(args, "POST /v1/events/view", views, None, ok=202))
    if args.only is None:
        console.print(f"waiting for the recommender to train on the views (serving {before})…")
        deadline = time.monotonic() + args.train_timeout
        while (version := served_version(args.api)) == before:
            if time.monotonic() > deadline:
                raise SystemExit("no new model was served; is the recommender worker running?")
            time.sleep(1)
        console.print(f"serving model {version}")
    mine = [("GET", "/v1/users/me/recommendations?limit=10", b"", user) for user in users]
    similar = [("GET", f"/v1/products/{p}/similar?limit=10", b"", {}) for p in product_ids]
    for name, requests in (
        ("GET /v1/users/me/recommendations", mine),
        ("GET /v1/products/{id}/similar", similar),
    ):
        if args.only not in (None, name.split("/")[-1]):
            continue
        for rate in (None, args.rate):
            console.print(f"{name} at {'max rate' if rate is None else f'{rate:,.0f}/s'}…")
            table.add_row(*run(args, name, requests, rate))
    console.print(table)
    load = os.getloadavg()
    console.print(
        f"load average (1/5/15 min) at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
        "100% CPU = one core; targets: views >= 2,000/s, recommendations p99 <= 20 ms at 500/s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--postgres-port", type=int, default=5432, help="for its CPU share")
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--categories", type=int, default=12)
    parser.add_argument("--stock", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=float, default=500, help="the fixed rate of the second runs")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16, help="per generator process")
    parser.add_argument("--train-timeout", type=float, default=300)
    parser.add_argument(
        "--only",
        choices=["views", "recommendations", "similar"],
        help="drive one endpoint only, on a stack that already serves a model (for profiling)",
    )
    main(parser.parse_args())
