"""Trace context for commands: a POST, PATCH or DELETE continues the client's `traceparent`
(W3C Trace Context) or starts a trace, and every event it stores carries that cause
(eventmart.tracing). With tracing on, the command is a SERVER span named after its route."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventmart import tracing

COMMAND_METHODS = frozenset({"POST", "PATCH", "DELETE", "PUT"})
# Click-stream and impressions are not commands of the saga: no trace of their own.
UNTRACED = frozenset({"/v1/events/view"})


class TraceCommands:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in COMMAND_METHODS
            or scope["path"] in UNTRACED
        ):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                incoming = value.decode("latin-1")
                break
        parent = incoming if tracing.parse(incoming) is not None else None
        span = tracing.start(
            f"{scope['method']} {scope['path']}",
            SpanKind.SERVER,
            parent,
            {"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        # Without a span of its own the command's cause is the client's span, or a new trace.
        cause = tracing.traceparent_of(span, parent or tracing.new_traceparent())
        status: dict[str, Any] = {}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        with tracing.caused_by(cause):
            try:
                await self.app(scope, receive, sending)
            finally:
                if span is not None:
                    route = scope.get("route")
                    if route is not None and hasattr(route, "path"):
                        span.update_name(f"{scope['method']} {route.path}")
                        span.set_attribute("http.route", route.path)
                    tracing.finish(span, **{"http.response.status_code": status.get("code", 500)})
