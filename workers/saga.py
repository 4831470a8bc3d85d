"""The saga participant runner: a consumer group that turns events into commands on one
application, each consumed event tracked in the transaction of the events it causes.

Participants are plain policy functions (`policy(ctx, event)`), listed in a table
at the bottom of each participant module; this module is the thin part around them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError
from psycopg_pool import ConnectionPool

from domain.inventory import ConcurrentUpdate
from eventmart.contracts import Envelope
from eventmart.database import eventsourcing_env, make_pool
from eventmart.settings import Settings
from projections.tracking import Delivery
from workers.consumer import GroupConsumer, build_app
from workers.tracking import already_applied, tracked, tracking_context, tracking_for

log = logging.getLogger("eventmart.saga")


@dataclass
class Context:
    """What a policy may use: its own application, read access to others, adapters."""

    settings: Settings
    application: Any
    reads: dict[str, Any]
    pool: ConnectionPool
    adapters: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


Policy = Callable[[Context, Envelope], object]
Timer = Callable[[Context], int]


@dataclass(frozen=True)
class Participant:
    group: str
    topics: list[str]
    application: type[Application]
    policies: Mapping[str, Policy]
    reads: Mapping[str, type[Application]] = field(default_factory=dict)
    timers: Mapping[str, Timer] = field(default_factory=dict)
    adapters: Callable[[Settings], dict[str, Any]] = lambda settings: {}


class PolicyProcessor:
    """Applies a batch of deliveries one event at a time (each its own transaction)."""

    max_conflict_retries = 20

    def __init__(self, participant: Participant, context: Context) -> None:
        self.participant = participant
        self.context = context

    def __call__(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self.apply(delivery)

    def apply(self, delivery: Delivery) -> None:
        policy = self.participant.policies.get(delivery.envelope.type)
        if policy is None:
            return
        application = self.context.application
        tracking = tracking_for(delivery.envelope)
        for _ in range(self.max_conflict_retries):
            if already_applied(application, tracking):
                return  # a redelivered or re-published copy
            try:
                with tracking_context(tracking):
                    policy(self.context, delivery.envelope)
                return
            except (ConcurrentUpdate, IntegrityError):
                continue  # another writer won the race, or the copy was applied meanwhile
        raise ConcurrentUpdate(f"{delivery.envelope.type} {delivery.envelope.event_id} kept conflicting")


def build_context(participant: Participant, settings: Settings) -> Context:
    env = eventsourcing_env(settings.dsn, pool_size=4)
    return Context(
        settings=settings,
        application=tracked(participant.application)(env=env),
        reads={name: cls(env=eventsourcing_env(settings.dsn, pool_size=2))
               for name, cls in participant.reads.items()},
        pool=make_pool(settings.dsn, max_size=4),
        adapters=participant.adapters(settings),
    )


def build_participant_worker(participant: Participant, settings: Settings) -> faust.App:
    context = build_context(participant, settings)
    app = build_app(participant.group, settings)
    GroupConsumer(app, participant.group, participant.topics,
                  PolicyProcessor(participant, context), max_tries=settings.worker_max_tries)
    for name, timer in participant.timers.items():
        _install_timer(app, participant.group, name, timer, context, settings.saga_timer_seconds)
    return app


def _install_timer(app: faust.App, group: str, name: str, timer: Timer, context: Context,
                   interval: float) -> None:
    async def tick() -> None:
        try:
            done = await asyncio.to_thread(timer, context)
            if done:
                log.info("%s/%s: %d due", group, name, done)
        except Exception:  # noqa: BLE001 - a timer failure must not stop the worker
            log.exception("%s/%s failed; will try again", group, name)

    tick.__name__ = f"{group}_{name}".replace("-", "_")
    app.timer(interval=interval, on_leader=False)(tick)
