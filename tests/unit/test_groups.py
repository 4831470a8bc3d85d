"""The consumer-group registry is the one list of groups: the topic catalogue, the workers'
own definitions, the sets and the process layout all agree with it."""

from __future__ import annotations

import importlib

import pytest

from eventmart.broker import consumer_groups, topic_specs
from eventmart.groups import (
    BY_NAME,
    GROUPS,
    UnknownGroup,
    group_names,
    resolve,
    worker_processes,
)
from eventmart.wiring import APPLICATION_TOPICS, SAGA_PARTICIPANTS, context_of
from projections.registry import READ_MODELS
from workers.groups import consumed_topics, topics_of


def test_the_topic_catalogue_lists_exactly_the_registry_groups_and_what_each_declares():
    """Each group's topics are declared once, beside its code; the catalogue must agree."""
    assert {group: sorted(topics) for group, topics in consumer_groups().items()} == {
        group: sorted(topics) for group, topics in consumed_topics().items()
    }


def test_every_topic_a_group_consumes_is_in_the_catalogue_keyed_as_its_producer_keys_it():
    """The relay keys a context's events by aggregate id; the API keys behaviour by visitor."""
    producer_keys = {topic: "aggregate id" for topic in APPLICATION_TOPICS.values()}
    producer_keys["behavior.events"] = "visitor id"
    catalogue = {spec.name: spec for spec in topic_specs()}
    for group, topics in consumed_topics().items():
        for topic in topics:
            assert topic in catalogue, f"{group} consumes {topic}, not in kafka/topics.yaml"
            assert catalogue[topic].key == producer_keys[topic], topic


def test_each_group_is_the_participant_or_read_model_its_code_declares():
    for spec in GROUPS:
        if spec.kind == "participant":
            name = spec.name.removesuffix("-saga").replace("-", "_")
            participant = importlib.import_module(f"workers.{name}").PARTICIPANT
            assert participant.group == spec.name
            assert topics_of(spec) == tuple(participant.topics)
            # Its effects and tracking go to the database of the context it is.
            assert context_of(participant.application) == spec.context, spec.name
        elif spec.kind == "projection":
            assert READ_MODELS[spec.name].group == spec.name
    assert set(READ_MODELS) == set(group_names("projections"))


def test_sets_name_the_saga_participants_the_projections_and_everything():
    assert SAGA_PARTICIPANTS == [
        "inventory-saga",
        "payments-saga",
        "orders-saga",
        "shipping-saga",
        "pricing-saga",
    ]
    assert set(group_names("all")) == set(BY_NAME)
    sets = [
        set(group_names(name)) for name in ("sagas", "projections", "classifiers", "recommender")
    ]
    assert set.union(*sets) == set(BY_NAME)
    assert sum(map(len, sets)) == len(BY_NAME)  # no group in two of them


def test_names_resolve_to_each_group_once_in_registry_order():
    assert [spec.name for spec in resolve(["orders-projection", "sagas", "orders-saga"])] == [
        "inventory-saga",
        "payments-saga",
        "orders-saga",
        "shipping-saga",
        "pricing-saga",
        "orders-projection",
    ]
    with pytest.raises(UnknownGroup, match="inventory-sagas"):
        resolve(["inventory-sagas"])


def test_the_default_layout_hosts_every_group_once():
    hosted = [spec.name for names in worker_processes() for spec in resolve(names)]
    assert sorted(hosted) == sorted(BY_NAME)


def test_a_layout_that_leaves_a_group_out_is_refused():
    assert worker_processes("all") == [["all"]]
    assert worker_processes(
        "inventory-saga,payments-saga orders-saga,shipping-saga,pricing-saga projections classifiers recommender"
    )[0] == ["inventory-saga", "payments-saga"]
    with pytest.raises(UnknownGroup, match="users-projection"):
        worker_processes(
            "sagas classifiers orders-projection catalog-projection sales-projection "
            "purchases reviews-projection ratings-projection"
        )
