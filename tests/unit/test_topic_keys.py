"""kafka/topics.yaml says the true keys: for every topic the relay produces, which
aggregates' events it carries and how each one's id (the message key) is made. Checked
against the contracts, the aggregates' `create_id`, and the relay's own outbox reading of
a whole saga's events."""

from __future__ import annotations

import importlib
import re
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from eventmart.broker import catalogue
from eventmart.contracts import CONTRACTS, parse
from eventmart.contracts.envelope import EventContract
from eventmart.wiring import APPLICATION_TOPICS
from workers.relay import Outbox

# The name is made of one id, or of several joined by ":" (a review: author_id:product_id).
DERIVED = re.compile(r'^uuid5\(uuid5\(NAMESPACE_URL, "([^"]+)"\), (\w+(?::\w+)*)\)$')
OWN_FIELD = re.compile(r"^(\w+) \(uuid4, .+\)$")


def topics() -> dict[str, dict[str, Any]]:
    return {topic["name"]: topic for topic in catalogue()["topics"]}  # type: ignore[index]


def aggregate_of(contract: EventContract) -> str:
    """The name of the aggregate class whose nested event the contract publishes."""
    assert contract.domain_event is not None
    return str(contract.domain_event.__qualname__.split(".")[0])


def aggregate_classes() -> dict[str, type[Aggregate]]:
    """The aggregates whose events are public, by class name."""
    return {
        aggregate_of(contract): getattr(
            importlib.import_module(contract.domain_event.__module__), aggregate_of(contract)
        )
        for contract in CONTRACTS.values()
        if contract.domain_event is not None
    }


def test_every_public_event_is_on_a_topic_that_names_its_aggregate():
    for name, contract in CONTRACTS.items():
        if contract.domain_event is None:  # produced directly (behaviour, models): no aggregate
            assert topics()[contract.topic]["aggregates"] == {}, name
            continue
        assert aggregate_of(contract) in topics()[contract.topic]["aggregates"], name


def test_each_topic_states_its_newest_schema_version_and_its_producer():
    by_topic: dict[str, int] = {}
    for contract in CONTRACTS.values():
        by_topic[contract.topic] = max(by_topic.get(contract.topic, 1), contract.schema_version)
    relayed = {topic: cls.__name__ for cls, topic in APPLICATION_TOPICS.items()}
    for name, topic in topics().items():
        assert topic["schema_version"] == by_topic.get(name, 1), name
        if name in relayed:
            assert topic["producer"] == f"relay ({relayed[name]} application)"
            assert topic["key"] == "aggregate id" and topic["aggregates"], name
        else:  # nothing yet, or a producer that is no application's relay
            assert topic["aggregates"] == {} and not topic["producer"].startswith("relay"), name


def expected_key(topic: str, aggregate: str, payload: dict[str, Any]) -> str:
    """The key topics.yaml says an event of `aggregate` with this payload has."""
    stated = topics()[topic]["aggregates"][aggregate]
    derived, own = DERIVED.match(stated), OWN_FIELD.match(stated)
    assert derived or own, f"{topic} {aggregate}: cannot read {stated!r}"
    if derived:
        namespace, fields = derived.groups()
        if not all(field in payload for field in fields.split(":")):
            # An aggregate named after several ids: its later events name it by its own id.
            return str(payload[f"{aggregate.lower()}_id"])
        name = ":".join(str(payload[field]) for field in fields.split(":"))
        return str(uuid5(uuid5(NAMESPACE_URL, namespace), name))
    assert own is not None
    return str(payload[own.group(1)])


@pytest.mark.parametrize(
    ("topic", "aggregate"),
    [(t["name"], a) for t in catalogue()["topics"] for a in t["aggregates"]],  # type: ignore[index]
)
def test_the_stated_id_is_the_id_the_aggregate_makes(topic: str, aggregate: str):
    cls = aggregate_classes()[aggregate]
    source = uuid4()
    derived = DERIVED.match(topics()[topic]["aggregates"][aggregate])
    if derived:
        sources = {field: uuid4() for field in derived.group(2).split(":")}
        assert str(cls.create_id(**sources)) == expected_key(topic, aggregate, sources)
    elif "create_id" in vars(cls):  # an id chosen by the caller (the API picks an order's)
        field = OWN_FIELD.match(topics()[topic]["aggregates"][aggregate]).group(1)  # type: ignore[union-attr]
        assert cls.create_id(**{field: source}) == source
    for contract in CONTRACTS.values():
        if contract.domain_event is not None and aggregate_of(contract) == aggregate:
            example = contract.example
            assert example["aggregate_id"] == expected_key(topic, aggregate, example["payload"])


def test_the_relay_keys_a_whole_sagas_events_as_the_catalogue_says():
    """The relay's own outbox reading, over every event a whole saga stores (in memory)."""
    from tests.unit.test_contracts_saga import run_saga

    checked = 0
    for topic, events in run_saga().items():
        application: Application[UUID] = Application()
        application.recorder.insert_events([application.mapper.to_stored_event(e) for e in events])
        for encoded in Outbox(application, topic).pending(limit=10_000):
            key, value = encoded.key, encoded.value
            if value is None:
                continue  # private: never published
            envelope = parse(value)
            aggregate = aggregate_of(CONTRACTS[envelope.type])
            assert key == str(envelope.aggregate_id).encode()
            assert key.decode() == expected_key(topic, aggregate, envelope.payload), envelope.type
            checked += 1
    assert checked > 30
