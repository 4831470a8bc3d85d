"""What the HTTP boundary (api/boundary.py) costs each request, in microseconds.

    .venv/bin/python bench/boundary.py --requests 200000

Runs the same minimal ASGI answer (a 200 with a small JSON body, as the product fast path
sends) directly and behind `HttpBoundary`, for a GET like a product detail and a POST like
an order placement, and prints the mean time per request of each and the difference: the
boundary's own cost. No server, no network: only the middleware's Python.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from api.boundary import HttpBoundary

BODY = b'{"product_id":"3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b","name":"Blue mug"}'
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"bench"),
    (b"accept", b"*/*"),
    (b"authorization", b"Bearer " + b"x" * 200),
]


async def answer(scope: Any, receive: Any, send: Any) -> None:
    if scope["method"] == "POST":
        await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"71"), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def scope_of(method: str) -> dict[str, Any]:
    headers = list(HEADERS)
    if method == "POST":
        headers += [(b"content-type", b"application/json"), (b"content-length", b"240")]
    return {
        "type": "http",
        "method": method,
        "path": "/v1/products/3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b",
        "headers": headers,
    }


async def per_request(app: Any, method: str, requests: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}" * 120, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    for _ in range(requests):
        await app(scope_of(method), receive, send)
    return (time.perf_counter() - started) / requests * 1e6


async def measure(requests: int) -> list[tuple[str, float, float]]:
    guarded = HttpBoundary(answer, max_body_bytes=1024 * 1024)
    rows = []
    for method in ("GET", "POST"):
        await per_request(guarded, method, requests // 10)  # warm up
        bare = min([await per_request(answer, method, requests) for _ in range(3)])
        behind = min([await per_request(guarded, method, requests) for _ in range(3)])
        rows.append((method, bare, behind))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000, help="requests per timing")
    args = parser.parse_args()
    table = Table(title="HttpBoundary, microseconds per request (best of 3)")
    for column in ("request", "bare answer", "behind the boundary", "boundary's cost"):
        table.add_column(column, justify="right")
    for method, bare, behind in asyncio.run(measure(args.requests)):
        table.add_row(method, f"{bare:.2f}", f"{behind:.2f}", f"{behind - bare:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
