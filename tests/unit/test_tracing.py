"""Trace context in the log (eventmart.tracing): a stored event keeps the traceparent of its
cause through the mapper and into its envelope; events stored before it have none and
still parse; malformed traceparents are never continued."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from eventsourcing.application import Application

from domain.users import User
from eventmart import tracing
from eventmart.contracts import Decoder, MalformedEvent, envelope_from_domain, parse
from eventmart.contracts.envelope import CONTRACTS

CAUSE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def mapper() -> Any:
    """The mapper every EventMart application is given (eventmart.database)."""
    found = Application(env={"MAPPER_TOPIC": tracing.MAPPER_TOPIC}).mapper
    assert isinstance(found, tracing.TracingMapper)
    return found


def test_a_stored_event_keeps_its_cause_and_its_envelope_carries_it():
    event = User.register("ada@example.com", "hash", "Ada").collect_events()[0]
    with tracing.caused_by(CAUSE):
        stored = mapper().to_stored_event(event)
    assert b"traceparent" in stored.state
    back = mapper().to_domain_event(stored)
    envelope = envelope_from_domain(back)
    assert envelope is not None and envelope.traceparent == CAUSE
    assert parse(envelope.to_bytes()).traceparent == CAUSE
    decoded = Decoder([envelope.type])(envelope.to_bytes())
    assert decoded is not None and decoded.event_id == str(envelope.event_id)


def test_an_event_stored_before_carries_none_and_still_parses():
    event = User.register("ada@example.com", "hash", "Ada").collect_events()[0]
    stored = mapper().to_stored_event(event)  # no cause: as before this change
    envelope = envelope_from_domain(mapper().to_domain_event(stored))
    assert envelope is not None and envelope.traceparent is None
    old = {k: v for k, v in envelope.model_dump(mode="json").items() if k != "traceparent"}
    assert parse(orjson.dumps(old)).traceparent is None
    for contract in CONTRACTS.values():
        assert parse(contract.example).traceparent is None


def test_a_cause_is_stamped_once_the_first_wins():
    event = User.register("ada@example.com", "hash", "Ada").collect_events()[0]
    tracing.stamp([event], CAUSE)
    tracing.stamp([event], tracing.new_traceparent())
    assert vars(event)["traceparent"] == CAUSE


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "00-" + "0" * 32 + "-b7ad6b7169203331-01",  # all-zero trace id is invalid
        "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    ],
)
def test_a_malformed_traceparent_is_not_continued(header):
    assert tracing.parse(header) is None


def test_an_envelope_refuses_a_malformed_traceparent():
    example = dict(next(iter(CONTRACTS.values())).example, traceparent="not-a-traceparent")
    with pytest.raises(MalformedEvent):
        parse(example)


def test_old_orders_get_a_trace_id_derived_from_the_order():
    order_id = "5b3c7a52-9f3e-4d43-9df5-2a1f3bcd0e11"
    assert tracing.derived_trace_id(order_id) == tracing.derived_trace_id(order_id)
    assert len(tracing.derived_trace_id(order_id)) == 32
    assert tracing.trace_id_of(tracing.new_traceparent()) != tracing.derived_trace_id(order_id)


def test_tracing_stays_off_without_an_otlp_endpoint(monkeypatch):
    # The suite's own processes export to its OTLP receiver; this one starts from off.
    monkeypatch.setattr(tracing, "ENABLED", False)
    assert tracing.configure("test", {}) is False
    assert tracing.start("nothing", tracing.SpanKind.INTERNAL, CAUSE) is None
