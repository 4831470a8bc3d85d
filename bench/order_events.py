"""Order event streams' cost: the API's CPU per order while the saga runs at a rate, without
and then with N server-sent event streams (GET /v1/orders/{id}/events) held open on orders
in flight. Against a running local stack:

    ./run up --no-demo                                              # one shell
    .venv/bin/python bench/order_events.py --rate 50 --streams 200  # another

Each phase offers `--rate` orders/s for `--seconds` after a warm-up; in the second, a
stream is opened on each of the first `--streams` orders placed (and on already placed
ones, to have them all open from the start) and kept open: each gets that order's events
as the saga moves it. CPU is read from the processes (psutil), per order, for the API and
for the whole stack; on a shared machine the figures are noisy, CPU per order less so.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from saga import LOAD_GENERATOR, Placer, cpu_seconds, processes, setup, spent

console = Console()


async def hold_stream(
    client: httpx.AsyncClient, order_id: str, headers: dict[str, str], counts: dict[str, int]
) -> None:
    """Read one order's stream until it ends or the bench stops it."""
    try:
        async with client.stream("GET", f"/v1/orders/{order_id}/events", headers=headers) as s:
            if s.status_code != 200:
                counts["refused"] += 1
                return
            counts["open"] += 1
            async for line in s.aiter_lines():
                if line.startswith("id:"):
                    counts["events"] += 1
    except (httpx.HTTPError, asyncio.CancelledError):
        pass
    finally:
        counts["open"] = max(0, counts["open"] - 1)


async def phase(
    args: argparse.Namespace,
    placer: Placer,
    procs: dict,
    progress: Progress,
    label: str,
) -> tuple[dict[str, float], float, int]:
    before, started = cpu_seconds(procs), time.monotonic()
    placed_before = len(placer.placed)
    await placer.at_rate(args.rate, args.seconds, progress, label)
    wall = time.monotonic() - started
    return spent(before, cpu_seconds(procs)), wall, len(placer.placed) - placed_before


async def main(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(base_url=args.api, timeout=60) as client:
        if (await client.get("/readyz")).status_code != 200:
            raise SystemExit(f"the stack at {args.api} is not ready; start it with ./run up")
        product_ids, buyers, _ = await setup(client, 20, 20, 1_000_000)
        procs = processes(urlsplit(args.api).port or 80, args.postgres_port)
        api_role = next(role for role in procs if role.startswith("api"))
        placer = Placer(args.api, product_ids, buyers, 64)
        streams_client = httpx.AsyncClient(
            base_url=args.api,
            timeout=httpx.Timeout(None, connect=10),
            limits=httpx.Limits(max_connections=args.streams + 10),
        )
        counts = {"open": 0, "events": 0, "refused": 0}
        holders: list[asyncio.Task[None]] = []
        try:
            with Progress(console=console) as progress:
                await placer.at_rate(args.rate, args.warmup, progress, "warming up with")
                quiet, quiet_wall, quiet_orders = await phase(
                    args, placer, procs, progress, "without streams:"
                )
                # The streams: the most recent orders (still moving), one stream each.
                for order_id in placer.placed[-args.streams :]:
                    buyer = placer.placed_by[order_id]
                    holders.append(
                        asyncio.create_task(hold_stream(streams_client, order_id, buyer, counts))
                    )
                deadline = time.monotonic() + 30
                while counts["open"] < args.streams and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                opened = counts["open"]
                events_before = counts["events"]
                streaming, stream_wall, stream_orders = await phase(
                    args, placer, procs, progress, f"with {opened} streams:"
                )
                delivered = counts["events"] - events_before
                still_open = counts["open"]
        finally:
            for task in holders:
                task.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
            await streams_client.aclose()
            placer.close()

    def per_order(used: dict[str, float], orders: int, role: str | None) -> float:
        total = (
            used.get(role, 0.0) if role else sum(v for k, v in used.items() if k != LOAD_GENERATOR)
        )
        return total / max(orders, 1) * 1000

    table = Table(title=f"{args.rate} orders/s for {args.seconds}s per phase (noisy machine)")
    table.add_column("phase")
    table.add_column("orders", justify="right")
    table.add_column("API CPU ms/order", justify="right")
    table.add_column("API CPU %", justify="right")
    table.add_column("stack CPU ms/order", justify="right")
    table.add_row(
        "no streams",
        str(quiet_orders),
        f"{per_order(quiet, quiet_orders, api_role):.2f}",
        f"{quiet.get(api_role, 0) / quiet_wall * 100:.1f}",
        f"{per_order(quiet, quiet_orders, None):.2f}",
    )
    table.add_row(
        f"{opened} streams open",
        str(stream_orders),
        f"{per_order(streaming, stream_orders, api_role):.2f}",
        f"{streaming.get(api_role, 0) / stream_wall * 100:.1f}",
        f"{per_order(streaming, stream_orders, None):.2f}",
    )
    console.print(table)
    base = per_order(quiet, quiet_orders, api_role)
    extra = (per_order(streaming, stream_orders, api_role) - base) / base * 100 if base else 0
    console.print(
        f"API CPU per order with the streams: {extra:+.1f}% "
        f"({delivered} events pushed, {still_open} streams still open, "
        f"{counts['refused']} refused)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--postgres-port", type=int, default=5432)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--streams", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
