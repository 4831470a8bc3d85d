"""Public events of the users context, on `users.events`."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from domain.users import User
from eventmart.contracts.envelope import EventContract, Payload, event_id_for, register
from eventmart.contracts.sealed import SealedDisplayName, SealedEmail, same_payload


class UserRegistered(Payload):
    """v2: e-mail and name sealed (eventmart.contracts.sealed); v1 had them in clear."""

    user_id: UUID
    email: SealedEmail
    display_name: SealedDisplayName
    role: Literal["customer", "seller", "admin"]


register(
    EventContract(
        type="user.registered",
        topic="users.events",
        schema_version=2,
        payload=UserRegistered,
        upcasters={1: same_payload},
        domain_event=User.Registered,
        personal=("email", "display_name"),
        to_payload=lambda e: {
            "user_id": e.originator_id,
            "email": e.email,
            "display_name": e.display_name,
            "role": e.role,
        },
        example={
            "event_id": "5d8e1a47-3b7f-5c1e-9a0d-2f7c1c0e6b11",
            "type": "user.registered",
            "schema_version": 1,
            "aggregate_id": "0b6f3d7e-8c2a-4d5e-9f1b-3a4c5d6e7f80",
            "aggregate_version": 1,
            "occurred_at": "2026-11-25T10:00:00+00:00",
            "correlation_id": "5d8e1a47-3b7f-5c1e-9a0d-2f7c1c0e6b11",
            "causation_id": None,
            "payload": {
                "user_id": "0b6f3d7e-8c2a-4d5e-9f1b-3a4c5d6e7f80",
                "email": "ada@example.com",
                "display_name": "Ada",
                "role": "customer",
            },
        },
    )
)


class UserRoleChanged(Payload):
    user_id: UUID
    role: Literal["customer", "seller", "admin"]
    previous_role: Literal["customer", "seller", "admin"]


class UserDisabled(Payload):
    user_id: UUID


class UserEnabled(Payload):
    user_id: UUID


EXAMPLE_USER = UUID("0b6f3d7e-8c2a-4d5e-9f1b-3a4c5d6e7f80")


def _example(kind: str, version: int, payload: dict[str, object]) -> dict[str, object]:
    """An envelope of the example user's `version`th event (ids as the relay derives them)."""
    event_id = str(event_id_for(EXAMPLE_USER, version))
    return {
        "event_id": event_id,
        "type": kind,
        "schema_version": 1,
        "aggregate_id": str(EXAMPLE_USER),
        "aggregate_version": version,
        "occurred_at": "2026-11-26T09:30:00+00:00",
        "correlation_id": event_id,
        "causation_id": None,
        "payload": {"user_id": str(EXAMPLE_USER), **payload},
    }


register(
    EventContract(
        type="user.role_changed",
        topic="users.events",
        schema_version=1,
        payload=UserRoleChanged,
        domain_event=User.RoleChanged,
        to_payload=lambda e: {
            "user_id": e.originator_id,
            "role": e.role,
            "previous_role": e.previous_role,
        },
        example=_example("user.role_changed", 2, {"role": "seller", "previous_role": "customer"}),
    )
)
register(
    EventContract(
        type="user.disabled",
        topic="users.events",
        schema_version=1,
        payload=UserDisabled,
        domain_event=User.Disabled,
        to_payload=lambda e: {"user_id": e.originator_id},
        example=_example("user.disabled", 3, {}),
    )
)
register(
    EventContract(
        type="user.enabled",
        topic="users.events",
        schema_version=1,
        payload=UserEnabled,
        domain_event=User.Enabled,
        to_payload=lambda e: {"user_id": e.originator_id},
        example=_example("user.enabled", 4, {}),
    )
)


class UserErased(Payload):
    """Only the id: the record that the user asked to be forgotten, naming nothing personal.
    Their sealed fields read `[erased]` from the moment their key was destroyed."""

    user_id: UUID


register(
    EventContract(
        type="user.erased",
        topic="users.events",
        schema_version=1,
        payload=UserErased,
        domain_event=User.Erased,
        to_payload=lambda e: {"user_id": e.originator_id},
        example=_example("user.erased", 5, {}),
    )
)
