"""Idempotency keys, enforced by the event store: the key's aggregate id is derived from
(scope, key), so two commands with one key collide on (originator_id, version)."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput

KEY_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:idempotency-key")
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(InvalidInput):
    """The same key came back with a different request body."""

    code = "idempotency_key_reused"


class IdempotencyKey(Aggregate):
    """Remembers which request a key was first used for and what it produced."""

    @staticmethod
    def create_id(scope: str, key: str, **_: Any) -> UUID:
        return uuid5(KEY_NAMESPACE, f"{scope}\x00{key}")

    @event("Used")
    def __init__(self, scope: str, key: str, fingerprint: str, result_id: UUID) -> None:
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.result_id = result_id

    def replay(self, fingerprint: str) -> UUID:
        """The first request's result, if this request is the same one."""
        if fingerprint != self.fingerprint:
            raise IdempotencyKeyReused(f"Idempotency-Key {self.key!r} was used for another request")
        return self.result_id
