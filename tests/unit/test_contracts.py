"""Event contracts: every type has an example that validates, envelopes round-trip,
bad messages are refused with a clear error, old versions are upcast."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from domain.users import EmailIndex, User
from entrypoints.cli import app
from eventmart.broker import topic_specs
from eventmart.contracts import CONTRACTS, MalformedEvent, envelope_from_domain, parse
from eventmart.contracts.envelope import EventContract, Payload, register


@pytest.mark.parametrize("type_name", sorted(CONTRACTS))
def test_every_event_type_has_an_example_that_validates(type_name: str):
    contract = CONTRACTS[type_name]
    envelope = parse(contract.example)
    assert envelope.type == type_name
    assert envelope.schema_version == contract.schema_version


@pytest.mark.parametrize("type_name", sorted(CONTRACTS))
def test_every_event_type_is_on_a_catalogued_topic(type_name: str):
    assert CONTRACTS[type_name].topic in {spec.name for spec in topic_specs()}


def test_exported_json_schemas_validate_every_example():
    result = CliRunner().invoke(app, ["schemas", "export"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    assert set(exported["events"]) == set(CONTRACTS)
    for entry in exported["events"].values():
        jsonschema.validate(entry["example"], exported["envelope"])
        jsonschema.validate(entry["example"]["payload"], entry["payload"])


def test_a_domain_event_becomes_an_envelope_that_parses_back():
    user = User.register("ada@example.com", "secret-hash", "Ada")
    envelope = envelope_from_domain(user.collect_events()[0])
    assert envelope is not None
    assert parse(envelope.to_bytes()) == envelope
    assert "secret-hash" not in envelope.to_bytes().decode()


def test_private_events_are_not_published():
    index = EmailIndex(
        email="ada@example.com", user_id=User.register("ada@example.com", "h", "A").id
    )
    assert envelope_from_domain(index.collect_events()[0]) is None


@pytest.mark.parametrize(
    "raw, problem",
    [
        (b"not json", "not an EventMart envelope"),
        (b'{"type": "user.registered"}', "not an EventMart envelope"),
        (
            json.dumps({**CONTRACTS["user.registered"].example, "type": "user.exploded"}),
            "unknown event type",
        ),
        (
            json.dumps({**CONTRACTS["user.registered"].example, "schema_version": 99}),
            "newer than this code",
        ),
        (
            json.dumps({**CONTRACTS["user.registered"].example, "payload": {"user_id": "x"}}),
            "payload is invalid",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(raw: Any, problem: str):
    with pytest.raises(MalformedEvent, match=problem):
        parse(raw)


def test_old_versions_are_upcast_on_read():
    class Renamed(Payload):
        full_name: str
        nickname: str

    register(
        EventContract(
            type="test.renamed",
            topic="users.events",
            schema_version=3,
            payload=Renamed,
            example={},
            upcasters={1: lambda p: {"full_name": p["name"]}, 2: lambda p: {**p, "nickname": "-"}},
        )
    )
    try:
        example = {
            **CONTRACTS["user.registered"].example,
            "type": "test.renamed",
            "schema_version": 1,
            "payload": {"name": "Ada"},
        }
        envelope = parse(example)
        assert envelope.schema_version == 3
        assert envelope.payload == {"full_name": "Ada", "nickname": "-"}
    finally:
        del CONTRACTS["test.renamed"]
