"""W3C Trace Context through the event log, and OpenTelemetry spans (docs/tracing.md).

Every stored event carries, in its metadata, the `traceparent` of what caused it: the API
command's span, or the consumer group's handling of the event that caused it. The relay
sends it on as the Kafka record's `traceparent` header (through its own publish span), and
each group continues it. The trace id is therefore in the log itself: replays and rebuilds
keep it, and the order's trace can be rebuilt without a trace backend
(projections.order_trace).

Spans are exported over OTLP/HTTP only when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; otherwise `ENABLED` is False, no span object is
made at all, and only the traceparent strings travel (a few string operations per event).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.persistence import Mapper, StoredEvent
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
    set_span_in_context,
)

from eventmart.contracts.envelope import TRACEPARENT_PATTERN

_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Whether this process makes and exports spans (set by `configure`).
ENABLED = False
# The traceparent that events stored now are stamped with: the command's or the handling's.
CAUSE: ContextVar[str | None] = ContextVar("eventmart_trace_cause", default=None)
# The cause of changes made while handling an event that carries no traceparent.
NO_TRACE = ""
TRACE_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:trace")


def configure(service: str, environ: dict[str, str] | None = None) -> bool:
    """Install the SDK with an OTLP/HTTP exporter if the standard variables ask for one."""
    global ENABLED
    environ = dict(os.environ) if environ is None else environ
    if ENABLED or not any(environ.get(name) for name in ENDPOINT_VARIABLES):
        return ENABLED
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = environ.get("OTEL_SERVICE_NAME") or f"eventmart-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    ENABLED = True
    return True


def shutdown() -> None:
    """Flush what is buffered (a process about to exit)."""
    provider: Any = trace.get_tracer_provider()
    if ENABLED and hasattr(provider, "shutdown"):
        provider.shutdown()


def tracer() -> Tracer:
    return trace.get_tracer("eventmart")


def parse(traceparent: str | bytes | None) -> SpanContext | None:
    """The span context a W3C traceparent names, or None if absent or malformed."""
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("ascii", "replace")
    if not traceparent or not _TRACEPARENT.match(traceparent):
        return None
    _, trace_id, span_id, flags = traceparent.split("-")
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16))
    )


def format_context(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def new_traceparent() -> str:
    """A new trace and a span id, sampled (a command that arrived without one)."""
    return f"00-{random.getrandbits(128) or 1:032x}-{random.getrandbits(64) or 1:016x}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent else None


def span_id_of(traceparent: str | None) -> str | None:
    return traceparent.split("-")[2] if traceparent else None


def derived_trace_id(order_id: UUID | str) -> str:
    """The trace id of an order whose events were stored before they carried one."""
    return uuid5(TRACE_NAMESPACE, str(order_id)).hex


def parent_context(traceparent: str | None) -> Any:
    """An OpenTelemetry context whose current span is the remote one named (or none)."""
    context = parse(traceparent)
    return None if context is None else set_span_in_context(NonRecordingSpan(context))


def start(
    name: str,
    kind: SpanKind,
    parent: str | None,
    attributes: dict[str, Any] | None = None,
    links: Iterable[Span] = (),
) -> Span | None:
    """A span, child of `parent`; None when tracing is off (no span object at all)."""
    if not ENABLED:
        return None
    return tracer().start_span(
        name,
        context=parent_context(parent),
        kind=kind,
        attributes=attributes,
        links=[trace.Link(span.get_span_context()) for span in links],
    )


def traceparent_of(span: Span | None, otherwise: str | None) -> str | None:
    """The traceparent naming `span` (what it causes is its child), or `otherwise`."""
    if span is None:
        return otherwise
    context = span.get_span_context()
    return format_context(context) if context.is_valid else otherwise


def finish(span: Span | None, outcome: str | None = None, **attributes: Any) -> None:
    if span is None:
        return
    if outcome is not None:
        span.set_attribute("eventmart.outcome", outcome)
    for key, value in attributes.items():
        span.set_attribute(key, value)
    span.end()


@contextmanager
def caused_by(traceparent: str | None) -> Iterator[None]:
    """Events stored inside carry `traceparent` as their cause. A consumed event without
    one (stored before tracing) is still a cause: its changes start no lookup of a trace."""
    token = CAUSE.set(traceparent if traceparent is not None else NO_TRACE)
    try:
        yield
    finally:
        CAUSE.reset(token)


def stamp(events: Iterable[Any], traceparent: str | None = None) -> None:
    """Put the cause into each event's metadata, unless it has one already. Stored events'
    state is their attribute dictionary, so this is stored with them and read back."""
    traceparent = traceparent or CAUSE.get()
    if not traceparent:
        return
    for event in events:
        state = vars(event)
        if "traceparent" not in state:
            state["traceparent"] = traceparent


class TracingMapper(Mapper[Any]):
    """The eventsourcing mapper, stamping each event it stores with the current cause."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        stamp((domain_event,))
        return super().to_stored_event(domain_event)


MAPPER_TOPIC = "eventmart.tracing:TracingMapper"
