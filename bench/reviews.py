"""Reviews benchmark against a running local stack: reviews submitted per second through
the API with the classifier keeping up (its lag, submission -> classification, p50/p99),
the classifier worker's throughput per CPU-second, and `GET /v1/products/{id}/reviews`
and `/feedback` requests/s and latency, at the highest rate the generators reach (closed
loop) and at a fixed --rate (open loop: latency counts from when a request was due).

    EVENTMART_CARRIER_STEP_SECONDS=1 ./run up --no-demo          # one shell
    .venv/bin/python bench/reviews.py --buyers 40 --products 25  # another

Seeding: a seller lists --products products; --buyers customers each order all of them
(one order each) and wait for delivery (a few carrier steps: run the stack with a short
EVENTMART_CARRIER_STEP_SECONDS). Then every buyer reviews every product, from
--connections concurrent clients, in both languages. Classifier lag comes from the event
store's clocks: `review.submitted` -> `review.classified` occurred_at, read from
reviews.events. The classifier's CPU is the `worker classifiers` process's own.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import time
import uuid
from datetime import datetime
from urllib.parse import urlsplit

import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from rawhttp import Connection
from rich.console import Console
from rich.table import Table

console = Console(width=140)
PASSWORD = "bench password"
ADDRESS = {
    "name": "Bench",
    "line1": "1 Road",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}
TEXTS = [
    "质量很好，物流也很给力，第二天就到了！",
    "价格有点贵，性价比不高，客服态度也一般。",
    "Solid build quality and fast shipping, would buy again.",
    "Broke after two days and support never replied. Waste of money.",
    "包装破损，快递太慢了，差评。",
    "Decent for the price, nothing special.",
]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def register(client: httpx.AsyncClient, role: str) -> tuple[str, dict[str, str]]:
    email = f"bench-{role}-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": PASSWORD, "display_name": f"Bench {role}", "role": role}
    created = await client.post("/v1/users", json=body)
    created.raise_for_status()
    while True:
        answer = await client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        if answer.status_code == 200:
            return created.json()["user_id"], {
                "Authorization": f"Bearer {answer.json()['access_token']}"
            }
        await asyncio.sleep(0.2)


async def seed(client: httpx.AsyncClient, buyers: int, products: int) -> tuple[list, list]:
    _, seller = await register(client, "seller")
    product_ids = []
    for n in range(products):
        body = {
            "sku": f"RB-{uuid.uuid4().hex[:12]}",
            "name": f"Bench review product {n}",
            "description": "reviewed by the bench",
            "category": "bench-reviews",
            "price": {"amount": 1000 + n, "currency": "CNY"},
        }
        created = (await client.post("/v1/products", json=body, headers=seller)).json()
        stock = {"quantity": buyers}
        await client.post(f"/v1/products/{created['product_id']}/stock", json=stock, headers=seller)
        product_ids.append(created["product_id"])
    customers = [await register(client, "customer") for _ in range(buyers)]

    async def order(headers: dict[str, str]) -> None:
        body = {
            "lines": [{"product_id": p, "quantity": 1} for p in product_ids],
            "shipping_address": ADDRESS,
            "payment": {"method": "card", "token": "tok_ok"},
        }
        placed = await client.post("/v1/orders", json=body, headers=headers)
        placed.raise_for_status()
        order_id = placed.json()["order_id"]
        while True:
            answer = await client.get(f"/v1/orders/{order_id}", headers=headers)
            status = answer.json().get("status") if answer.status_code == 200 else None
            if status in ("delivered", "completed"):
                return
            if status in ("cancelled", "rejected"):
                raise SystemExit(f"a bench order ended {status}")
            await asyncio.sleep(0.5)

    console.print(f"seeding: {buyers} orders of {products} lines, waiting for delivery…")
    await asyncio.gather(*(order(headers) for _, headers in customers))
    return product_ids, customers


async def submit(client: httpx.AsyncClient, headers: dict[str, str], product: str) -> bool:
    """One review; while the purchase is not recorded yet (403), again shortly."""
    body = {"rating": random.randint(1, 5), "body": random.choice(TEXTS)}
    while True:
        answer = await client.post(f"/v1/products/{product}/reviews", json=body, headers=headers)
        if answer.status_code != 403:
            return answer.status_code == 201
        await asyncio.sleep(0.2)


async def submit_all(
    client: httpx.AsyncClient, product_ids: list[str], customers: list, connections: int
) -> tuple[float, int]:
    """Each buyer's first review, untimed (it waits for the purchase to be recorded: the
    whole order's lines are recorded at once); then the rest, timed."""
    await asyncio.gather(*(submit(client, headers, product_ids[0]) for _, headers in customers))
    work = [(headers, product) for _, headers in customers for product in product_ids[1:]]
    random.shuffle(work)
    queue: asyncio.Queue[tuple[dict[str, str], str]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    done = 0

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            stored = await submit(client, *queue.get_nowait())
            done += stored  # not `done += await …`: that reads `done` before awaiting

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.monotonic() - started, done


async def classifier_lags(bootstrap: str, product_ids: set[str]) -> list[float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition("reviews.events", p)
            for p in sorted(consumer.partitions_for_topic("reviews.events") or [])
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        submitted: dict[str, float] = {}
        classified: dict[str, float] = {}
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                for message in messages:
                    event = orjson.loads(message.value)
                    at = datetime.fromisoformat(event["occurred_at"]).timestamp()
                    key = event["aggregate_id"]
                    if event["type"] == "review.submitted":
                        if event["payload"]["product_id"] in product_ids:
                            submitted[key] = at
                    elif event["type"] == "review.classified" and key not in classified:
                        classified[key] = at
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return [classified[key] - at for key, at in submitted.items() if key in classified]
    finally:
        await consumer.stop()


def classifier_process() -> psutil.Process | None:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "worker" in cmdline and "classifiers" in cmdline:
            return process
    return None


async def load(api: str, paths: list[str], seconds: float, rate: float | None, connections: int):
    """(requests/s, p50 ms, p99 ms, errors): closed loop without a rate, else open loop."""
    host, port = urlsplit(api).hostname or "127.0.0.1", urlsplit(api).port or 80
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    interval = connections / rate if rate else 0.0

    async def one(n: int) -> None:
        nonlocal errors
        connection = Connection(host, port)
        due = time.monotonic() + n * (interval / connections if rate else 0)
        while True:
            if rate:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            start = due if rate else time.monotonic()
            if start >= end:
                break
            status = await connection.get(random.choice(paths))
            latencies.append(time.monotonic() - start)
            errors += status != 200
            due += interval
        connection.close()

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(connections)))
    elapsed = time.monotonic() - started
    return (
        len(latencies) / elapsed,
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
        errors,
    )


