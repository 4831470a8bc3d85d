"""Public events of the users context, on `users.events`."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from domain.users import User
from eventmart.contracts.envelope import EventContract, Payload, register


class UserRegistered(Payload):
    user_id: UUID
    email: str
    display_name: str
    role: Literal["customer", "seller", "admin"]


register(
    EventContract(
        type="user.registered",
        topic="users.events",
        schema_version=1,
        payload=UserRegistered,
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
