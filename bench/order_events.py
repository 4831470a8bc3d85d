"""Order event streams' cost: the API's CPU per order while the saga runs at a rate, without
and then with N server-sent event streams (GET /v1/orders/{id}/events) held open on orders
in flight. Against a running local stack:

    ./run up --no-demo                                              # one shell
    .venv/bin/python bench/order_events.py --rate 50 --streams 200  # another

Each phase offers `--rate` orders/s for `--seconds` after a warm-up. In the second, streams
are opened the way clients that just placed an order follow it, as soon as its id is known:

- `--follow first` (the default): the first `--streams` orders of the phase each get a
  stream, held to the end of the phase (or the order's end): N streams open while the
  saga runs, each pushed its order's events;
- `--follow each`: every order placed gets one, in a rolling window of `--streams` (a new
  one closes the oldest): the cost of a client that follows every order, stream opening
  included.

Start the stack with a short carrier step (`EVENTMART_CARRIER_STEP_SECONDS=5 ./run up
--no-demo`) so held streams keep getting shipping events during the phase; with the
default minute they go quiet once the order is shipped. CPU is read from the processes
(psutil), per order, for the API and for the whole stack; on a shared machine the figures
are noisy, CPU per order less so.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
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
    opened = False
    try:
        async with client.stream("GET", f"/v1/orders/{order_id}/events", headers=headers) as s:
            if s.status_code != 200:
                counts["refused"] += 1
                return
            opened = True
            counts["open"] += 1
            async for line in s.aiter_lines():
                if line.startswith("id:"):
                    counts["events"] += 1
    except asyncio.CancelledError:
        pass
    except httpx.HTTPError as error:
        counts["failed"] += 1
        counts.setdefault(f"failed: {type(error).__name__}", 0)
        counts[f"failed: {type(error).__name__}"] += 1
    finally:
        if opened:
            counts["open"] -= 1


class Streams:
    """Streams on orders as they are placed, at most `size`: the first `size` orders held
    to the end, or (`rolling`) every order, a new stream closing the oldest."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        placer: Placer,
        size: int,
        counts: dict[str, int],
        *,
        rolling: bool,
    ) -> None:
        self.client, self.placer, self.size, self.counts = client, placer, size, counts
        self.rolling = rolling
        self.open: deque[asyncio.Task[None]] = deque()
        self.opened = 0

    def follow(self, order_ids: list[str]) -> None:
        for order_id in order_ids:
            if not self.rolling and self.opened >= self.size:
                return
            headers = self.placer.placed_by[order_id]
            self.open.append(
                asyncio.create_task(hold_stream(self.client, order_id, headers, self.counts))
            )
            self.opened += 1
            while len(self.open) > self.size:
                self.open.popleft().cancel()

    async def follow_new(self, seen: int) -> None:
        """Open a stream on each order placed from now on (the placer's list only grows)."""
        while True:
            placed = self.placer.placed
            self.follow(placed[seen:])
            seen = len(placed)
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for task in self.open:
            task.cancel()
        await asyncio.gather(*self.open, return_exceptions=True)


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
        counts = {"open": 0, "events": 0, "refused": 0, "failed": 0}
        window: Streams | None = None
        try:
            with Progress(console=console) as progress:
                await placer.at_rate(args.rate, args.warmup, progress, "warming up with")
                quiet, quiet_wall, quiet_orders = await phase(
                    args, placer, procs, progress, "without streams:"
                )
                # The streams: each order of the phase as it is placed, while there is room.
                window = Streams(
                    streams_client, placer, args.streams, counts, rolling=args.follow == "each"
                )
                events_before = counts["events"]
                following = asyncio.create_task(window.follow_new(len(placer.placed)))
                try:
                    streaming, stream_wall, stream_orders = await phase(
                        args, placer, procs, progress, f"with up to {args.streams} streams:"
                    )
                finally:
                    following.cancel()
                    await asyncio.gather(following, return_exceptions=True)
                opened = window.opened
                delivered = counts["events"] - events_before
                still_open = counts["open"]
        finally:
            if window is not None:
                await window.close()
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
        f"{opened} streams ({args.follow})",
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
        f"({opened} streams opened, {delivered} events pushed, {still_open} still open, "
        f"{counts['refused']} refused, {counts['failed']} failed)"
    )
    failures = {k: v for k, v in counts.items() if k.startswith("failed: ")}
    if failures:
        console.print(f"stream failures: {failures}")


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
    parser.add_argument(
        "--follow",
        choices=["first", "each"],
        default="first",
        help="first: the phase's first N orders hold a stream; each: every order, N at once",
    )
    asyncio.run(main(parser.parse_args()))