async def main(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(base_url=args.api, timeout=60) as client:
        if (await client.get("/readyz")).status_code != 200:
            raise SystemExit(f"the stack at {args.api} is not ready; start it with ./run up")
        product_ids, customers = await seed(client, args.buyers, args.products)
        worker = classifier_process()
        cpu_before = sum(worker.cpu_times()[:2]) if worker else 0.0
        seconds, stored = await submit_all(client, product_ids, customers, args.connections)
        console.print(f"{stored} reviews submitted in {seconds:.1f}s: {stored / seconds:.0f}/s")
        # Until the classifier has read every one of them.
        lags: list[float] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            lags = await classifier_lags(args.bootstrap, set(product_ids))
            if len(lags) >= stored + len(customers):
                break
            await asyncio.sleep(1)
        cpu = (sum(worker.cpu_times()[:2]) - cpu_before) if worker else float("nan")
    table = Table(title="reviews")
    for column in ("figure", "value"):
        table.add_column(column)
    table.add_row("reviews submitted / s (API, all answered 201)", f"{stored / seconds:.0f}")
    table.add_row(
        "classifier lag p50 / p99 (s)",
        f"{percentile(lags, 0.5):.2f} / {percentile(lags, 0.99):.2f}",
    )
    table.add_row("reviews classified", f"{len(lags)} of {stored + len(customers)}")
    table.add_row(
        "classifier worker: reviews per CPU-second",
        f"{len(lags) / cpu:.0f}" if cpu and not math.isnan(cpu) else "n/a",
    )
    paths = {
        # The catalogue's list, for comparison: the same API and machine, an endpoint
        # tuned before (docs/benchmarks.md).
        "GET /v1/products?category= (baseline)": ["/v1/products?category=bench-reviews"],
        "GET /v1/products/{id}/reviews": [f"/v1/products/{p}/reviews" for p in product_ids],
        "GET /v1/products/{id}/feedback": [f"/v1/products/{p}/feedback" for p in product_ids],
    }
    for name, urls in paths.items():
        for rate in (None, args.rate):
            per_second, p50, p99, errors = await load(
                args.api, urls, args.seconds, rate, args.http_connections
            )
            mode = "closed loop" if rate is None else f"at {rate:.0f}/s"
            table.add_row(
                f"{name} {mode}",
                f"{per_second:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors",
            )
    console.print(table)
    console.print(f"median lag {statistics.median(lags) if lags else float('nan'):.2f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--buyers", type=int, default=40)
    parser.add_argument("--products", type=int, default=25)
    parser.add_argument("--connections", type=int, default=16, help="review submitters")
    parser.add_argument("--http-connections", type=int, default=32, help="for the GET loads")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=500)
    asyncio.run(main(parser.parse_args()))
