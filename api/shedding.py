"""Load shedding: past a bound on requests in flight, the API answers `503 overloaded` with
`Retry-After` at once instead of queueing without end.

Unbounded, every request over capacity waits in line for a worker thread and a connection,
so latency grows for everyone until clients time out (and give up on the connection, which
the server then sees as a reset). A bounded line turns that into a fast, explicit answer a
client can act on. Liveness, readiness and metrics are never shed: an overloaded API is
still alive, and its operators want to see why.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body
from api.order_events import is_stream

NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics"})


class ShedLoad:
    """Answers 503 with Retry-After while `max_in_flight` HTTP requests are being served."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.body = orjson.dumps(
            error_body(
                "overloaded",
                "the service has too many requests in flight; retry after the Retry-After seconds",
            )
        )
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
            (b"retry-after", str(retry_after_seconds).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NEVER_SHED or is_stream(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await send({"type": "http.response.start", "status": 503, "headers": self.headers})
            await send({"type": "http.response.body", "body": self.body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
