"""An aggregate as it was at a past moment, from the event store (the source of truth),
so analysts can answer "what did we know then" without a read model that only knows now.

The aggregate's stored events are read in order; the last one with timestamp <= T
gives the version, and `repository.get(id, version=...)` replays up to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application

from domain.inventory import Inventory
from domain.orders import Orders
from domain.stock import Stock
from domain.users import Users
from eventmart.personal_data import FieldCipher, is_sealed

# kind -> (application class, aggregate id from the id an analyst knows)
KINDS: dict[str, tuple[type[Application[UUID]], Any]] = {
    "order": (Orders, lambda order_id: order_id),
    "stock": (Inventory, lambda product_id: Stock.create_id(product_id)),
    "user": (Users, lambda user_id: user_id),
}
# Never printed: credentials, payment tokens, addresses.
PRIVATE_FIELDS = frozenset({"password_hash", "payment", "shipping_address"})


class NotYetExisting(LookupError):
    """The aggregate had no events at that time (or has none at all)."""


@dataclass(frozen=True)
class Moment:
    version: int
    timestamp: datetime
    event: str


def history(app: Application[UUID], aggregate_id: UUID) -> list[Moment]:
    """Every stored event of the aggregate: version, time and event class name."""
    events: list[Any] = list(app.events.get(aggregate_id))
    return [
        Moment(event.originator_version, event.timestamp, type(event).__qualname__)
        for event in events
    ]


def version_at(moments: list[Moment], at: datetime) -> int | None:
    """The version reached by `at` (events with timestamp <= at), None before the first."""
    reached = None
    for moment in moments:
        if moment.timestamp <= at:
            reached = moment.version
    return reached


def state_of(aggregate: Any, cipher: FieldCipher | None = None) -> dict[str, Any]:
    """The aggregate's public attributes, plus its identity and version; sealed personal
    fields opened through `cipher` (`[erased]` once the key is gone)."""
    state: dict[str, Any] = {
        "id": aggregate.id,
        "version": aggregate.version,
        "modified_on": aggregate.modified_on,
    }
    state.update(
        {
            name: value
            for name, value in vars(aggregate).items()
            if not name.startswith("_") and name not in PRIVATE_FIELDS
        }
    )
    if isinstance(aggregate, Stock):
        state["available"] = aggregate.available
    if cipher is not None:
        sealed = [name for name, value in state.items() if is_sealed(value)]
        state.update(zip(sealed, cipher.open_all(state[name] for name in sealed), strict=True))
    return state


def as_of(app: Application[UUID], kind: str, known_id: UUID, at: datetime) -> dict[str, Any]:
    """The state of the `kind` identified by `known_id` as of `at`."""
    _, to_aggregate_id = KINDS[kind]
    aggregate_id = to_aggregate_id(known_id)
    moments = history(app, aggregate_id)
    version = version_at(moments, at)
    if version is None:
        first = (
            f"its first event is at {moments[0].timestamp.isoformat()}"
            if moments
            else "it has no events"
        )
        raise NotYetExisting(f"{kind} {known_id} did not exist at {at.isoformat()} ({first})")
    cipher = getattr(app.mapper, "fields_cipher", None)  # eventmart.sealing.SealingMapper
    state = state_of(app.repository.get(aggregate_id, version=version), cipher)
    state["events_applied"] = [m.event for m in moments if m.version <= version]
    return state


def application_for(kind: str, settings: Any) -> Application[UUID]:
    from eventmart.wiring import build_application

    if kind not in KINDS:
        raise KeyError(f"kind must be one of {', '.join(KINDS)}")
    return cast(Application[UUID], build_application(KINDS[kind][0], settings, pool_size=1))
