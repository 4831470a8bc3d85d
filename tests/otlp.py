"""A real OTLP/HTTP trace receiver for the tests: it answers the exporters as a collector
does and keeps what they sent (bounded), decoded with opentelemetry-proto when asked."""

from __future__ import annotations

import gzip
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MAX_BYTES = 128 * 1024 * 1024  # oldest requests are dropped past this


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    attributes: dict[str, Any]


class OtlpReceiver:
    def __init__(self) -> None:
        self._bodies: deque[bytes] = deque()
        self._size = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._keep(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _keep(self, body: bytes) -> None:
        with self._lock:
            self._bodies.append(body)
            self._size += len(body)
            while self._size > MAX_BYTES and self._bodies:
                self._size -= len(self._bodies.popleft())

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        """Every span received (of one trace, if given), decoded now."""
        with self._lock:
            bodies = list(self._bodies)
        found = []
        wanted = None if trace_id is None else bytes.fromhex(trace_id)
        for body in bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        if wanted is not None and span.trace_id != wanted:
                            continue
                        found.append(
                            ReceivedSpan(
                                service=service,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex() or None,
                                name=span.name,
                                kind=span.kind,
                                attributes={a.key: _value(a.value) for a in span.attributes},
                            )
                        )
        return found


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
