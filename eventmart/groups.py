"""The consumer-group registry: every group EventMart runs, the topics it reads, the bounded
context whose database it writes to, how it is built, and the named sets it belongs to.

A worker process hosts any groups from here (`eventmart worker sagas`, `eventmart worker
orders-projection catalog-projection`, `eventmart worker all`); the local stack and
docker-compose.yml run `WORKER_PROCESSES`. A new context adds its group by adding one entry
below, and its line in kafka/topics.yaml (a test checks the two agree).

Cheap to import on purpose (the API and the relay import `eventmart.wiring`, which reads it):
a group's builder imports its worker code only when a process builds it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventmart.settings import Settings

if TYPE_CHECKING:
    from workers.host import HostedGroup, SharedResources

Build = Callable[[Settings, "SharedResources"], "HostedGroup"]


@dataclass(frozen=True)
class GroupSpec:
    name: str  # the consumer group's id, also its dead-letter topic's prefix (<name>.dlq)
    topics: tuple[str, ...]
    context: str  # whose PostgreSQL the group's effects and tracking go to
    build: Build
    sets: frozenset[str]


def saga(module: str) -> Build:
    """A saga participant: the `PARTICIPANT` of `workers.<module>`."""

    def build(settings: Settings, shared: SharedResources) -> HostedGroup:
        from workers.saga import build_participant_group

        participant = importlib.import_module(f"workers.{module}").PARTICIPANT
        return build_participant_group(participant, settings, shared)

    return build


def projection(name: str) -> Build:
    """A read model of projections/registry.py."""

    def build(settings: Settings, shared: SharedResources) -> HostedGroup:
        from projections.registry import READ_MODELS
        from workers.projection import build_projection_group

        return build_projection_group(READ_MODELS[name], settings, shared)

    return build


def classifier(module: str) -> Build:
    """A worker that runs a model over events and stores what it says as events of its own
    context (a participant of workers.saga, in its own set: it wants a core to itself)."""
    return saga(module)


def recommender(settings: Settings, shared: SharedResources) -> HostedGroup:
    """The recommender: counts interactions, retrains (workers/recommender.py)."""
    from workers.recommender import build_recommender_group

    return build_recommender_group(settings, shared)


SAGAS = frozenset({"sagas"})
PROJECTIONS = frozenset({"projections"})
CLASSIFIERS = frozenset({"classifiers"})
RECOMMENDER = frozenset({"recommender"})

GROUPS: tuple[GroupSpec, ...] = (
    GroupSpec("inventory-saga", ("orders.events",), "inventory", saga("inventory"), SAGAS),
    GroupSpec(
        "payments-saga",
        ("inventory.events", "orders.events", "pricing.events"),
        "payments",
        saga("payments"),
        SAGAS,
    ),
    GroupSpec(
        "orders-saga",
        ("inventory.events", "payments.events", "shipping.events", "pricing.events"),
        "orders",
        saga("orders"),
        SAGAS,
    ),
    GroupSpec("shipping-saga", ("orders.events",), "shipping", saga("shipping"), SAGAS),
    GroupSpec(
        "pricing-saga",
        ("inventory.events", "orders.events", "pricing.events"),
        "pricing",
        saga("pricing"),
        SAGAS,
    ),
    GroupSpec(
        "users-projection",
        ("users.events",),
        "users",
        projection("users-projection"),
        PROJECTIONS,
    ),
    GroupSpec(
        "catalog-projection",
        ("catalog.events", "inventory.events"),
        "catalog",
        projection("catalog-projection"),
        PROJECTIONS,
    ),
    GroupSpec(
        "orders-projection",
        ("orders.events", "inventory.events", "payments.events", "shipping.events"),
        "orders",
        projection("orders-projection"),
        PROJECTIONS,
    ),
    GroupSpec(
        # A seller's sales are order lines: they live with the orders they come from.
        "sales-projection",
        ("catalog.events", "orders.events"),
        "orders",
        projection("sales-projection"),
        PROJECTIONS,
    ),
    # Who received what, for the reviews context's verified-purchase check.
    GroupSpec("purchases", ("orders.events",), "reviews", projection("purchases"), PROJECTIONS),
    GroupSpec(
        "reviews-projection",
        ("reviews.events",),
        "reviews",
        projection("reviews-projection"),
        PROJECTIONS,
    ),
    GroupSpec(
        # Product ratings sit beside the products they rate: the catalogue's queries join them.
        "ratings-projection",
        ("reviews.events",),
        "catalog",
        projection("ratings-projection"),
        PROJECTIONS,
    ),
    GroupSpec(
        "review-classifier",
        ("reviews.events",),
        "reviews",
        classifier("review_classifier"),
        CLASSIFIERS,
    ),
    # No database of its own: models go to EVENTMART_RECOMMENDER_MODELS_DIR.
    GroupSpec(
        "recommender", ("behavior.events", "orders.events"), "catalog", recommender, RECOMMENDER
    ),
)
BY_NAME: dict[str, GroupSpec] = {spec.name: spec for spec in GROUPS}
ALL = "all"

# The worker processes of `eventmart up` and docker-compose.yml: one per entry. Measured on
# two cores (docs/scaling.md): fewer processes wake fewer interpreters per event.
WORKER_PROCESSES: tuple[tuple[str, ...], ...] = (
    ("sagas",),
    ("projections", "recommender"),
    ("classifiers",),
)


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
