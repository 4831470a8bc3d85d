"""The envelope every event travels in, and the registry of public event types.

Public payloads are pydantic models, separate from the domain's stored events:
the stored event is private (it may hold a password hash); the contract is
what other contexts may rely on, versioned and upcast on read.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, NamedTuple, Union
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, create_model

# A W3C Trace Context traceparent, version 00 (eventmart.tracing).
TRACEPARENT_PATTERN = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
Traceparent = Annotated[str, StringConstraints(pattern=TRACEPARENT_PATTERN, max_length=55)]
EVENT_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:event")


def event_id_for(aggregate_id: UUID, aggregate_version: int) -> UUID:
    """An event's identity is its place in its aggregate's history, so a re-published
    copy carries the same id and consumers can drop it."""
    return uuid5(EVENT_NAMESPACE, f"{aggregate_id}:{aggregate_version}")


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    type: str
    schema_version: int
    aggregate_id: UUID
    aggregate_version: int
    occurred_at: datetime
    correlation_id: UUID
    causation_id: UUID | None = None
    payload: dict[str, Any]
    # W3C traceparent of what caused it (eventmart.tracing); absent on events stored before.
    traceparent: Traceparent | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    def key(self) -> bytes:
        return str(self.aggregate_id).encode()


class Payload(BaseModel):
    """Base of every public payload: unknown fields are an error on the producer side."""

    model_config = ConfigDict(extra="forbid")


class MalformedEvent(ValueError):
    """A message that is not a valid envelope of a known, current event type."""


@dataclass(frozen=True)
class EventContract:
    type: str  # the event type, e.g. order.placed (hence builtins.type below)
    topic: str
    schema_version: int
    payload: builtins.type[Payload]
    example: dict[str, Any]
    domain_event: builtins.type | None = None
    to_payload: Callable[[Any], dict[str, Any]] | None = None
    # upcasters[n] turns a version-n payload into version n+1
    upcasters: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)
    # Payload fields about a person (e-mail, name, address): exports redact them by default.
    personal: tuple[str, ...] = ()


CONTRACTS: dict[str, EventContract] = {}
BY_DOMAIN_EVENT: dict[type, EventContract] = {}


def register(contract: EventContract) -> EventContract:
    CONTRACTS[contract.type] = contract
    if contract.domain_event is not None:
        BY_DOMAIN_EVENT[contract.domain_event] = contract
    return contract


def envelope_from_domain(
    domain_event: Any, *, correlation_id: UUID | None = None, causation_id: UUID | None = None
) -> Envelope | None:
    """The public envelope of a stored domain event, or None for private events
    (such as uniqueness index claims) that never leave their context."""
    contract = BY_DOMAIN_EVENT.get(type(domain_event))
    if contract is None or contract.to_payload is None:
        return None
    event_id = event_id_for(domain_event.originator_id, domain_event.originator_version)
    payload = contract.payload.model_validate(contract.to_payload(domain_event))
    return Envelope(
        event_id=event_id,
        type=contract.type,
        schema_version=contract.schema_version,
        aggregate_id=domain_event.originator_id,
        aggregate_version=domain_event.originator_version,
        occurred_at=domain_event.timestamp,
        correlation_id=correlation_id or getattr(domain_event, "correlation_id", None) or event_id,
        causation_id=causation_id or getattr(domain_event, "causation_id", None),
        payload=payload.model_dump(mode="json"),
        traceparent=getattr(domain_event, "traceparent", None),
    )


def parse(raw: bytes | str | dict[str, Any]) -> Envelope:
    """Decode, upcast to the current schema version and validate; MalformedEvent otherwise."""
    try:
        data = raw if isinstance(raw, dict) else orjson.loads(raw)
        envelope = Envelope.model_validate(data)
    except (orjson.JSONDecodeError, ValueError, TypeError) as error:
        raise MalformedEvent(f"not an EventMart envelope: {error}") from error
    contract = CONTRACTS.get(envelope.type)
    if contract is None:
        raise MalformedEvent(f"unknown event type {envelope.type!r}")
    payload, version = dict(envelope.payload), envelope.schema_version
    if version > contract.schema_version:
        raise MalformedEvent(
            f"{envelope.type} v{version} is newer than this code (v{contract.schema_version})"
        )
    while version < contract.schema_version:
        upcast = contract.upcasters.get(version)
        if upcast is None:
            raise MalformedEvent(f"no upcaster for {envelope.type} v{version}")
        payload, version = upcast(payload), version + 1
    try:
        checked = contract.payload.model_validate(payload)
    except ValueError as error:
        raise MalformedEvent(f"{envelope.type} payload is invalid: {error}") from error
    return envelope.model_copy(
        update={"payload": checked.model_dump(mode="json"), "schema_version": version}
    )


class Event(NamedTuple):
    """An envelope's fields as plain values, ids as canonical strings: what bulk paths fold."""

    event_id: str
    type: str
    aggregate_id: str
    aggregate_version: int
    occurred_at: datetime
    payload: dict[str, Any]

    @classmethod
    def of(cls, envelope: Envelope) -> Event:
        return cls(
            str(envelope.event_id),
            envelope.type,
            str(envelope.aggregate_id),
            envelope.aggregate_version,
            envelope.occurred_at,
            envelope.payload,
        )


