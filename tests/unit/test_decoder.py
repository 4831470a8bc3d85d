"""The bulk paths' Decoder answers exactly what `parse` answers: the same event, the same
malformed records, on records as the relay writes them and on every other spelling."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventmart.contracts import CONTRACTS, Decoder, Event, MalformedEvent, parse


def parsed(raw: bytes, types: frozenset[str]) -> Event | None | type[MalformedEvent]:
    try:
        envelope = parse(raw)
    except MalformedEvent:
        data: Any = None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return MalformedEvent
        kind = data.get("type") if isinstance(data, dict) else None
        return MalformedEvent if isinstance(kind, str) and kind in types else None
    return Event.of(envelope) if envelope.type in types else None


def decoded(decoder: Decoder, raw: bytes) -> Event | None | type[MalformedEvent]:
    try:
        return decoder(raw)
    except MalformedEvent:
        return MalformedEvent


def variants(example: dict[str, Any]) -> list[bytes]:
    """The relay's spelling, and the ones a fast path could get wrong."""
    relay = parse(orjson.dumps(example)).to_bytes()
    data = orjson.loads(relay)
    payload = data["payload"]
    first_uuid_field = next(
        (k for k, v in payload.items() if isinstance(v, str) and len(v) == 36), None
    )
    spelled: list[Any] = [
        {**data, "aggregate_id": data["aggregate_id"].upper()},
        {**data, "event_id": data["event_id"].replace("-", "")},
        {**data, "occurred_at": "2026-11-25T10:00:00+00:00"},
        {**data, "occurred_at": "2026-11-25T18:00:00+08:00"},
        {**data, "occurred_at": "not a time"},
        {**data, "aggregate_version": "7"},
        {**data, "schema_version": 99},
        {**data, "schema_version": 0},
        {**data, "extra": 1},
        {k: v for k, v in data.items() if k != "correlation_id"},
        {**data, "payload": {**payload, "unexpected": True}},
        {**data, "payload": {}},
        {**data, "type": "no.such_type"},
        {"type": data["type"], **{k: v for k, v in data.items() if k != "type"}},  # other key order
        [data],
    ]
    if first_uuid_field:
        spelled.append(
            {**data, "payload": {**payload, first_uuid_field: payload[first_uuid_field].upper()}}
        )
    raws = [relay, *(orjson.dumps(value) for value in spelled)]
    raws.append(relay[:-1] + b',"type":"no.such_type"}')  # a second "type": the last one counts
    raws += [b"", b"not json", b"\xff", relay[:40]]
    return raws


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_the_decoder_answers_what_parse_answers(name: str):
    raws = variants(CONTRACTS[name].example)
    for types in (frozenset({name}), frozenset(CONTRACTS) - {name}, frozenset(CONTRACTS)):
        decoder = Decoder(types)
        for raw in raws:
            assert decoded(decoder, raw) == parsed(raw, types), raw
