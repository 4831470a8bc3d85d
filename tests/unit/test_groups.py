"""The consumer-group registry is the one list of groups: the topic catalogue, the workers'
own definitions, the sets and the process layout all agree with it."""

from __future__ import annotations

import importlib

import pytest

from eventmart.broker import consumer_groups
from eventmart.groups import (
    BY_NAME,
    GROUPS,
    UnknownGroup,
    group_names,
    resolve,
    worker_processes,
)
from eventmart.wiring import SAGA_PARTICIPANTS, context_of
from projections.registry import READ_MODELS


def test_the_topic_catalogue_lists_exactly_the_registry_groups_and_their_topics():
    assert {group: sorted(topics) for group, topics in consumer_groups().items()} == {
        spec.name: sorted(spec.topics) for spec in GROUPS
    }


def test_each_group_reads_the_topics_its_participant_or_read_model_declares():
    for spec in GROUPS:
        if "sagas" in spec.sets or "classifiers" in spec.sets:
            name = spec.name.removesuffix("-saga").replace("-", "_")
            module = importlib.import_module(f"workers.{name}")
            participant = module.PARTICIPANT
            assert participant.group == spec.name
            assert sorted(participant.topics) == sorted(spec.topics), spec.name
            # Its effects and tracking go to the database of the context it is.
            assert context_of(participant.application) == spec.context, spec.name
        elif "recommender" in spec.sets:
            from workers.recommender import TOPICS_READ

            assert sorted(TOPICS_READ) == sorted(spec.topics)
        else:
            assert sorted(READ_MODELS[spec.name].topics) == sorted(spec.topics), spec.name
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
