"""Export's filtering and row-building, without a broker or a file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from eventmart.contracts import CONTRACTS, Envelope, parse
from eventmart.export import (
    COLUMNS,
    REDACTED,
    EventFilter,
    jsonl_of,
    parse_time,
    redact_personal,
    row_of,
    table_of,
)

PLACED = parse(CONTRACTS["order.placed"].example)
REGISTERED = parse(CONTRACTS["user.registered"].example)


def at(envelope: Envelope, moment: datetime) -> Envelope:
    return envelope.model_copy(update={"occurred_at": moment})


def test_no_filter_keeps_everything():
    assert EventFilter().accepts(PLACED) and EventFilter().accepts(REGISTERED)


def test_types_keep_only_the_chosen_ones():
    only_placed = EventFilter(types=frozenset({"order.placed"}))
    assert only_placed.accepts(PLACED)
    assert not only_placed.accepts(REGISTERED)


def test_time_range_is_since_inclusive_until_exclusive():
    noon = datetime(2026, 11, 25, 12, tzinfo=UTC)
    window = EventFilter(since=noon, until=noon + timedelta(hours=1))
    assert window.accepts(at(PLACED, noon))
    assert window.accepts(at(PLACED, noon + timedelta(minutes=59)))
    assert not window.accepts(at(PLACED, noon - timedelta(microseconds=1)))
    assert not window.accepts(at(PLACED, noon + timedelta(hours=1)))


def test_types_and_time_combine():
    noon = datetime(2026, 11, 25, 12, tzinfo=UTC)
    rule = EventFilter(types=frozenset({"order.placed"}), since=noon)
    assert rule.accepts(at(PLACED, noon))
    assert not rule.accepts(at(REGISTERED, noon))
    assert not rule.accepts(at(PLACED, noon - timedelta(days=1)))


def test_times_without_a_zone_are_utc():
    assert parse_time("2026-11-25T12:00:00") == datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert parse_time("2026-11-25T20:00:00+08:00") == datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert parse_time(None) is None


def test_a_row_is_the_envelope_flattened_with_the_payload_as_json():
    moment = datetime(2026, 11, 25, 18, 30, tzinfo=timezone(timedelta(hours=8)))
    row = row_of("orders.events", 3, 41, at(PLACED, moment))
    assert tuple(row) == COLUMNS
    assert (row["topic"], row["partition"], row["offset"]) == ("orders.events", 3, 41)
    assert row["type"] == "order.placed" and row["event_id"] == str(PLACED.event_id)
    assert row["aggregate_id"] == str(PLACED.aggregate_id) and row["aggregate_version"] == 1
    assert row["occurred_at"] == moment and row["occurred_at"].tzinfo == UTC
    assert row["causation_id"] is None
    assert orjson.loads(row["payload"]) == PLACED.payload


def test_rows_become_a_typed_table_and_json_lines():
    rows = [row_of("orders.events", 0, 0, PLACED), row_of("users.events", 1, 7, REGISTERED)]
    table = table_of(rows)
    assert table.column_names == list(COLUMNS)
    assert table.num_rows == 2
    assert str(table.schema.field("occurred_at").type) == "timestamp[us, tz=UTC]"
    assert table.column("type").to_pylist() == ["order.placed", "user.registered"]
    lines = jsonl_of(rows).splitlines()
    assert [orjson.loads(line)["type"] for line in lines] == ["order.placed", "user.registered"]


def test_an_empty_table_still_has_the_columns():
    assert table_of([]).column_names == list(COLUMNS)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01"])
def test_a_bad_time_is_refused(text: str):
    with pytest.raises(ValueError):
        parse_time(text)


def test_personal_data_is_redacted_an_address_keeping_its_country():
    placed = redact_personal(PLACED)
    assert placed.payload["shipping_address"] == {
        "name": REDACTED,
        "line1": REDACTED,
        "city": REDACTED,
        "postal_code": REDACTED,
        "country": "CN",
    }
    assert placed.payload["lines"] == PLACED.payload["lines"]
    registered = redact_personal(REGISTERED)
    assert (registered.payload["email"], registered.payload["display_name"]) == (REDACTED,) * 2
    assert registered.payload["role"] == REGISTERED.payload["role"]
    captured = parse(CONTRACTS["payment.captured"].example)
    assert redact_personal(captured) == captured


def test_every_person_naming_field_is_declared_personal():
    """Fields that name, reach or locate a person are in their contract's `personal`."""
    person_fields = {"email", "display_name", "shipping_address", "address"}
    for name, contract in CONTRACTS.items():
        fields = set(contract.payload.model_fields)
        assert fields & person_fields <= set(contract.personal), name


def test_a_sealed_field_is_redacted_whole_and_a_sealed_address_line_by_line():
    sealed = {"enc": "v1", "kid": "0" * 32, "ct": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
    registered = parse(
        {**CONTRACTS["user.registered"].example, "schema_version": 2}
        | {"payload": {**REGISTERED.payload, "email": sealed, "display_name": sealed}}
    )
    redacted = redact_personal(registered)
    assert (redacted.payload["email"], redacted.payload["display_name"]) == (REDACTED,) * 2
    address = {**PLACED.payload["shipping_address"], "name": sealed, "line1": sealed}
    placed = parse(
        {**CONTRACTS["order.placed"].example, "schema_version": 4}
        | {"payload": {**CONTRACTS["order.placed"].example["payload"], "shipping_address": address}}
    )
    assert redact_personal(placed).payload["shipping_address"]["name"] == REDACTED
    assert redact_personal(placed).payload["shipping_address"]["country"] == "CN"
