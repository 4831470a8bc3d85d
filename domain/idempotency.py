"""Idempotency keys, enforced by the event store: the key's aggregate id is derived from
(scope, key), so two commands with one key collide on (originator_id, version), and a
command saves its key's claim in the same transaction as its events."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.errors import InvalidInput

A = TypeVar("A", bound=Aggregate)
KEY_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:idempotency-key")
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(InvalidInput):
    """The same key came back with a different request body."""

    code = "idempotency_key_reused"


class IdempotencyKey(Aggregate):
    """Remembers which request a key was first used for and what it produced: the
    aggregate it created or changed, and the version it left that aggregate at."""

    @staticmethod
    def create_id(scope: str, key: str, **_: Any) -> UUID:
        return uuid5(KEY_NAMESPACE, f"{scope}\x00{key}")

    @event("Used")
    def __init__(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        result_id: UUID,
        result_version: int | None = None,
    ) -> None:
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.result_id = result_id
        self.result_version = result_version  # None on keys stored before it was recorded

    def replay(self, fingerprint: str) -> UUID:
        """The first request's result, if this request is the same one."""
        if fingerprint != self.fingerprint:
            raise IdempotencyKeyReused(f"Idempotency-Key {self.key!r} was used for another request")
        return self.result_id


def check_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise InvalidInput(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters")
    return key


def claim_key(
    scope: str, key: str | None, fingerprint: str, result: Aggregate
) -> IdempotencyKey | None:
    """The claim to save beside `result` (None without a key): `result` as it is now."""
    if key is None:
        return None
    return IdempotencyKey(scope, check_key(key), fingerprint, result.id, result.version)


def find_key(application: Application[Any], scope: str, key: str | None) -> IdempotencyKey | None:
    """The key's first use in this application's store; None if unused (or no key)."""
    if key is None:
        return None
    try:
        found: object = application.repository.get(IdempotencyKey.create_id(scope, check_key(key)))
    except AggregateNotFoundError:
        return None
    return found if isinstance(found, IdempotencyKey) else None


def save_with_key(
    application: Application[Any], claim: IdempotencyKey | None, *aggregates: Aggregate
) -> IdempotencyKey | None:
    """Save the aggregates and the key's claim in one transaction, so one key stores once.

    Returns None when saved, or the earlier claim when another request used the key first
    (then nothing was saved). Any other collision raises IntegrityError, as `save` does."""
    try:
        application.save(*aggregates, claim)
    except IntegrityError:
        earlier = None if claim is None else find_key(application, claim.scope, claim.key)
        if earlier is None:
            raise
        return earlier
    return None


def result_as_left(
    application: Application[Any], used: IdempotencyKey, fingerprint: str, kind: type[A]
) -> A:
    """The aggregate the key's first request produced, at the version that request left
    it (IdempotencyKeyReused if this is another request)."""
    found: object = application.repository.get(
        used.replay(fingerprint), version=used.result_version
    )
    if not isinstance(found, kind):
        raise TypeError(f"Idempotency-Key {used.key!r} produced a {type(found).__name__}")
    return found
