"""The console's templates compile, and an order's trace is laid out as a waterfall:
children under their parent, bars on the trace's time axis."""

from __future__ import annotations

from pathlib import Path

from entrypoints.console.routes import fragment, templates
from entrypoints.console.waterfall import waterfall
from entrypoints.stack import Stack
from eventmart.settings import Settings

TEMPLATES = Path(__file__).resolve().parents[2] / "entrypoints" / "console" / "templates"


def test_every_template_compiles():
    names = [str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*.html")]
    assert "groups.html" in names and "panels/order.html" in names
    for name in names:
        templates.env.get_template(name)


def span(span_id: str, parent: str | None, service: str, start: float, end: float) -> dict:
    def at(seconds: float) -> str:
        return f"2026-12-07T12:00:{seconds:06.3f}Z"

    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "name": f"{service} step",
        "service": service,
        "started_at": at(start),
        "ended_at": at(end),
        "attributes": {"messaging.destination.name": "orders.events"},
    }


def test_a_trace_is_laid_out_depth_first_by_causation_on_one_time_axis():
    trace = {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spans": [
            span("c", "b", "inventory-saga", 2.0, 3.0),
            span("a", None, "api", 0.0, 1.0),
            span("b", "a", "relay", 1.0, 2.0),
            span("d", "a", "payments-saga", 3.0, 4.0),
            span("e", "gone", "shipping-saga", 3.5, 3.5),  # its parent is not in the trace
        ],
    }
    laid_out = waterfall(trace)
    rows = [(row["span_id"], row["depth"]) for row in laid_out["rows"]]
    assert rows == [("a", 0), ("b", 1), ("c", 2), ("d", 1), ("e", 0)]
    by_id = {row["span_id"]: row for row in laid_out["rows"]}
    assert by_id["a"]["offset"] == 0 and by_id["a"]["width"] == 25
    assert by_id["c"]["offset"] == 50 and by_id["c"]["duration_ms"] == 1000
    assert by_id["e"]["width"] > 0  # an instant still shows
    assert laid_out["duration_ms"] == 4000
    assert laid_out["services"] == [
        "api",
        "inventory-saga",
        "payments-saga",
        "relay",
        "shipping-saga",
    ]


def test_an_empty_or_odd_trace_draws_nothing():
    assert waterfall({"trace_id": "x", "spans": []})["rows"] == []
    assert waterfall({"spans": [{"span_id": "a", "started_at": "not a time"}]})["rows"] == []


def test_an_orders_trace_links_to_jaeger_only_when_it_runs():
    order = {"status": "completed", "total": {"amount": "9.99", "currency": "EUR"}}
    order |= {"created_at": "2026-12-07T12:00:00Z", "timeline": []}
    trace = waterfall(
        {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "spans": [span("a", None, "api", 0, 1)]}
    )
    shown = {"order_id": "o", "order_status": 200, "order": order, "trace_status": 200}
    linked = fragment("panels/order.html", **shown, trace=trace, jaeger_url="http://jaeger:16686")
    assert 'href="http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"' in linked
    assert "Jaeger" not in fragment("panels/order.html", **shown, trace=trace, jaeger_url=None)


def test_up_with_tracing_tells_the_console_where_jaeger_is():
    settings = Settings(jaeger_ui_port=16700)
    assert Stack(settings, tracing=True).extra_env["EVENTMART_JAEGER_URL"] == (
        "http://127.0.0.1:16700"
    )
    assert "EVENTMART_JAEGER_URL" not in Stack(settings).extra_env
    told = Settings(jaeger_url="https://traces.example.com")
    assert Stack(told, tracing=True).extra_env["EVENTMART_JAEGER_URL"] == (
        "https://traces.example.com"
    )
