"""The Idempotency-Key header every command accepts, and the fingerprint its key remembers
the first request by; domain/idempotency.py stores both with the command's events."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from typing import Annotated
from uuid import UUID

from fastapi import Header
from pydantic import BaseModel

from domain.idempotency import MAX_KEY_LENGTH, IdempotencyKeyReused

# Printable ASCII, inner spaces allowed: what a header value carries intact everywhere.
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=KEY_PATTERN,
        description="the same key with the same request stores nothing twice",
    ),
]


def fingerprint(secret: str, body: BaseModel, *resource: UUID) -> str:
    """The same request (the resource in its path and its body, however its JSON was
    spelled) has the same fingerprint. Keyed with the deployment's secret, so a stored
    fingerprint gives no way to test guesses of what a body held, such as a password."""
    request = {"resource": [str(part) for part in resource], "body": body.model_dump(mode="json")}
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    key = hmac.new(secret.encode(), b"eventmart:idempotency-fingerprint", hashlib.sha256)
    return hmac.new(key.digest(), canonical.encode(), hashlib.sha256).hexdigest()


async def accept_idempotency_key(idempotency_key: IdempotencyKeyHeader = None) -> None:
    """For commands their state machine already makes idempotent (cancel, confirm receipt):
    repeating one stores nothing and answers the same, so the key needs no record."""


class RecentKeys:
    """Idempotency keys of a command that stores nothing a key could be checked against
    (a view goes straight to Kafka): the request each key came with, remembered by this
    process (bounded: the oldest is forgotten first), so that a key reused with another
    request is refused with 422 `idempotency_key_reused` while it is remembered. Used on
    the event loop only."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._requests: OrderedDict[tuple[str, str], str] = OrderedDict()

    def check(self, scope: str, key: str, request: str) -> None:
        """IdempotencyKeyReused if the key came with another request."""
        first = self._requests.get((scope, key))
        if first is not None and first != request:
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used for another request")

    def remember(self, scope: str, key: str, request: str) -> None:
        """The request was accepted: its key now stands for it."""
        self._requests[(scope, key)] = request
        self._requests.move_to_end((scope, key))
        if len(self._requests) > self.max_entries:
            self._requests.popitem(last=False)
