"""Which failures mean "a dependency is away" rather than "this request or event is bad".

PostgreSQL restarting, a connection it closed, no connection to be had within the wait,
Kafka unreachable or electing a leader: none of these is the fault of the caller or of
the event in hand, and each passes. So the API answers 503 with Retry-After (api.outages),
consumers wait and try the same batch again instead of counting tries towards the
dead-letter topic (workers.consumer), and the relay waits instead of parking events.
"""

from __future__ import annotations

import psycopg
from aiokafka import errors as kafka_errors
from eventsourcing import persistence

DATABASE_AWAY: tuple[type[Exception], ...] = (
    psycopg.OperationalError,  # includes psycopg_pool.PoolTimeout and AdminShutdown
    persistence.OperationalError,  # eventsourcing's translation of the same
    persistence.InterfaceError,  # eventsourcing's for a connection closed under it
)

BROKER_AWAY: tuple[type[Exception], ...] = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NotLeaderForPartitionError,
    kafka_errors.LeaderNotAvailableError,
    kafka_errors.CoordinatorNotAvailableError,
    kafka_errors.NotCoordinatorError,
)


def database_away(error: BaseException) -> bool:
    return isinstance(error, DATABASE_AWAY)


def broker_away(error: BaseException) -> bool:
    """A broker error that passes by itself (aiokafka marks those retriable)."""
    if isinstance(error, BROKER_AWAY):
        return True
    return isinstance(error, kafka_errors.KafkaError) and bool(getattr(error, "retriable", False))


def dependency_away(error: BaseException) -> bool:
    return database_away(error) or broker_away(error)
