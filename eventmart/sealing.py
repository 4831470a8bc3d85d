"""Personal fields sealed as events are stored (crypto-shredding, issue 26).

`SealingMapper` is the mapper of every application (MAPPER_TOPIC): for the domain events in
`SEALED` it stores each personal attribute as an envelope under its subject's key
(eventmart.personal_data), so the event store, the outbox and the topics the relay fills
from them hold no personal text. Nothing is opened on the way back: an aggregate loaded
from the store holds the envelopes, and whoever needs the text opens it (the read models
that show it, the review route that copies the author's name). The event in memory that
was just stored keeps its plaintext. An application without a cipher (the unit tests'
in-memory ones) stores what it is given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import StoredEvent

from domain.order import Order
from domain.reviews import Review
from domain.users import EmailIndex, User
from eventmart.contracts import CONTRACTS, Envelope, Event
from eventmart.personal_data import FieldCipher, is_sealed, open_payload
from eventmart.tracing import TracingMapper, stamp

CLEAR_ADDRESS_FIELDS = frozenset({"country"})  # kept readable: tax and shipping zones


@dataclass(frozen=True)
class SealedFields:
    """Which attributes of a domain event are personal, and whose they are."""

    fields: tuple[str, ...]
    subject: str | None = None  # the attribute naming the person; None: the aggregate
    clear: frozenset[str] = field(default=CLEAR_ADDRESS_FIELDS)


SEALED: dict[type, SealedFields] = {
    User.Registered: SealedFields(("email", "display_name")),
    EmailIndex.Claimed: SealedFields(("email",), subject="user_id"),
    Order.Placed: SealedFields(("shipping_address",), subject="buyer_id"),
    Review.Submitted: SealedFields(("author_name",), subject="author_id"),
}


def sealed_state(
    state: Mapping[str, Any], rule: SealedFields, cipher: FieldCipher
) -> dict[str, Any]:
    """A copy of an event's attributes with its personal text sealed (an address's lines
    one by one, its country in clear); values sealed already are kept."""
    subject = state[rule.subject or "originator_id"]
    sealed = dict(state)
    plain: dict[str, str] = {}
    for name in rule.fields:
        value = sealed.get(name)
        if isinstance(value, str):
            plain[name] = value
        elif isinstance(value, Mapping) and not is_sealed(value):
            plain.update(
                {
                    f"{name}.{key}": text
                    for key, text in value.items()
                    if isinstance(text, str) and key not in rule.clear
                }
            )
    if not plain:
        return sealed
    for path, envelope in cipher.seal_all(subject, plain).items():
        name, _, key = path.partition(".")
        if key:
            sealed[name] = {**sealed[name], key: envelope}
        else:
            sealed[name] = envelope
    return sealed


class SealingMapper(TracingMapper):
    """TracingMapper that seals the personal attributes of the events in SEALED."""

    fields_cipher: FieldCipher | None = None  # `cipher` is the whole-state one of eventsourcing

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        rule = SEALED.get(type(domain_event))
        if rule is None or self.fields_cipher is None:
            return super().to_stored_event(domain_event)
        stamp((domain_event,))
        copy = object.__new__(type(domain_event))
        object.__setattr__(
            copy, "__dict__", sealed_state(vars(domain_event), rule, self.fields_cipher)
        )
        return super().to_stored_event(copy)


MAPPER_TOPIC = "eventmart.sealing:SealingMapper"


def open_envelope(envelope: Envelope, cipher: FieldCipher) -> Envelope:
    """The envelope with its contract's personal fields opened (`[erased]` where the key
    was destroyed); as it is when it has none sealed."""
    personal = CONTRACTS[envelope.type].personal if envelope.type in CONTRACTS else ()
    if not personal:
        return envelope
    payload = open_payload(envelope.payload, personal, cipher)
    if payload == envelope.payload:
        return envelope
    return envelope.model_copy(update={"payload": payload})


def open_event(event: Event, cipher: FieldCipher) -> Event:
    """`open_envelope` for the bulk paths' events."""
    personal = CONTRACTS[event.type].personal if event.type in CONTRACTS else ()
    if not personal:
        return event
    return event._replace(payload=open_payload(event.payload, personal, cipher))
