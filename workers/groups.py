"""How the worker host builds each group of the registry (eventmart/groups.py), and what each
one consumes, read from the one place it is declared: a participant's `PARTICIPANT.topics`, a
read model's `topics`, the recommender's `TOPICS_READ`. kafka/topics.yaml is checked against
`consumed_topics()` by tests/unit/test_groups.py.

A group's code is imported only when a process builds it (or asks what it reads), so a host
of the sagas never loads the classifier's model."""

from __future__ import annotations

import importlib
from types import ModuleType

from eventmart.groups import GROUPS, GroupSpec
from eventmart.settings import Settings
from workers.hosted import Build, HostableGroup, HostedGroup, SharedResources


def participant_module(spec: GroupSpec) -> ModuleType:
    """A participant's module: `inventory-saga` -> workers.inventory, `review-classifier` ->
    workers.review_classifier."""
    return importlib.import_module("workers." + spec.name.removesuffix("-saga").replace("-", "_"))


def topics_of(spec: GroupSpec) -> tuple[str, ...]:
    """What a group consumes, as its own code declares it."""
    if spec.kind == "participant":
        return tuple(participant_module(spec).PARTICIPANT.topics)
    if spec.kind == "projection":
        from projections.registry import READ_MODELS

        return tuple(READ_MODELS[spec.name].topics)
    from workers.recommender import TOPICS_READ

    return tuple(TOPICS_READ)


def consumed_topics() -> dict[str, tuple[str, ...]]:
    """Every group of the registry -> the topics it consumes."""
    return {spec.name: topics_of(spec) for spec in GROUPS}


def _builder(spec: GroupSpec) -> Build:
    if spec.kind == "participant":

        def build(settings: Settings, shared: SharedResources) -> HostedGroup:
            from workers.saga import build_participant_group

            return build_participant_group(participant_module(spec).PARTICIPANT, settings, shared)

    elif spec.kind == "projection":

        def build(settings: Settings, shared: SharedResources) -> HostedGroup:
            from projections.registry import READ_MODELS
            from workers.projection import build_projection_group

            return build_projection_group(READ_MODELS[spec.name], settings, shared)

    else:

        def build(settings: Settings, shared: SharedResources) -> HostedGroup:
            from workers.recommender import build_recommender_group

            return build_recommender_group(settings, shared)

    return build


def hostable(spec: GroupSpec) -> HostableGroup:
    """A registry entry as the host takes it."""
    return HostableGroup(spec.name, topics_of(spec), _builder(spec))
