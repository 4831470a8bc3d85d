"""Quote benchmark: requests/s and latency of `GET /v1/products/{id}/price` against a running
stack, driven from separate processes (bench/queries.py's generators and table).

    ./run up --no-demo                                                 # one shell
    .venv/bin/python bench/pricing.py --seconds 20 --rate 500          # another

It seeds its own seller and --products products, each with a 20%-off promotion, a
stackable tiered promotion over their category and a coupon, so every quote loads the
product, its pricing indexes, two promotions and the coupon, and prices three
discounts. Then it asks for quotes of 3 units with the coupon at the highest rate the
generators reach (closed loop) and at --rate (open loop: latency counts from when each
request was due). Target: p99 <= 10 ms at 500 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from queries import COLUMNS, console, register_seller, retried, run
from rich.table import Table

CATEGORY = "bench-pricing"


async def seed(api: str, products: int) -> tuple[list[str], str]:
    """Product ids with promotions, and the coupon's code."""
    window = {
        "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "ends_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        if (await client.get("/readyz")).status_code != 200:
            raise SystemExit(f"the stack at {api} is not ready; start it with ./run up")
        seller = await register_seller(client)
        semaphore, one_at_a_time = asyncio.Semaphore(16), asyncio.Semaphore(1)

        async def one(n: int) -> str:
            body = {
                "sku": f"PB-{uuid.uuid4().hex[:12]}",
                "name": f"Priced product {n}",
                "description": "Quote benchmark product",
                "category": CATEGORY,
                "price": {"amount": 1000 + n, "currency": "CNY"},
            }
            async with semaphore:
                created = await retried(client, "/v1/products", body, seller)
            product_id = str(created["product_id"])
            async with one_at_a_time:  # every promotion is filed in one index too
                promotion = {
                    "name": f"Sale {n}",
                    "kind": "percent_off",
                    "percent_off": 20,
                    "scope": {"product_ids": [product_id]},
                    **window,
                }
                await retried(client, "/v1/promotions", promotion, seller)
                return product_id

        product_ids = list(await asyncio.gather(*(one(n) for n in range(products))))
        tiered = {
            "name": "Bulk",
            "kind": "tiered",
            "tiers": [{"min_quantity": 3, "percent_off": 5}],
            "scope": {"category": CATEGORY},
            "stackable": True,
            **window,
        }
        await retried(client, "/v1/promotions", tiered, seller)
        coupon = {"percent_off": 5, **window, "total_uses": 1000, "per_user_uses": 1}
        created = await retried(client, "/v1/coupons", coupon, seller)
        return product_ids, str(created["code"])


def main(args: argparse.Namespace) -> None:
    product_ids, code = asyncio.run(seed(args.api, args.products))
    console.print(
        f"{len(product_ids):,} products, coupon {code}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    paths = [f"/v1/products/{p}/price?quantity=3&coupon_code={code}" for p in product_ids]
    table = Table(
        title=f"GET /v1/products/{{id}}/price, {args.seconds:.0f}s per run, "
        f"{args.processes} generator processes x {args.connections} keep-alive connections"
    )
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    for rate in (None, args.rate):
        console.print(f"quote at {'max rate' if rate is None else f'{rate:,.0f}/s'}…")
        table.add_row(*run(args, "quote", paths, rate))
    console.print(table)
    console.print("target: p99 <= 10 ms at 500 requests/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--postgres-port", type=int, default=5432, help="for its CPU share")
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=500, help="the fixed rate of the second run")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--connections", type=int, default=8, help="per generator process")
    main(parser.parse_args())
