"""An order's trace (GET /v1/ops/orders/{id}/trace) laid out as a waterfall: one row per span,
children under their parent, each bar placed on the trace's time axis in percent (the page
draws them as SVG attributes, so its Content-Security-Policy needs no inline style)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

MIN_WIDTH_PERCENT = 0.4  # an instant event still shows as a sliver


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def waterfall(trace: dict[str, Any]) -> dict[str, Any]:
    """Rows in depth-first order of causation (siblings by start), with their depth, their
    bar's offset and width in percent of the trace, and the services the trace crossed."""
    spans = [span for span in trace.get("spans") or [] if isinstance(span, dict)]
    known = {span.get("span_id") for span in spans}
    starts = [s for s in (_instant(span.get("started_at")) for span in spans) if s]
    ends = [e for e in (_instant(span.get("ended_at")) for span in spans) if e]
    if not starts:
        return {"trace_id": trace.get("trace_id"), "rows": [], "services": [], "duration_ms": 0}
    first, last = min(starts), max([*ends, *starts])
    total = max((last - first).total_seconds(), 1e-6)
    children: dict[Any, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_span_id")
        children.setdefault(parent if parent in known else None, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda span: span.get("started_at") or "")
    rows: list[dict[str, Any]] = []

    def visit(parent: Any, depth: int) -> None:
        for span in children.get(parent, []):
            started = _instant(span.get("started_at")) or first
            ended = _instant(span.get("ended_at")) or started
            offset = 100 * (started - first).total_seconds() / total
            width = max(MIN_WIDTH_PERCENT, 100 * (ended - started).total_seconds() / total)
            rows.append(
                {
                    "span_id": span.get("span_id"),
                    "name": span.get("name"),
                    "service": span.get("service"),
                    "depth": depth,
                    "offset": round(min(offset, 100 - MIN_WIDTH_PERCENT), 3),
                    "width": round(min(width, 100 - min(offset, 100 - MIN_WIDTH_PERCENT)), 3),
                    "duration_ms": round(1000 * (ended - started).total_seconds(), 1),
                    "at_ms": round(1000 * (started - first).total_seconds(), 1),
                    "attributes": span.get("attributes") or {},
                }
            )
            if span.get("span_id") is not None and span.get("span_id") != parent:
                visit(span.get("span_id"), depth + 1)

    visit(None, 0)
    services = sorted({str(row["service"]) for row in rows if row["service"]})
    return {
        "trace_id": trace.get("trace_id"),
        "rows": rows,
        "services": services,
        "duration_ms": round(1000 * total, 1),
    }