# The exact text str(UUID) gives; every such string is a UUID, so validating ids as these
# strings accepts a subset of what `Envelope` accepts, with the same values.
CanonicalUuid = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]


class _CanonicalEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: CanonicalUuid
    aggregate_id: CanonicalUuid
    aggregate_version: int
    occurred_at: datetime
    correlation_id: CanonicalUuid
    causation_id: CanonicalUuid | None = None
    traceparent: Traceparent | None = None


@cache
def _typed_envelope(name: str) -> type[BaseModel]:
    """The envelope of one current-version event type with canonical ids, its payload typed."""
    contract = CONTRACTS[name]
    fields: dict[str, Any] = {
        "type": (Literal[contract.type], ...),
        "schema_version": (Literal[contract.schema_version], ...),
        "payload": (contract.payload, ...),
    }
    return create_model(
        "Envelope_" + re.sub(r"\W", "_", name), __base__=_CanonicalEnvelope, **fields
    )


def _peek_type(raw: bytes) -> str | None:
    """The type of an envelope serialised as the relay does (event_id first, type second, no
    other "type" key anywhere); None for anything else."""
    if raw[:13] != b'{"event_id":"' or raw[49:59] != b'","type":"' or raw.count(b'"type":') != 1:
        return None
    end = raw.find(b'"', 59)
    if end < 0 or b'"' in raw[13:49] or b"\\" in raw[13:end]:
        return None
    try:
        return raw[59:end].decode()
    except UnicodeDecodeError:
        return None


class Decoder:
    """`parse` for bulk paths, for the given event types: the same checks and the same values.
    Records serialised as the relay serialises them take one validation pass straight from
    JSON (about twice as fast as `parse`), and records of other types are skipped at a
    glance; anything else (older versions to upcast, other key orders, other spellings of
    an id) goes through `parse`."""

    def __init__(self, types: Iterable[str]) -> None:
        self.types = frozenset(types)
        models = [_typed_envelope(name) for name in sorted(self.types)]
        # A union built at run time: Union[...] takes a tuple, the | operator does not.
        union: Any = Union[tuple(models)]  # noqa: UP007
        shape: Any = (
            models[0] if len(models) == 1 else Annotated[union, Field(discriminator="type")]
        )
        self.adapter: TypeAdapter[Any] = TypeAdapter(shape)

    def __call__(self, raw: bytes) -> Event | None:
        """The event, or None if its type is not one of ours; MalformedEvent if it is not valid."""
        kind = _peek_type(raw)
        if kind is not None and kind not in self.types:
            return None
        try:
            typed = self.adapter.validate_json(raw)
        except ValueError:
            return self._slowly(raw)
        return Event(
            typed.event_id,
            typed.type,
            typed.aggregate_id,
            typed.aggregate_version,
            typed.occurred_at,
            typed.payload.model_dump(mode="json"),
        )

    def _slowly(self, raw: bytes) -> Event | None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise MalformedEvent(f"not an EventMart envelope: {error}") from error
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(kind, str) or kind not in self.types:
            return None
        return Event.of(parse(data))


def json_schemas() -> dict[str, Any]:
    """JSON Schema of the envelope and of every public payload, for `eventmart schemas export`."""
    return {
        "envelope": Envelope.model_json_schema(),
        "events": {
            name: {
                "topic": contract.topic,
                "schema_version": contract.schema_version,
                "payload": contract.payload.model_json_schema(),
                "example": contract.example,
            }
            for name, contract in sorted(CONTRACTS.items())
        },
    }
