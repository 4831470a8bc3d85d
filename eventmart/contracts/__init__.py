"""Public event contracts: importing this package registers every event type."""

from eventmart.contracts import users  # noqa: F401  (registers users.* events)
from eventmart.contracts.envelope import (
    CONTRACTS,
    Envelope,
    MalformedEvent,
    envelope_from_domain,
    event_id_for,
    json_schemas,
    parse,
)

__all__ = [
    "CONTRACTS", "Envelope", "MalformedEvent", "envelope_from_domain", "event_id_for",
    "json_schemas", "parse",
]
