"""The consumer-group registry: every group EventMart runs, the bounded context whose database
it writes to, what kind of worker it is, and the named sets it belongs to.

Data only, and cheap to import (the API and the relay read it). What a group consumes is
declared once, beside its code: a saga participant's `PARTICIPANT.topics` (workers/), a read
model's `topics` (projections/registry.py), the recommender's `TOPICS_READ`. The worker host
builds each group from those (workers/groups.py), and tests check kafka/topics.yaml against
them. A worker process hosts any groups from here (`eventmart worker sagas`, `eventmart worker
orders-projection catalog-projection`, `eventmart worker all`); the local stack runs
`WORKER_PROCESSES`; docker-compose.yml and deploy/k8s/ run one process per set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from eventmart.settings import Settings

# participant: a saga step or a classifier (workers.saga builds it from the module's
# PARTICIPANT); projection: a read model of projections/registry.py; recommender: the one.
Kind = Literal["participant", "projection", "recommender"]


@dataclass(frozen=True)
class GroupSpec:
    name: str  # the consumer group's id, also its dead-letter topic's prefix (<name>.dlq)
    context: str  # whose PostgreSQL the group's effects and tracking go to
    kind: Kind
    sets: frozenset[str]


SAGAS = frozenset({"sagas"})
PROJECTIONS = frozenset({"projections"})
CLASSIFIERS = frozenset({"classifiers"})  # a participant in a set of its own: it wants a core
RECOMMENDER = frozenset({"recommender"})

GROUPS: tuple[GroupSpec, ...] = (
    GroupSpec("inventory-saga", "inventory", "participant", SAGAS),
    GroupSpec("payments-saga", "payments", "participant", SAGAS),
    GroupSpec("orders-saga", "orders", "participant", SAGAS),
    GroupSpec("shipping-saga", "shipping", "participant", SAGAS),
    GroupSpec("pricing-saga", "pricing", "participant", SAGAS),
    GroupSpec("users-projection", "users", "projection", PROJECTIONS),
    GroupSpec("catalog-projection", "catalog", "projection", PROJECTIONS),
    GroupSpec("orders-projection", "orders", "projection", PROJECTIONS),
    # A seller's sales are order lines: they live with the orders they come from.
    GroupSpec("sales-projection", "orders", "projection", PROJECTIONS),
    # Who received what, for the reviews context's verified-purchase check.
    GroupSpec("purchases", "reviews", "projection", PROJECTIONS),
    GroupSpec("reviews-projection", "reviews", "projection", PROJECTIONS),
    # Product ratings sit beside the products they rate: the catalogue's queries join them.
    GroupSpec("ratings-projection", "catalog", "projection", PROJECTIONS),
    GroupSpec("review-classifier", "reviews", "participant", CLASSIFIERS),
    # No database of its own: models go to EVENTMART_RECOMMENDER_MODELS_DIR.
    GroupSpec("recommender", "catalog", "recommender", RECOMMENDER),
)
BY_NAME: dict[str, GroupSpec] = {spec.name: spec for spec in GROUPS}
ALL = "all"

# The worker processes of `eventmart up` (docker-compose.yml and deploy/k8s run the same
# sets): one per entry. Measured on two cores (docs/scaling.md): fewer processes wake fewer
# interpreters per event. The recommender has a process of its own, at the lowest priority (workers/host.py): its
# training must never hold up the projections' batches (issue 24).
WORKER_PROCESSES: tuple[tuple[str, ...], ...] = (
    ("sagas",),
    ("projections",),
    ("classifiers",),
    ("recommender",),
)
# Groups whose process, when it hosts nothing else, runs at the lowest priority.
BACKGROUND: frozenset[Kind] = frozenset({"recommender"})


class UnknownGroup(ValueError):
    """A name that is neither a consumer group nor a set of them."""


def database_of(group: str, settings: Settings) -> str:
    """Where a group's effects and tracking live (for a projection: its read model)."""
    return settings.context_dsn(BY_NAME[group].context)


def set_names() -> list[str]:
    return sorted({name for spec in GROUPS for name in spec.sets} | {ALL})


def group_names(set_name: str | None = None) -> list[str]:
    """Every group, or the groups of one set, in registry order."""
    return [
        spec.name for spec in GROUPS if set_name is None or set_name == ALL or set_name in spec.sets
    ]


def resolve(names: Iterable[str]) -> list[GroupSpec]:
    """Group and set names -> the groups they mean, each once, in registry order."""
    wanted: set[str] = set()
    for name in names:
        if name in BY_NAME:
            wanted.add(name)
        elif name in set_names():
            wanted.update(group_names(name))
        else:
            raise UnknownGroup(
                f"unknown consumer group or set {name!r}; groups: {', '.join(BY_NAME)}; "
                f"sets: {', '.join(set_names())}"
            )
    return [spec for spec in GROUPS if spec.name in wanted]


def worker_processes(layout: str | None = None) -> list[list[str]]:
    """The worker processes to run, each the group and set names it hosts: `layout` as
    EVENTMART_WORKER_PROCESSES writes it ("sagas projections", "all", "inventory-saga,
    payments-saga orders-saga …"), or the default. Every group must be hosted somewhere."""
    processes = (
        [process.split(",") for process in layout.split()]
        if layout
        else [list(process) for process in WORKER_PROCESSES]
    )
    hosted = {spec.name for process in processes for spec in resolve(process)}
    if missing := [name for name in BY_NAME if name not in hosted]:
        raise UnknownGroup(f"no worker process hosts {', '.join(missing)}")
    return processes
